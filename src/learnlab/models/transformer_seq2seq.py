"""An ensemble transformer encoder-decoder: K independent models with stacked [K, ...] weights (SCAN's
"small transformer", Vaswani et al. 2017 in pre-norm form).

Encoder: token + learned position embeddings, `n_layers` pre-norm blocks of bidirectional self-attention
(padding keys masked) and a GELU MLP, a final LayerNorm. Decoder: the same embeddings of the shifted
target, `n_layers` blocks of causal self-attention, cross-attention onto the encoder's output and an MLP,
a final LayerNorm and an unembedding. Learned absolute positions, as in the models the SCAN literature
finds failing on the length split (Csordás et al. 2021 fix it with relative positions).

It reuses the GPT-style components of `models.transformer` (the encoder block is its `Block`, given a
padding mask instead of the causal one), its initialisation and its TransformerLens-style hooks, named as
TransformerLens's HookedEncoderDecoder does: `hook_src_embed`, `hook_src_pos_embed`, `encoder.{l}.…` (the
block's points), `hook_encoder_out`; `hook_tgt_embed`, `hook_tgt_pos_embed`, `decoder.{l}.hook_resid_pre`,
`.attn.*`, `.hook_attn_out`, `.hook_resid_mid`, `.cross_attn.*` (q from the decoder; k, v from the
encoder; pattern [K, B, heads, T_out, T_in]), `.hook_cross_attn_out`, `.hook_resid_mid_cross`, `.mlp.*`,
`.hook_mlp_out`, `.hook_resid_post`; then `hook_resid_final` and `ln_final.hook_normalized`.

The interface is `EnsembleSeq2Seq`'s (GRU): `loss(src, tgt, bos, pad, chunks)`, `greedy(src, steps, bos,
eos)`, so a study trains either the same way. Greedy decoding runs one position at a time with the
decoder's keys and values cached (rerunning the prefix made decoding 25x dearer at SCAN's 49 outputs);
it runs no hooks, and a test holds it to teacher forcing on its own outputs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnlab.models.seq2seq import chunked_loss
from learnlab.models.transformer import (
    MLP,
    Attention,
    Block,
    HookedEnsemble,
    Hooks,
    Past,
    _apply,
    _apply_heads,
    _attend,
    _layer_norm,
    _linear,
    _prefixed,
)


class CrossAttention(nn.Module):
    """Multi-head attention from decoder queries onto the encoder's output (padding keys masked)."""

    init_roles: ClassVar[dict[str, str]] = {"w_o": "residual"}

    def __init__(self, n_models: int, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        k, d = n_models, d_model
        self.w_q, self.b_q = nn.Parameter(torch.empty(k, d, d)), nn.Parameter(torch.empty(k, d))
        self.w_kv, self.b_kv = nn.Parameter(torch.empty(k, d, 2 * d)), nn.Parameter(torch.empty(k, 2 * d))
        self.w_o, self.b_o = nn.Parameter(torch.empty(k, d, d)), nn.Parameter(torch.empty(k, d))

    def hook_names(self) -> list[str]:
        return ["hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z"]

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor, hooks: Hooks | None, prefix: str) -> Tensor:
        """x [K, B, T, D] queries, memory [K, B, S, D], memory_mask [K, B, S] (True: a real token)."""
        k, b, t, d = x.shape
        s, h = memory.shape[2], self.n_heads
        q = _linear(x, self.w_q, self.b_q).view(k * b, t, h, d // h).transpose(1, 2).contiguous()
        kv = _linear(memory, self.w_kv, self.b_kv).view(k * b, s, 2, h, d // h).permute(2, 0, 3, 1, 4)
        key, v = (part.contiguous() for part in kv.unbind(0))
        if hooks is not None:
            parts = zip("qkv", (q, key, v), strict=True)
            q, key, v = (_apply_heads(hooks, f"{prefix}.hook_{n}", a, k) for n, a in parts)
        z = _attend(q, key, v, memory_mask.reshape(k * b, 1, 1, s), hooks, prefix, k)
        z = _apply_heads(hooks, f"{prefix}.hook_z", z, k).transpose(1, 2).reshape(k, b, t, d)
        return _linear(z, self.w_o, self.b_o)


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: x + self_attn(ln1(x)), + cross_attn(ln2(x), memory), + mlp(ln3(x))."""

    init_roles: ClassVar[dict[str, str]] = {"ln1_w": "ones", "ln2_w": "ones", "ln3_w": "ones"}

    def __init__(self, n_models: int, d_model: int, n_heads: int, d_mlp: int):
        super().__init__()
        k, d = n_models, d_model
        self.ln1_w, self.ln1_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.ln2_w, self.ln2_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.ln3_w, self.ln3_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.attn = Attention(n_models, d_model, n_heads)
        self.cross_attn = CrossAttention(n_models, d_model, n_heads)
        self.mlp = MLP(n_models, d_model, d_mlp)

    def hook_names(self) -> list[str]:
        return [
            "hook_resid_pre", *_prefixed("attn", self.attn), "hook_attn_out", "hook_resid_mid",
            *_prefixed("cross_attn", self.cross_attn), "hook_cross_attn_out", "hook_resid_mid_cross",
            *_prefixed("mlp", self.mlp), "hook_mlp_out", "hook_resid_post",
        ]  # fmt: skip

    def step(self, x: Tensor, memory: Tensor, memory_mask: Tensor, past: Past) -> tuple[Tensor, Past]:
        """The block at the newest position x [K, B, 1, D] only, its self-attention reading the cache."""
        attn, past = self.attn.step(_layer_norm(x, self.ln1_w, self.ln1_b), past)
        x = x + attn
        x = x + self.cross_attn(_layer_norm(x, self.ln2_w, self.ln2_b), memory, memory_mask, None, "")
        return x + self.mlp(_layer_norm(x, self.ln3_w, self.ln3_b), None, ""), past

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor, hooks: Hooks | None, prefix: str) -> Tensor:
        x = _apply(hooks, f"{prefix}.hook_resid_pre", x)
        attn = self.attn(_layer_norm(x, self.ln1_w, self.ln1_b), None, hooks, f"{prefix}.attn")
        x = _apply(hooks, f"{prefix}.hook_resid_mid", x + _apply(hooks, f"{prefix}.hook_attn_out", attn))
        normed = _layer_norm(x, self.ln2_w, self.ln2_b)
        cross = self.cross_attn(normed, memory, memory_mask, hooks, f"{prefix}.cross_attn")
        x = _apply(hooks, f"{prefix}.hook_resid_mid_cross", x + _apply(hooks, f"{prefix}.hook_cross_attn_out", cross))
        mlp = self.mlp(_layer_norm(x, self.ln3_w, self.ln3_b), hooks, f"{prefix}.mlp")
        return _apply(hooks, f"{prefix}.hook_resid_post", x + _apply(hooks, f"{prefix}.hook_mlp_out", mlp))


def _embed(table: Tensor, positions: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Token rows of table [K, V, D] and position rows 0..T−1 of positions [K, P, D] for tokens [K, B, T]."""
    k, b, t = tokens.shape
    rows = table[torch.arange(k, device=tokens.device)[:, None, None], tokens]
    return rows, positions[:, None, :t].expand(k, b, t, -1)


class EnsembleTransformerSeq2Seq(HookedEnsemble):
    """K transformer encoder-decoders; forward(src [K, B, S], tgt_in [K, B, T]) -> logits [K, B, T, V_out]."""

    init_roles: ClassVar[dict[str, str]] = {"ln_enc_w": "ones", "ln_final_w": "ones"}

    def __init__(
        self,
        n_models: int,
        in_vocab: int,
        out_vocab: int,
        max_in: int,
        max_out: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        d_mlp: int = 256,
    ):
        super().__init__()
        k, d = n_models, d_model
        self.n_models, self.n_layers = k, n_layers
        self.kwargs = {
            "n_models": k, "in_vocab": in_vocab, "out_vocab": out_vocab, "max_in": max_in, "max_out": max_out,
            "d_model": d, "n_layers": n_layers, "n_heads": n_heads, "d_mlp": d_mlp,
        }  # fmt: skip
        self.w_src, self.w_src_pos = nn.Parameter(torch.empty(k, in_vocab, d)), nn.Parameter(torch.empty(k, max_in, d))
        self.w_tgt = nn.Parameter(torch.empty(k, out_vocab, d))
        self.w_tgt_pos = nn.Parameter(torch.empty(k, max_out, d))
        self.encoder = nn.ModuleList(Block(k, d, n_heads, d_mlp) for _ in range(n_layers))
        self.ln_enc_w, self.ln_enc_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.decoder = nn.ModuleList(DecoderBlock(k, d, n_heads, d_mlp) for _ in range(n_layers))
        self.ln_final_w, self.ln_final_b = nn.Parameter(torch.empty(k, d)), nn.Parameter(torch.empty(k, d))
        self.w_unembed = nn.Parameter(torch.empty(k, d, out_vocab))
        self.b_unembed = nn.Parameter(torch.empty(k, out_vocab))

    def hook_names(self) -> list[str]:
        """Every hook point, in the order a forward pass reaches them."""
        names = ["hook_src_embed", "hook_src_pos_embed"]
        for layer, block in enumerate(self.encoder):
            names += _prefixed(f"encoder.{layer}", block)
        names += ["hook_encoder_out", "hook_tgt_embed", "hook_tgt_pos_embed"]
        for layer, block in enumerate(self.decoder):
            names += _prefixed(f"decoder.{layer}", block)
        return [*names, "hook_resid_final", "ln_final.hook_normalized"]

    def encode(self, src: Tensor, pad: int = 0, hooks: Hooks | None = None) -> tuple[Tensor, Tensor]:
        """src [K, B, S] -> (encoder output [K, B, S, D], mask [K, B, S], True at real tokens)."""
        mask = src != pad
        tokens, positions = _embed(self.w_src, self.w_src_pos, src)
        x = _apply(hooks, "hook_src_embed", tokens) + _apply(hooks, "hook_src_pos_embed", positions)
        s = src.shape[-1]
        # a query may attend to every real token (a padding query too, so nothing is NaN)
        allowed = mask[:, :, None, :].expand(*src.shape[:2], s, s)
        for layer, block in enumerate(self.encoder):
            x = block(x, allowed, hooks, f"encoder.{layer}")
        return _apply(hooks, "hook_encoder_out", _layer_norm(x, self.ln_enc_w, self.ln_enc_b)), mask

    def decode_forced(self, memory: Tensor, mask: Tensor, tgt_in: Tensor, hooks: Hooks | None = None) -> Tensor:
        """Teacher forcing: tgt_in [K, B, T] (BOS, y_1 … y_{T−1}) onto the encoded source -> logits."""
        tokens, positions = _embed(self.w_tgt, self.w_tgt_pos, tgt_in)
        x = _apply(hooks, "hook_tgt_embed", tokens) + _apply(hooks, "hook_tgt_pos_embed", positions)
        for layer, block in enumerate(self.decoder):
            x = block(x, memory, mask, hooks, f"decoder.{layer}")
        x = _apply(hooks, "hook_resid_final", x)
        normalized = _apply(hooks, "ln_final.hook_normalized", _layer_norm(x, self.ln_final_w, self.ln_final_b))
        return _linear(normalized, self.w_unembed, self.b_unembed)

    def forward(self, src: Tensor, tgt_in: Tensor, hooks: Hooks | None = None, pad: int = 0) -> Tensor:
        return self.decode_forced(*self.encode(src, pad, hooks), tgt_in, hooks)

    def loss(self, src: Tensor, tgt: Tensor, bos: int, pad: int = 0, chunks: int = 1) -> Tensor:
        """Per-member teacher-forced loss, the decoder in `chunks` length-sorted groups (`chunked_loss`)."""
        return chunked_loss(self, src, tgt, bos, pad, chunks)

    @torch.no_grad()
    def greedy(self, src: Tensor, steps: int, bos: int, eos: int, pad: int = 0) -> Tensor:
        """Greedy decoding: [K, B, steps] predicted ids (stops early once every sequence has emitted eos)."""
        memory, mask = self.encode(src, pad)
        token = src.new_full((*src.shape[:2], 1), bos)
        pasts: list[Past] = [None] * self.n_layers
        out, done = [], torch.zeros(src.shape[:2], dtype=torch.bool, device=src.device)
        for t in range(min(steps, self.w_tgt_pos.shape[1])):
            rows, position = _embed(self.w_tgt, self.w_tgt_pos[:, t : t + 1], token)  # position t
            x = rows + position
            for layer, block in enumerate(self.decoder):
                x, pasts[layer] = block.step(x, memory, mask, pasts[layer])
            token = _linear(_layer_norm(x, self.ln_final_w, self.ln_final_b), self.w_unembed, self.b_unembed).argmax(-1)
            out.append(token[..., 0])
            done |= token[..., 0] == eos
            if done.all():
                break
        pred = torch.stack(out, dim=-1)
        return F.pad(pred, (0, steps - pred.shape[-1]), value=eos)
