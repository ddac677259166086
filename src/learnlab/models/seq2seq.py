"""An ensemble GRU encoder-decoder with attention: K independent seq2seq models with stacked [K, ...] weights.

Encoder: Embedding(V_in, E) -> GRU(E, H) over the command (padding steps keep the state). Decoder:
Embedding(V_out, E) -> GRU(E, H) started from the encoder's last state, then Luong's global attention
(dot score against the encoder outputs, padding masked), h~ = tanh(W_c [h; context]) and a linear readout
to the output vocabulary. Without input feeding the decoder's recurrence does not depend on the attention,
so under teacher forcing its input projections are one matmul over all steps and only h·W_hh runs per
step; greedy decoding runs step by step, feeding back the argmax.

The GRU is PyTorch's (gates r, z, n; n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)); h' = (1 − z) n + z h),
so `nn.GRU` with the same sizes is the same model (benchmarks/bench_scan.py compares the two). Every
weight has a leading model axis and every matmul is batched over it: member k's computation is its own,
and an ensemble trains like K separate models up to float rounding (tests/test_seq2seq.py). No dropout
(Lake & Baroni used 0.5): the members stay deterministic given their batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnlab.models.transformer import _linear


def _embed(w: Tensor, tokens: Tensor) -> Tensor:
    """w [K, V, E], tokens [K, B, T] -> [K, B, T, E], each member reading its own table."""
    return w[torch.arange(w.shape[0], device=tokens.device)[:, None, None], tokens]


class GRURecurrence(torch.autograd.Function):
    """The GRU's recurrence over T steps for K members, with a hand-written backward.

    xg [T, K, B, 3H] input pre-activations (x W_ih + b_ih, time-major), h0 [K, B, H], w_hh [K, H, 3H],
    b_hh [K, 3H], mask [T, K, B] (False: padding, the state carried over) or None -> states [T, K, B, H].
    Autograd over the step's ~10 small ops makes ~25 backward nodes per step and one weight-gradient bmm per
    step; here the backward runs one bmm per step (the gradient into h) and the weight gradient as one bmm
    over all steps at the end.
    """

    @staticmethod
    def forward(ctx, xg: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, mask: Tensor | None) -> Tensor:  # type: ignore[override]
        steps, d = xg.shape[0], h0.shape[-1]
        hs = h0.new_empty(steps + 1, *h0.shape)
        hs[0] = h0
        gates = xg.new_empty(steps, *h0.shape[:2], 3 * d)  # r, z, n
        hg_n = h0.new_empty(steps, *h0.shape)
        for t in range(steps):
            h = hs[t]
            hg = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh)
            rz = torch.sigmoid(xg[t, ..., : 2 * d] + hg[..., : 2 * d])
            r, z = rz[..., :d], rz[..., d:]
            n = torch.tanh(xg[t, ..., 2 * d :] + r * hg[..., 2 * d :])
            gates[t, ..., : 2 * d], gates[t, ..., 2 * d :], hg_n[t] = rz, n, hg[..., 2 * d :]
            new = n + z * (h - n)
            hs[t + 1] = new if mask is None else torch.where(mask[t, ..., None], new, h)
        ctx.save_for_backward(hs, gates, hg_n, w_hh, mask)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, None]:  # type: ignore[override]
        hs, gates, hg_n, w_hh, mask = ctx.saved_tensors
        steps, d = gates.shape[0], hs.shape[-1]
        d_hg = gates.new_empty(gates.shape)  # the gradient into h·W_hh + b_hh, per step
        d_xg = gates.new_empty(gates.shape)
        w_t = w_hh.transpose(1, 2)
        dh = torch.zeros_like(hs[0])
        for t in range(steps - 1, -1, -1):
            dh = dh + d_out[t]
            h = hs[t]
            r, z, n = gates[t, ..., :d], gates[t, ..., d : 2 * d], gates[t, ..., 2 * d :]
            d_new = dh if mask is None else dh * mask[t, ..., None]
            dn_pre = d_new * (1 - z) * (1 - n * n)
            dz_pre = d_new * (h - n) * z * (1 - z)
            dr_pre = dn_pre * hg_n[t] * r * (1 - r)
            d_xg[t, ..., :d], d_xg[t, ..., d : 2 * d], d_xg[t, ..., 2 * d :] = dr_pre, dz_pre, dn_pre
            d_hg[t, ..., :d], d_hg[t, ..., d : 2 * d], d_hg[t, ..., 2 * d :] = dr_pre, dz_pre, dn_pre * r
            carried = d_new * z if mask is None else d_new * z + dh * ~mask[t, ..., None]
            dh = torch.baddbmm(carried, d_hg[t], w_t)
        k, h_dim = hs.shape[1], hs.shape[-1]
        h_prev = hs[:-1].permute(1, 3, 0, 2).reshape(k, h_dim, -1)  # [K, H, T*B]
        d_w = torch.bmm(h_prev, d_hg.permute(1, 0, 2, 3).reshape(k, -1, 3 * d))
        return d_xg, dh, d_w, d_hg.sum((0, 2)), None


class GRU(nn.Module):
    """A stacked GRU layer with PyTorch's gate layout, over [K, B, T, E] inputs."""

    def __init__(self, n_models: int, d_in: int, d_hidden: int):
        super().__init__()
        k, h = n_models, d_hidden
        self.w_ih, self.b_ih = nn.Parameter(torch.empty(k, d_in, 3 * h)), nn.Parameter(torch.empty(k, 3 * h))
        self.w_hh, self.b_hh = nn.Parameter(torch.empty(k, h, 3 * h)), nn.Parameter(torch.empty(k, 3 * h))

    def step(self, xg: Tensor, h: Tensor) -> Tensor:
        """One step from input pre-activations xg [K, B, 3H] and state h [K, B, H] (greedy decoding)."""
        hg = torch.baddbmm(self.b_hh.unsqueeze(1), h, self.w_hh)
        d = h.shape[-1]
        r, z = torch.sigmoid(xg[..., : 2 * d] + hg[..., : 2 * d]).chunk(2, dim=-1)
        n = torch.tanh(xg[..., 2 * d :] + r * hg[..., 2 * d :])
        return n + z * (h - n)

    def forward(self, x: Tensor, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [K, B, T, E], h [K, B, H], mask [K, B, T] (False: padding, the state carried over) ->
        (outputs [K, B, T, H], last state [K, B, H])."""
        xg = _linear(x, self.w_ih, self.b_ih).permute(2, 0, 1, 3).contiguous()  # time-major
        time_mask = None if mask is None else mask.permute(2, 0, 1).contiguous()
        states = GRURecurrence.apply(xg, h, self.w_hh, self.b_hh, time_mask)
        return states.permute(1, 2, 0, 3), states[-1]


class EnsembleSeq2Seq(nn.Module):
    """K GRU encoder-decoders with attention; forward(src, tgt_in) -> logits [K, B, T_out, V_out]."""

    def __init__(self, n_models: int, in_vocab: int, out_vocab: int, d_embed: int = 32, d_hidden: int = 64):
        super().__init__()
        k, e, h = n_models, d_embed, d_hidden
        self.n_models = k
        self.kwargs = {"n_models": k, "in_vocab": in_vocab, "out_vocab": out_vocab, "d_embed": e, "d_hidden": h}
        self.w_src, self.w_tgt = nn.Parameter(torch.empty(k, in_vocab, e)), nn.Parameter(torch.empty(k, out_vocab, e))
        self.encoder, self.decoder = GRU(k, e, h), GRU(k, e, h)
        self.w_c, self.b_c = nn.Parameter(torch.empty(k, 2 * h, h)), nn.Parameter(torch.empty(k, h))
        self.w_out, self.b_out = nn.Parameter(torch.empty(k, h, out_vocab)), nn.Parameter(torch.empty(k, out_vocab))

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """PyTorch's defaults, member k from generators[k]: embeddings N(0, 1), GRU weights and biases
        U(±1/√H), the linear layers U(±1/√fan_in); drawn in parameter order."""
        for k, gen in enumerate(generators):
            for name, p in self.named_parameters():
                if name.startswith("w_src") or name.startswith("w_tgt"):
                    p[k].normal_(0.0, 1.0, generator=gen)
                    continue
                if name.startswith(("encoder", "decoder")):
                    fan = self.encoder.w_hh.shape[1]
                else:
                    fan = (self.w_c if name.endswith("_c") else self.w_out).shape[1]
                bound = 1 / math.sqrt(fan)
                p[k].uniform_(-bound, bound, generator=gen)

    def encode(self, src: Tensor, pad: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """src [K, B, T_in] -> (encoder outputs [K, B, T_in, H], last state [K, B, H], mask [K, B, T_in])."""
        mask = src != pad
        h0 = src.new_zeros(*src.shape[:2], self.encoder.w_hh.shape[1], dtype=self.w_src.dtype)
        outs, h = self.encoder(_embed(self.w_src, src), h0, mask)
        return outs, h, mask

    def readout(self, dec: Tensor, enc: Tensor, mask: Tensor) -> Tensor:
        """Attention and readout: decoder states [K, B, T, H] -> logits [K, B, T, V_out]."""
        k, b, t, h = dec.shape
        scores = (dec.reshape(k * b, t, h) @ enc.reshape(k * b, -1, h).transpose(1, 2)).view(k, b, t, -1)
        weights = scores.masked_fill(~mask[:, :, None, :], float("-inf")).softmax(dim=-1)
        context = (weights.reshape(k * b, t, -1) @ enc.reshape(k * b, -1, h)).view(k, b, t, h)
        attn = torch.tanh(_linear(torch.cat([dec, context], dim=-1), self.w_c, self.b_c))
        return _linear(attn, self.w_out, self.b_out)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src [K, B, T_in], tgt_in [K, B, T_out] (BOS, y_1 … y_{T−1}) -> logits."""
        enc, h, mask = self.encode(src)
        return self.decode_forced(enc, h, mask, tgt_in)

    def decode_forced(self, enc: Tensor, h: Tensor, mask: Tensor, tgt_in: Tensor) -> Tensor:
        dec, _ = self.decoder(_embed(self.w_tgt, tgt_in), h)
        return self.readout(dec, enc, mask)

    def loss(self, src: Tensor, tgt: Tensor, bos: int, pad: int = 0, chunks: int = 1) -> Tensor:
        """Per-member teacher-forced loss, the decoder in `chunks` length-sorted groups (`chunked_loss`)."""
        return chunked_loss(self, src, tgt, bos, pad, chunks)

    @torch.no_grad()
    def greedy(self, src: Tensor, steps: int, bos: int, eos: int) -> Tensor:
        """Greedy decoding: [K, B, steps] predicted ids (stops early once every sequence has emitted eos)."""
        enc, h, mask = self.encode(src)
        token = src.new_full(src.shape[:2], bos)
        out, done = [], torch.zeros_like(token, dtype=torch.bool)
        for _ in range(steps):
            x = _linear(_embed(self.w_tgt, token[..., None]), self.decoder.w_ih, self.decoder.b_ih)[:, :, 0]
            h = self.decoder.step(x, h)
            token = self.readout(h[:, :, None], enc, mask)[:, :, 0].argmax(dim=-1)
            out.append(token)
            done |= token == eos
            if done.all():
                break
        pred = torch.stack(out, dim=-1)
        return F.pad(pred, (0, steps - pred.shape[-1]), value=eos)


def chunked_loss(model: nn.Module, src: Tensor, tgt: Tensor, bos: int, pad: int = 0, chunks: int = 1) -> Tensor:
    """A seq2seq ensemble's per-member teacher-forced loss [K] (`sequence_loss`), its decoder run in `chunks`
    groups of commands sorted by target length, each only as long as its longest target: the same loss and
    gradients as one group (up to float rounding; every command's decoding is its own), at a fraction of the
    decoder's cost, since a batch's targets are mostly far shorter than its longest. The model has
    `encode(src, pad)` -> a tuple of tensors with the batch on axis 1, and `decode_forced(*encoded, tgt_in)`."""
    lengths = (tgt != pad).sum(-1)
    order = lengths.argsort(dim=1, stable=True)
    src, tgt = src.gather(1, order[..., None].expand_as(src)), tgt.gather(1, order[..., None].expand_as(tgt))
    size = -(-src.shape[1] // chunks)
    parts = [p.split(size, dim=1) for p in (*model.encode(src, pad), tgt)]
    total, count = 0.0, 0.0
    for *encoded, tgt_c in zip(*parts, strict=True):
        tgt_c = tgt_c[..., : int((tgt_c != pad).sum(-1).max())]
        tgt_in = torch.cat([torch.full_like(tgt_c[..., :1], bos), tgt_c[..., :-1]], dim=-1)
        logits = model.decode_forced(*encoded, tgt_in)
        ce = F.cross_entropy(logits.flatten(0, 2), tgt_c.flatten(), reduction="none").view(tgt_c.shape)
        keep = (tgt_c != pad).to(ce.dtype)
        total = total + (ce * keep).sum((1, 2))
        count = count + keep.sum((1, 2))
    return total / count


def sequence_loss(logits: Tensor, target: Tensor, pad: int = 0) -> Tensor:
    """Per-member mean cross-entropy over the non-pad target tokens: logits [K, B, T, V], target [K, B, T] -> [K]."""
    k, v = logits.shape[0], logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, v), target.reshape(-1), reduction="none").view(k, -1)
    keep = (target != pad).reshape(k, -1).to(ce.dtype)
    return (ce * keep).sum(1) / keep.sum(1)


def decode_scores(pred: Tensor, target: Tensor, eos: int, pad: int = 0) -> tuple[Tensor, Tensor]:
    """Exact match and per-token accuracy of greedy outputs pred [K, B, T] against target [K, B, T] (actions,
    then eos, then pad): exact = every target position right (eos included, so nothing extra or missing);
    token = the share of target positions (eos included) where the prediction is right. Both [K, B]."""
    n = min(pred.shape[-1], target.shape[-1])
    right = (pred[..., :n] == target[..., :n]) | (target[..., :n] == pad)
    real = (target != pad).sum(-1).clamp(min=1)
    exact = right.all(-1)
    token = ((pred[..., :n] == target[..., :n]) & (target[..., :n] != pad)).sum(-1) / real
    return exact, token.to(torch.float32)
