"""An ensemble of TinyLSTM sequence classifiers trained as one vectorized model.

TinyLSTM (the source's model): Embedding(V, E) -> LSTM(E, H) -> Linear(H, 1) on the last hidden state.
`nn.LSTM` cannot be vmapped over K independent weight sets, so the recurrence is written here with
batched matmuls over the model axis and a hand-written backward that keeps only the gate activations.

Gate order inside learnlab is (i, f, o, g) — the three sigmoid gates first, so one sigmoid call covers
them — not PyTorch's (i, f, g, o); `from_torch_lstm_order` converts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# A pre-activation low enough that sigmoid() is exactly 0.0 in float32: padding steps then keep the
# cell and hidden state exactly zero, and send exactly zero gradient.
_CLOSED = -1e4


def _tanh_into(x: Tensor, out: Tensor) -> Tensor:
    """out = tanh(x) computed as 2*sigmoid(2x) - 1: torch's CPU tanh is ~8x slower than its sigmoid."""
    torch.mul(x, 2.0, out=out)
    return out.sigmoid_().mul_(2.0).sub_(1.0)


class LSTMLastHidden(torch.autograd.Function):
    """h_T of an LSTM with h_0 = c_0 = 0, for K models at once.

    xg: [T, K, B, 4H] input pre-activations (x_t W_ih + b), gate order (i, f, o, g).
    w:  [K, H, 4H] recurrent weights. Returns h_T: [K, B, H].
    """

    @staticmethod
    def forward(ctx, xg: Tensor, w: Tensor) -> Tensor:  # type: ignore[override]
        steps, k, b, g4 = xg.shape
        h = g4 // 4
        gates = torch.empty_like(xg)
        cs = xg.new_zeros(steps + 1, k, b, h)
        tcs = xg.new_empty(steps, k, b, h)
        hs = xg.new_zeros(steps + 1, k, b, h)
        for t in range(steps):
            a = torch.baddbmm(xg[t], hs[t], w, out=gates[t])
            a[..., 3 * h :].mul_(2.0)
            a.sigmoid_()
            g = a[..., 3 * h :].mul_(2.0).sub_(1.0)
            c = torch.mul(a[..., h : 2 * h], cs[t], out=cs[t + 1]).addcmul_(a[..., :h], g)
            torch.mul(a[..., 2 * h : 3 * h], _tanh_into(c, tcs[t]), out=hs[t + 1])
        ctx.save_for_backward(gates, cs, tcs, hs, w)
        return hs[steps].clone()

    @staticmethod
    def backward(ctx, dh_last: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        gates, cs, tcs, hs, w = ctx.saved_tensors
        steps, k, b, g4 = gates.shape
        h = g4 // 4
        i, f, o, g = gates.split(h, dim=-1)
        # d(pre-activation)/d(gate output) times the gate's partner in the cell update, for all t at once
        local = torch.cat([g * i * (1 - i), cs[:-1] * f * (1 - f), tcs * o * (1 - o), i * (1 - g * g)], dim=-1).view(
            steps, k, b, 4, h
        )
        dc_from_h = o * (1 - tcs * tcs)
        f = f.contiguous()
        dpre = torch.empty_like(gates)
        dpre4 = dpre.view(steps, k, b, 4, h)
        wt = w.transpose(1, 2).contiguous()
        dh = dh_last.contiguous()
        dc = torch.zeros_like(dh)
        for t in range(steps - 1, -1, -1):
            dc.addcmul_(dh, dc_from_h[t])
            torch.mul(local[t], dc.unsqueeze(2), out=dpre4[t])
            torch.mul(local[t, :, :, 2], dh, out=dpre4[t, :, :, 2])  # the output gate sees dh, not dc
            dh = torch.bmm(dpre[t], wt)
            dc.mul_(f[t])
        h_prev = hs[:-1].permute(1, 3, 0, 2).reshape(k, h, steps * b)
        dw = torch.bmm(h_prev, dpre.permute(1, 0, 2, 3).reshape(k, steps * b, g4))
        return dpre, dw


def _last_hidden_inference(table: Tensor, rows: Tensor, w: Tensor) -> Tensor:
    """The same recurrence without saving anything for backward: memory O(K·B·H), not O(T·K·B·H)."""
    _, k, b = rows.shape
    h4 = w.shape[-1]
    hid = h4 // 4
    state = table.new_zeros(k, b, hid)
    cell = table.new_zeros(k, b, hid)
    tc = torch.empty_like(cell)
    for step_rows in rows:
        a = torch.baddbmm(table.index_select(0, step_rows.reshape(-1)).view(k, b, h4), state, w)
        a[..., 3 * hid :].mul_(2.0)
        a.sigmoid_()
        g = a[..., 3 * hid :].mul_(2.0).sub_(1.0)
        cell.mul_(a[..., hid : 2 * hid]).addcmul_(a[..., :hid], g)
        state = a[..., 2 * hid : 3 * hid] * _tanh_into(cell, tc)
    return state


def from_torch_lstm_order(w: Tensor, dim: int = 0) -> Tensor:
    """Reorder PyTorch's (i, f, g, o) gate blocks along `dim` into learnlab's (i, f, o, g)."""
    i, f, g, o = w.chunk(4, dim=dim)
    return torch.cat([i, f, o, g], dim=dim)


class EnsembleLSTMClassifier(nn.Module):
    """K independent TinyLSTMs with stacked parameters; logits for tokens [K, B, T] -> [K, B].

    Token `vocab_size` is padding: sequences are right-aligned and padding steps leave the state at 0,
    so a padded sequence gives exactly the result of the unpadded one.
    """

    def __init__(self, n_models: int, vocab_size: int, embed_dim: int, hidden_size: int):
        super().__init__()
        k, v, e, h = n_models, vocab_size, embed_dim, hidden_size
        self.vocab_size, self.hidden_size = v, h
        self.embedding = nn.Parameter(torch.empty(k, v, e))
        self.w_ih = nn.Parameter(torch.empty(k, e, 4 * h))
        self.w_hh = nn.Parameter(torch.empty(k, h, 4 * h))
        self.b_ih = nn.Parameter(torch.empty(k, 4 * h))
        self.b_hh = nn.Parameter(torch.empty(k, 4 * h))
        self.w_out = nn.Parameter(torch.empty(k, h))
        self.b_out = nn.Parameter(torch.empty(k))
        pad_row = torch.zeros(k, 1, 4 * h)
        pad_row[..., :h] = _CLOSED  # input gate shut: the state stays exactly zero
        self.register_buffer("pad_row", pad_row, persistent=False)

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """Initialise model k from generators[k] exactly as nn.Embedding, nn.LSTM and nn.Linear do."""
        bound_lstm = 1 / math.sqrt(self.hidden_size)
        bound_out = 1 / math.sqrt(self.hidden_size)
        for k, gen in enumerate(generators):
            self.embedding[k].normal_(generator=gen)
            for p in (self.w_ih, self.w_hh, self.b_ih, self.b_hh):
                p[k].uniform_(-bound_lstm, bound_lstm, generator=gen)
            self.w_out[k].uniform_(-bound_out, bound_out, generator=gen)
            self.b_out[k].uniform_(-bound_out, bound_out, generator=gen)

    def input_table(self) -> Tensor:
        """Gate pre-activations for every token: Embedding then W_ih fold into one lookup table."""
        table = torch.baddbmm((self.b_ih + self.b_hh).unsqueeze(1), self.embedding, self.w_ih)
        return torch.cat([table, self.pad_row.to(table.dtype)], dim=1)  # [K, V+1, 4H]

    def last_hidden(self, tokens: Tensor) -> Tensor:
        k, b, t = tokens.shape
        table = self.input_table()
        rows = tokens.permute(2, 0, 1) + torch.arange(k, device=tokens.device)[:, None] * table.shape[1]
        flat = table.reshape(-1, table.shape[-1])
        if not torch.is_grad_enabled():
            return _last_hidden_inference(flat, rows, self.w_hh)
        xg = flat.index_select(0, rows.reshape(-1)).view(t, k, b, -1)
        return LSTMLastHidden.apply(xg, self.w_hh)

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.last_hidden(tokens)
        return torch.einsum("kbh,kh->kb", hidden, self.w_out) + self.b_out[:, None]
