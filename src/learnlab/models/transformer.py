"""A small ensemble transformer: K independent GPT-style models with stacked [K, ...] weights.

Token + learned position embeddings, `n_layers` pre-norm blocks (causal multi-head attention, GELU
MLP), a final LayerNorm and an unembedding to `n_out` outputs per position. Causal, because the models
built on it are language models (the biography world) and because a causal classifier read at its
last position has seen the whole sequence: one design serves both.

Every weight has a leading model axis and every matmul is batched over it, so member k's computation
is its own: a member's outputs do not depend on the other members, bit for bit (tests/test_transformer.py).
Measured against `torch.func.functional_call` + `vmap` over an equivalent standard module (K=20, B=32,
T=12, d_model 32, forward + backward, one thread of a shared 2-core CPU): 35–38 ms per step stacked,
40 ms with vmap (160 ms on its first calls), which has no batching rule for CPU SDPA and loops over the
members there; and hooks that record activations (side effects) do not mix with vmap. Stacked it is.

Hook points carry TransformerLens names, so interpretability code reads the same here; each component
declares its own (`hook_names()`), the model collects them:
`hook_embed`, `hook_pos_embed`; per block `blocks.{l}.hook_resid_pre`, `blocks.{l}.attn.hook_q`,
`.hook_k`, `.hook_v`, `.hook_attn_scores` (pre-softmax, masked with -inf), `.hook_pattern`, `.hook_z`,
`blocks.{l}.hook_attn_out`, `blocks.{l}.hook_resid_mid`, `blocks.{l}.mlp.hook_pre` (before the GELU),
`blocks.{l}.mlp.hook_post` (after it), `blocks.{l}.hook_mlp_out`, `blocks.{l}.hook_resid_post`; then
`hook_resid_final` (the residual stream `unembed` reads) and `ln_final.hook_normalized`.
Shapes carry the leading model axis K before TransformerLens's: residual-stream points [K, B, T, d_model],
`hook_q/k/v/z` [K, B, T, heads, d_head], `hook_attn_scores`/`hook_pattern` [K, B, heads, T_q, T_k],
`mlp.hook_pre/post` [K, B, T, d_mlp]. A hook is `fn(activation, name) -> replacement or None`.
Attention runs through `scaled_dot_product_attention` unless a hook asks for the scores or the pattern;
then it is computed explicitly (q/k/v/z hooks are served on either path).

Components are small and swappable: `Block` takes its MLP from a factory (`mlp=`), so a mixture of experts
can replace `MLP`; `unembed(resid)` is the final LayerNorm and unembedding, so a looped model can read out
after every loop; `stop_at_layer` returns the residual stream before block L. `reset_parameters` gives
every parameter a value whatever its rank, by its declared role (`init_roles`) or else by its rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Hook = Callable[[Tensor, str], Tensor | None]
Hooks = Mapping[str, Hook]
NamesFilter = Callable[[str], bool] | Sequence[str] | str | None
MLPFactory = Callable[[int, int, int], nn.Module]  # (n_models, d_model, d_mlp) -> forward(x, hooks, prefix)
Past = tuple[Tensor, Tensor] | None  # an attention layer's cached keys and values (incremental decoding)


def _apply(hooks: Hooks | None, name: str, x: Tensor) -> Tensor:
    if hooks is None or name not in hooks:
        return x
    out = hooks[name](x, name)
    return x if out is None else out


def _apply_heads(hooks: Hooks | None, name: str, x: Tensor, k: int) -> Tensor:
    """A hook on per-head activations x [K*B, heads, T, d_head], shown as [K, B, T, heads, d_head]."""
    if hooks is None or name not in hooks:
        return x
    kb, h, t, dh = x.shape
    out = hooks[name](x.view(k, kb // k, h, t, dh).transpose(2, 3), name)
    return x if out is None else out.transpose(2, 3).reshape(kb, h, t, dh).contiguous()


def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """x [K, ..., in] @ w [K, in, out] + b [K, out], batched over the model axis."""
    k, shape = x.shape[0], x.shape[1:-1]
    out = torch.baddbmm(b.unsqueeze(1), x.reshape(k, -1, x.shape[-1]), w)
    return out.view(k, *shape, w.shape[-1])


def _layer_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return torch.addcmul(b.view(view), F.layer_norm(x, x.shape[-1:]), w.view(view))


def _prefixed(prefix: str, module: nn.Module) -> list[str]:
    return [f"{prefix}.{name}" for name in getattr(module, "hook_names", list)()]


def _attend(
    q: Tensor, key: Tensor, v: Tensor, allowed: Tensor | None, hooks: Hooks | None, prefix: str, k: int
) -> Tensor:
    """softmax(q kᵀ/√d) v over [K*B, heads, T, d_head] queries and [K*B, heads, S, d_head] keys and values;
    allowed [K*B, 1, T or 1, S] (True: may attend) or None for causal attention. Through SDPA unless a hook
    asks for the scores or the pattern (shown as [K, B, heads, T, S]); then explicitly."""
    scores_name, pattern_name = f"{prefix}.hook_attn_scores", f"{prefix}.hook_pattern"
    if hooks is None or (scores_name not in hooks and pattern_name not in hooks):
        if allowed is None:
            return F.scaled_dot_product_attention(q, key, v, is_causal=True)
        return F.scaled_dot_product_attention(q, key, v, attn_mask=allowed)
    kb, h, t, s = *q.shape[:3], key.shape[2]
    scores = q @ key.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if allowed is None:
        allowed = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()
    scores = _apply(hooks, scores_name, scores.masked_fill(~allowed, float("-inf")).view(k, kb // k, h, t, s))
    pattern = _apply(hooks, pattern_name, scores.softmax(dim=-1)).reshape(kb, h, t, s)
    return pattern @ v


class Attention(nn.Module):
    """Causal multi-head attention; `w_o` writes into the residual stream (GPT-2's scaled init)."""

    init_roles: ClassVar[dict[str, str]] = {"w_o": "residual"}

    def __init__(self, n_models: int, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        k, d = n_models, d_model
        self.w_qkv = nn.Parameter(torch.empty(k, d, 3 * d))
        self.b_qkv = nn.Parameter(torch.empty(k, 3 * d))
        self.w_o = nn.Parameter(torch.empty(k, d, d))
        self.b_o = nn.Parameter(torch.empty(k, d))

    def hook_names(self) -> list[str]:
        return ["hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z"]

    def forward(self, x: Tensor, mask: Tensor | None, hooks: Hooks | None, prefix: str) -> Tensor:
        """x [K, B, T, D]; mask [K, B, T, T] (True: may attend) or None for plain causal attention."""
        k, b, t, d = x.shape
        h = self.n_heads
        qkv = _linear(x, self.w_qkv, self.b_qkv).view(k * b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        # contiguous: a matmul over strided views rounds differently with the batch size (i.e. with K)
        q, key, v = (part.contiguous() for part in qkv.unbind(0))  # [K*B, heads, T, d_head]
        if hooks is not None:
            parts = zip("qkv", (q, key, v), strict=True)
            q, key, v = (_apply_heads(hooks, f"{prefix}.hook_{n}", a, k) for n, a in parts)
        flat_mask = None if mask is None else mask.reshape(k * b, 1, t, t)
        z = _attend(q, key, v, flat_mask, hooks, prefix, k)
        z = _apply_heads(hooks, f"{prefix}.hook_z", z, k).transpose(1, 2).reshape(k, b, t, d)
        return _linear(z, self.w_o, self.b_o)

    def step(self, x: Tensor, past: Past) -> tuple[Tensor, Past]:
        """Incremental causal attention, no hooks: the newest position x [K, B, 1, D] attends to itself and
        every earlier one, whose keys and values [K*B, heads, t, d_head] `past` holds; returns the output and
        the keys and values with x's appended (greedy decoding without rerunning the prefix)."""
        k, b, _, d = x.shape
        h = self.n_heads
        q, key, v = _linear(x, self.w_qkv, self.b_qkv).view(k * b, 1, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        if past is not None:
            key, v = torch.cat([past[0], key], dim=2), torch.cat([past[1], v], dim=2)
        z = F.scaled_dot_product_attention(q, key, v)
        return _linear(z.transpose(1, 2).reshape(k, b, 1, d), self.w_o, self.b_o), (key, v)


class MLP(nn.Module):
    """GELU MLP; `w_out` writes into the residual stream. A replacement (a mixture of experts) has the same
    constructor (n_models, d_model, d_mlp), forward(x, hooks, prefix) and `hook_names()`."""

    init_roles: ClassVar[dict[str, str]] = {"w_out": "residual"}

    def __init__(self, n_models: int, d_model: int, d_mlp: int):
        super().__init__()
        k, d = n_models, d_model
        self.w_in, self.b_in = nn.Parameter(torch.empty(k, d, d_mlp)), nn.Parameter(torch.empty(k, d_mlp))
        self.w_out, self.b_out = nn.Parameter(torch.empty(k, d_mlp, d)), nn.Parameter(torch.empty(k, d))

    def hook_names(self) -> list[str]:
        return ["hook_pre", "hook_post"]

    def forward(self, x: Tensor, hooks: Hooks | None, prefix: str) -> Tensor:
        pre = _apply(hooks, f"{prefix}.hook_pre", _linear(x, self.w_in, self.b_in))
        return _linear(_apply(hooks, f"{prefix}.hook_post", F.gelu(pre)), self.w_out, self.b_out)


_LEGACY_MLP_KEYS = ("w_in", "b_in", "w_out", "b_out")  # before issue 13 the MLP's weights were the block's


class Block(nn.Module):
    """Pre-norm block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    init_roles: ClassVar[dict[str, str]] = {"ln1_w": "ones", "ln2_w": "ones"}

    def __init__(self, n_models: int, d_model: int, n_heads: int, d_mlp: int, mlp: MLPFactory = MLP):
        super().__init__()
        k, d = n_models, d_model
        self.ln1_w, self.ln1_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.ln2_w, self.ln2_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        # the MLP before the attention: parameters() keeps its order from when the MLP's weights were the
        # block's own (listed before its submodules'), so initialisation draws the same numbers and
        # optimizer states of older checkpoints line up
        self.mlp = mlp(n_models, d_model, d_mlp)
        self.attn = Attention(n_models, d_model, n_heads)
        self._register_load_state_dict_pre_hook(self._legacy_keys)

    def _legacy_keys(self, state_dict: dict[str, Tensor], prefix: str, *_: Any) -> None:
        """State dicts saved before the MLP was a component (`blocks.0.w_in`) load as `blocks.0.mlp.w_in`."""
        if isinstance(self.mlp, MLP):
            for name in _LEGACY_MLP_KEYS:
                if prefix + name in state_dict and prefix + "mlp." + name not in state_dict:
                    state_dict[prefix + "mlp." + name] = state_dict.pop(prefix + name)

    def hook_names(self) -> list[str]:
        return [
            "hook_resid_pre", *_prefixed("attn", self.attn), "hook_attn_out", "hook_resid_mid",
            *_prefixed("mlp", self.mlp), "hook_mlp_out", "hook_resid_post",
        ]  # fmt: skip

    def forward(self, x: Tensor, mask: Tensor | None, hooks: Hooks | None, prefix: str) -> Tensor:
        x = _apply(hooks, f"{prefix}.hook_resid_pre", x)
        attn = self.attn(_layer_norm(x, self.ln1_w, self.ln1_b), mask, hooks, f"{prefix}.attn")
        x = _apply(hooks, f"{prefix}.hook_resid_mid", x + _apply(hooks, f"{prefix}.hook_attn_out", attn))
        mlp = self.mlp(_layer_norm(x, self.ln2_w, self.ln2_b), hooks, f"{prefix}.mlp")
        return _apply(hooks, f"{prefix}.hook_resid_post", x + _apply(hooks, f"{prefix}.hook_mlp_out", mlp))


class HookedEnsemble(nn.Module):
    """What every stacked transformer here shares: GPT-2's initialisation by declared roles and
    TransformerLens's `run_with_hooks` / `run_with_cache`. A subclass has `n_models`, `n_layers`,
    `hook_names()` and a forward that takes `hooks=`."""

    n_models: int
    n_layers: int

    def hook_names(self) -> list[str]:
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """GPT-2's initialisation for member k from generators[k]: N(0, 0.02) weights, the residual
        projections scaled by 1/√(2·layers), zero biases, LayerNorms at identity.

        Every parameter gets a value: its role is what its module declares in `init_roles`, else by rank —
        [K, n] a bias (zeros), [K, ...] of 3 or more dimensions a weight (normal, one draw per member, in
        parameter order), so a component's 4-D expert weights are covered without saying so."""
        stds = {"normal": 0.02, "residual": 0.02 / math.sqrt(2 * self.n_layers)}
        drawn = []
        for _, p, role in self._roles():
            if role in stds:
                drawn.append((p, stds[role]))
            else:
                p.fill_(1.0 if role == "ones" else 0.0)
        for k, gen in enumerate(generators):
            for p, std in drawn:
                p[k].normal_(0.0, std, generator=gen)

    def _roles(self) -> list[tuple[str, nn.Parameter, str]]:
        """(name, parameter, role) of every parameter, in `named_parameters()` order."""
        out, seen = [], set()
        for prefix, module in self.named_modules():
            roles = getattr(module, "init_roles", {})
            for local, p in module.named_parameters(recurse=False):
                name = f"{prefix}.{local}" if prefix else local
                if id(p) in seen:  # a shared parameter is initialised once, where it first appears
                    continue
                seen.add(id(p))
                role = roles.get(local)
                if role is None and (p.dim() < 2 or p.shape[0] != self.n_models):
                    raise ValueError(f"parameter {name!r} {tuple(p.shape)} has no model axis of {self.n_models}")
                role = role or ("zeros" if p.dim() == 2 else "normal")
                if role not in ("zeros", "ones", "normal", "residual"):
                    raise ValueError(f"parameter {name!r} has an unknown init role {role!r}")
                out.append((name, p, role))
        return out

    def run_with_hooks(self, tokens: Tensor, fwd_hooks: Iterable[tuple[str, Hook]], **kwargs: Any) -> Tensor:
        """TransformerLens-style: forward with hooks given as (name, fn) pairs."""
        hooks = dict(fwd_hooks)
        unknown = set(hooks) - set(self.hook_names())
        if unknown:
            raise KeyError(f"unknown hook point(s) {sorted(unknown)}")
        return self(tokens, hooks=hooks, **kwargs)

    def run_with_cache(
        self,
        tokens: Tensor,
        names_filter: NamesFilter = None,
        *,
        names: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward, keeping the activations (detached) at the hook points names_filter selects, as in
        TransformerLens: None for all of them, one name, a list of names, or a predicate on names.
        `names` is the earlier spelling of a list. With stop_at_layer=L the first value is the residual
        stream entering block L, and the cache holds only the points reached."""
        if names is not None:
            if names_filter is not None:
                raise TypeError("give names_filter or names, not both")
            names_filter = list(names)
        cache: dict[str, Tensor] = {}

        def keep(x: Tensor, name: str) -> None:
            cache[name] = x.detach()

        out = self.run_with_hooks(tokens, [(n, keep) for n in self._selected(names_filter)], **kwargs)
        return out, cache

    def _selected(self, names_filter: NamesFilter) -> list[str]:
        if names_filter is None:
            return self.hook_names()
        if isinstance(names_filter, str):
            return [names_filter]
        if callable(names_filter):
            return [n for n in self.hook_names() if names_filter(n)]
        return list(names_filter)


class EnsembleTransformer(HookedEnsemble):
    """K independent transformers; forward(tokens [K, B, T]) -> outputs [K, B, T, n_out]."""

    init_roles: ClassVar[dict[str, str]] = {"ln_final_w": "ones"}

    def __init__(
        self,
        n_models: int,
        vocab_size: int,
        n_ctx: int,
        d_model: int = 32,
        n_layers: int = 2,
        n_heads: int = 2,
        d_mlp: int = 128,
        n_out: int = 1,
        mlp: MLPFactory = MLP,
    ):
        super().__init__()
        k, d = n_models, d_model
        self.n_models, self.n_ctx, self.n_layers = k, n_ctx, n_layers
        self.w_embed = nn.Parameter(torch.empty(k, vocab_size, d))
        self.w_pos = nn.Parameter(torch.empty(k, n_ctx, d))
        self.blocks = nn.ModuleList(Block(k, d, n_heads, d_mlp, mlp) for _ in range(n_layers))
        self.ln_final_w, self.ln_final_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.w_unembed, self.b_unembed = nn.Parameter(torch.empty(k, d, n_out)), nn.Parameter(torch.empty(k, n_out))

    def hook_names(self) -> list[str]:
        """Every hook point, in the order a forward pass reaches them."""
        names = ["hook_embed", "hook_pos_embed"]
        for layer, block in enumerate(self.blocks):
            names += _prefixed(f"blocks.{layer}", block)
        return [*names, "hook_resid_final", "ln_final.hook_normalized"]

    def embed(self, tokens: Tensor, positions: Tensor | None = None, hooks: Hooks | None = None) -> Tensor:
        """The residual stream entering block 0: token + position embeddings [K, B, T, d_model]."""
        k, b, t = tokens.shape
        rows = tokens + torch.arange(k, device=tokens.device)[:, None, None] * self.w_embed.shape[1]
        embed = self.w_embed.reshape(-1, self.w_embed.shape[-1]).index_select(0, rows.reshape(-1)).view(k, b, t, -1)
        if positions is None:
            pos = self.w_pos[:, None, :t].expand(k, b, t, -1)
        else:
            prow = positions + torch.arange(k, device=tokens.device)[:, None, None] * self.n_ctx
            pos = self.w_pos.reshape(-1, self.w_pos.shape[-1]).index_select(0, prow.reshape(-1)).view(k, b, t, -1)
        return _apply(hooks, "hook_embed", embed) + _apply(hooks, "hook_pos_embed", pos)

    def unembed(self, resid: Tensor, hooks: Hooks | None = None) -> Tensor:
        """The final LayerNorm and unembedding: residual stream [K, B, T, d_model] -> outputs [K, B, T, n_out]."""
        resid = _apply(hooks, "hook_resid_final", resid)
        normalized = _apply(hooks, "ln_final.hook_normalized", _layer_norm(resid, self.ln_final_w, self.ln_final_b))
        return _linear(normalized, self.w_unembed, self.b_unembed)

    def forward(
        self,
        tokens: Tensor,
        positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
        hooks: Hooks | None = None,
        stop_at_layer: int | None = None,
    ) -> Tensor:
        """tokens, positions [K, B, T] (positions default 0..T-1); attention_mask [K, B, T], True at real
        tokens: keys at padding are ignored (a padding query attends to itself only, so nothing is NaN).
        stop_at_layer=L (0..n_layers, or negative from the end) returns the residual stream entering block L
        (`blocks.{L}.hook_resid_pre`) instead of the outputs; the later blocks are not run."""
        layers = self.n_layers if stop_at_layer is None else self._layers_before(stop_at_layer)
        t = tokens.shape[-1]
        x = self.embed(tokens, positions, hooks)
        mask = None
        if attention_mask is not None:
            causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
            mask = causal & (attention_mask[:, :, None, :] | torch.eye(t, dtype=torch.bool, device=tokens.device))
        for layer in range(layers):
            x = self.blocks[layer](x, mask, hooks, f"blocks.{layer}")
        return x if stop_at_layer is not None else self.unembed(x, hooks)

    def _layers_before(self, stop_at_layer: int) -> int:
        if not -self.n_layers <= stop_at_layer <= self.n_layers:
            raise ValueError(f"stop_at_layer={stop_at_layer} is outside -{self.n_layers}..{self.n_layers}")
        return stop_at_layer if stop_at_layer >= 0 else self.n_layers + stop_at_layer
