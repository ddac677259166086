"""An ensemble looped transformer: one shared block (or a few) applied `loops` times, read out after each.

Built from `learnlab.models.transformer`'s components: the embeddings, `Block` and `unembed` of an
`EnsembleTransformer` with `block_layers` distinct blocks, run `loops` times over the residual stream.
With loops = 1 (and no re-injection) it is that transformer, bit for bit; its non-looped baselines are
plain `EnsembleTransformer`s (equal parameters: `n_layers=block_layers`; equal FLOPs:
`n_layers=block_layers·loops`). Members are independent as in every learnlab ensemble.

`forward_loops` returns the readout after every loop [loops, K, B, T, n_out] (the final LayerNorm and
unembedding applied to each loop's residual stream), so a loss can average over loops and a study read
each loop's answer; `forward` returns the last loop's, as any learnlab model. `reinject=True` adds the
input embedding to the residual stream at the start of every loop after the first (Yang et al. 2024's
input injection).

Hook points, per loop t = 0 … loops−1: `loops.{t}.hook_resid_pre` (after any re-injection), the blocks'
own points under `loops.{t}.blocks.{l}.` (`…attn.hook_pattern`, `…mlp.hook_post`, …) and
`loops.{t}.hook_resid_post` (the stream loop t's readout reads, where an intervention at loop t goes);
plus `hook_embed`, `hook_pos_embed`, and on the last loop's readout `hook_resid_final` and
`ln_final.hook_normalized`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from learnlab.models.transformer import MLP, EnsembleTransformer, Hooks, MLPFactory, _apply, _prefixed


class LoopedTransformer(EnsembleTransformer):
    """K independent looped transformers; forward(tokens [K, B, T]) -> last loop's outputs [K, B, T, n_out]."""

    def __init__(
        self,
        n_models: int,
        vocab_size: int,
        n_ctx: int,
        d_model: int = 32,
        loops: int = 4,
        block_layers: int = 1,
        n_heads: int = 2,
        d_mlp: int = 128,
        n_out: int = 1,
        reinject: bool = False,
        mlp: MLPFactory = MLP,
    ):
        if loops < 1 or block_layers < 1:
            raise ValueError(f"loops ({loops}) and block_layers ({block_layers}) must be at least 1")
        super().__init__(n_models, vocab_size, n_ctx, d_model, block_layers, n_heads, d_mlp, n_out, mlp)
        self.loops, self.reinject = loops, reinject
        self.kwargs: dict[str, Any] = {
            "n_models": n_models, "vocab_size": vocab_size, "n_ctx": n_ctx, "d_model": d_model, "loops": loops,
            "block_layers": block_layers, "n_heads": n_heads, "d_mlp": d_mlp, "n_out": n_out, "reinject": reinject,
        }  # fmt: skip

    def hook_names(self) -> list[str]:
        names = ["hook_embed", "hook_pos_embed"]
        for t in range(self.loops):
            names.append(f"loops.{t}.hook_resid_pre")
            for layer, block in enumerate(self.blocks):
                names += _prefixed(f"loops.{t}.blocks.{layer}", block)
            names.append(f"loops.{t}.hook_resid_post")
        return [*names, "hook_resid_final", "ln_final.hook_normalized"]

    def residuals(self, tokens: Tensor, hooks: Hooks | None = None, loops: int | None = None) -> list[Tensor]:
        """The residual stream after every loop, [K, B, T, d_model] each (`loops` may run past the trained count)."""
        x0 = self.embed(tokens, None, hooks)
        x, out = x0, []
        for t in range(self.loops if loops is None else loops):
            if self.reinject and t > 0:
                x = x + x0
            x = _apply(hooks, f"loops.{t}.hook_resid_pre", x)
            for layer, block in enumerate(self.blocks):
                x = block(x, None, hooks, f"loops.{t}.blocks.{layer}")
            x = _apply(hooks, f"loops.{t}.hook_resid_post", x)
            out.append(x)
        return out

    def forward_loops(self, tokens: Tensor, hooks: Hooks | None = None, loops: int | None = None) -> Tensor:
        """The readout after every loop: [loops, K, B, T, n_out] (the last with the final hooks)."""
        res = self.residuals(tokens, hooks, loops)
        return torch.stack([self.unembed(x) for x in res[:-1]] + [self.unembed(res[-1], hooks)])

    def forward(self, tokens: Tensor, hooks: Hooks | None = None, **kwargs: Any) -> Tensor:  # type: ignore[override]
        if kwargs:
            raise TypeError(f"LoopedTransformer.forward takes no {', '.join(kwargs)}")
        return self.unembed(self.residuals(tokens, hooks)[-1], hooks)
