"""An ensemble of TinyLSTM sequence classifiers trained as one vectorized model.

TinyLSTM (the source's model): Embedding(V, E) -> LSTM(E, H) -> Linear(H, 1) on the last hidden state.
`nn.LSTM` cannot be vmapped over K independent weight sets, so the recurrence is written here with
batched matmuls over the model axis and a hand-written backward.

Gate order inside learnlab is (i, f, o, g) — the three sigmoid gates first, so one sigmoid call covers
them — not PyTorch's (i, f, g, o); `from_torch_lstm_order` converts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from learnlab.models import lstm_native

# A pre-activation low enough that sigmoid() is exactly 0.0 in float32: padding steps then keep the
# cell and hidden state exactly zero, and send exactly zero gradient.
CLOSED = -1e4


def _tanh_into(x: Tensor, out: Tensor) -> Tensor:
    """out = tanh(x) computed as 2*sigmoid(2x) - 1: torch's CPU tanh is ~8x slower than its sigmoid."""
    torch.mul(x, 2.0, out=out)
    return out.sigmoid_().mul_(2.0).sub_(1.0)


class LSTMLastHidden(torch.autograd.Function):
    """h_T of an LSTM with h_0 = c_0 = 0, for K models at once; exact, with a hand-written backward.

    table:  [N, 4H] input pre-activations (x W_ih + b) of every (member, token), gate order (i, f, o, g).
    rows:   [T, K, B] the table row each input reads (the embedding lookup, fused in here).
    w:      [K, H, 4H] recurrent weights.
    active: members running at each step, a prefix of the K axis (members start late, never stop early).
    Returns h_T: [K, B, H] (zero for a member that never started).

    On a CPU these tensors are small and the loop is bound by dispatch and memory traffic, so it keeps
    few ops per time step (8 elementwise + 1 matmul forward) and few bytes moved:
    - members that have not started yet are skipped, not fed padding;
    - tanh is never called (slower than sigmoid on CPU): tanh(x) = 2·sigmoid(2x) - 1. The g gate's
      factor 2 is folded into scaled copies of the table and w, so one sigmoid covers all four gates;
    - the cell state is carried doubled, c2 = 2c, so tanh(c) = 2·sigmoid(c2) - 1 needs no extra op;
    - buffers are time-major, so each step's slice is contiguous and nothing is permuted or copied;
    - the forward saves, slot-aligned with the gates S = (i, f, o, σ_g), their partners in the cell
      update M = (2g, c2_{t-1}, tanh c_t, 8i); the backward's local derivatives are then
      (S - S²)·M, two big ops over all steps; the backward overwrites the saved buffers (M becomes the
      local derivatives, S becomes dxg), so it can run once per forward (no retain_graph).
    """

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, w: Tensor, active: tuple[int, ...] | None = None) -> Tensor:  # type: ignore[override]
        steps, k, b = rows.shape
        g4 = table.shape[1]
        active = active or (k,) * steps
        h = g4 // 4
        opts = {"dtype": table.dtype, "device": table.device}
        scale = torch.ones(g4, **opts)
        scale[3 * h :] = 2.0
        # pre-activations, then (in place) activations
        gates = (table * scale).index_select(0, rows.reshape(-1)).view(steps, k, b, g4)
        w2 = w * scale
        partners = torch.empty(steps + 1, k, b, g4, **opts)  # M; M[t+1] slot 1 receives c2_t
        partners[0, :, :, h : 2 * h] = 0.0  # c2_{-1} = 0
        hs = torch.empty(max(steps - 1, 0), k, b, h, **opts)  # h_1 .. h_{T-1}
        h_last = torch.empty(k, b, h, **opts)
        scratch = torch.empty(k, b, h, **opts)
        minus2, minus1 = torch.tensor(-2.0, **opts), torch.tensor(-1.0, **opts)
        if active[-1] < k:
            h_last.zero_()  # members that never started
        for t, n in enumerate(active):  # members n.. have not started yet: skip them
            if t > 0 and active[t - 1] < n:  # members starting now begin from a zero state
                hs[t - 1, active[t - 1] : n].zero_()
                partners[t, active[t - 1] : n, :, h : 2 * h].zero_()
            a = gates[t, :n]
            if t > 0:
                a.baddbmm_(hs[t - 1, :n], w2[:n])
            a.sigmoid_()
            i, f, o, sg = a[..., :h], a[..., h : 2 * h], a[..., 2 * h : 3 * h], a[..., 3 * h :]
            m = partners[t, :n]
            torch.mul(i, 8.0, out=m[..., 3 * h :])
            g2 = torch.add(minus2, sg, alpha=4.0, out=m[..., :h])  # 2·tanh(pre_g)
            c2 = partners[t + 1, :n, :, h : 2 * h]
            if t > 0:
                torch.mul(f, m[..., h : 2 * h], out=c2).addcmul_(i, g2)  # c2 = f·c2 + i·2g
            else:
                torch.mul(i, g2, out=c2)
            tc = torch.add(minus1, torch.sigmoid(c2, out=scratch[:n]), alpha=2.0, out=m[..., 2 * h : 3 * h])
            torch.mul(o, tc, out=(h_last if t == steps - 1 else hs[t])[:n])
        ctx.save_for_backward(gates, partners, hs, w, rows)
        ctx.active, ctx.table_rows = active, table.shape[0]
        return h_last

    @staticmethod
    def backward(ctx, dh_last: Tensor) -> tuple[Tensor, None, Tensor, None]:  # type: ignore[override]
        # The backward reuses the saved buffers in place (the partners become the local derivatives,
        # the gates become dxg): half the memory traffic, which is what bounds this loop on a CPU.
        if getattr(ctx, "consumed", False):
            raise RuntimeError("LSTMLastHidden's backward consumes its saved buffers: no retain_graph")
        ctx.consumed = True
        gates, partners, hs, w, rows = ctx.saved_tensors
        steps, k, b, g4 = gates.shape
        h = g4 // 4
        m = partners[:steps]
        tcs = m[..., 2 * h : 3 * h]
        dc2_from_h = torch.addcmul(
            torch.tensor(0.5, dtype=gates.dtype, device=gates.device), tcs, tcs, value=-0.5
        ).mul_(gates[..., 2 * h : 3 * h])
        # d(pre-activation) per unit of dc2 (gates i, f, g) or of dh (gate o): M·S·(1 - S)
        local = m.mul_(gates).addcmul_(m, gates, value=-1.0).view(steps, k, b, 4, h)
        f = gates[..., h : 2 * h]
        dxg = gates
        d4 = dxg.view(steps, k, b, 4, h)
        dw = torch.zeros_like(w)
        wt = w.transpose(1, 2)
        dh = dh_last.contiguous()
        dc2 = torch.empty_like(dh)
        carried = None  # dc2 flowing back through the forget gate
        for t in range(steps - 1, -1, -1):
            n = ctx.active[t]
            dh, delta = dh[:n], dc2[:n]
            if carried is None:
                torch.mul(dh, dc2_from_h[t, :n], out=delta)
            else:
                torch.addcmul(carried[:n], dh, dc2_from_h[t, :n], out=delta)
            if t > 0:
                carried = torch.mul(delta, f[t, :n])  # before dxg[t] overwrites f[t]
            for gate in (0, 1, 3):  # one mul per gate: a broadcast over gates measured much slower
                torch.mul(local[t, :n, :, gate], delta, out=d4[t, :n, :, gate])
            torch.mul(local[t, :n, :, 2], dh, out=d4[t, :n, :, 2])
            if n < k:
                dxg[t, n:].zero_()
            if t > 0:
                dw[:n].baddbmm_(hs[t - 1, :n].transpose(1, 2), dxg[t, :n])
                dh = torch.bmm(dxg[t, :n], wt[:n])
        dtable = dxg.new_zeros(ctx.table_rows, g4).index_add_(0, rows.reshape(-1), dxg.view(-1, g4))
        return dtable, None, dw, None


def _last_hidden_inference(table: Tensor, rows: Tensor, w: Tensor, start: Tensor | None) -> Tensor:
    """The same recurrence without saving anything for backward: memory O(K·B·H), not O(T·K·B·H).
    rows [T, K, B] index the flat table; a member's state stays zero before its start step."""
    _, k, b = rows.shape
    h4 = w.shape[-1]
    hid = h4 // 4
    state = table.new_zeros(k, b, hid)
    cell = table.new_zeros(k, b, hid)
    tc = torch.empty_like(cell)
    for t, step_rows in enumerate(rows):
        a = torch.baddbmm(table.index_select(0, step_rows.reshape(-1)).view(k, b, h4), state, w)
        a[..., 3 * hid :].mul_(2.0)
        a.sigmoid_()
        g = a[..., 3 * hid :].mul_(2.0).sub_(1.0)
        cell.mul_(a[..., hid : 2 * hid]).addcmul_(a[..., :hid], g)
        state = a[..., 2 * hid : 3 * hid] * _tanh_into(cell, tc)
        if start is not None and bool((start > t).any()):  # members that have not started stay at zero
            live = (start <= t).to(cell.dtype)[:, None, None]
            cell.mul_(live)
            state.mul_(live)
    return state


def lstm_last_hidden(table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor | None = None) -> Tensor:
    """h_T of K independent LSTMs (h_0 = c_0 = 0), each reading its inputs from its own lookup table.

    table: [K, R, 4H] input pre-activations (x W_ih + biases), gate order (i, f, o, g);
    rows:  [K, T, B] which of its table's rows member k reads at each step (for token inputs: the token);
    w_hh:  [K, H, 4H] recurrent weights;
    start: [K] member k's first step — earlier steps are skipped and its state stays zero there (a row
           whose input-gate pre-activation is CLOSED also leaves a zero state zero: per-row padding).
    Returns [K, B, H]. Differentiable in table and w_hh.
    """
    k, r, g4 = table.shape
    steps = rows.shape[1]
    grad = torch.is_grad_enabled() and (table.requires_grad or w_hh.requires_grad)
    if lstm_native.usable(w_hh.shape[1], table, w_hh):
        start = torch.zeros(k, dtype=torch.long) if start is None else start
        if grad:
            return lstm_native.NativeLSTM.apply(table, rows, w_hh, start)
        return lstm_native.inference(table, rows, w_hh, start)
    flat = table.reshape(-1, g4)
    flat_rows = (rows + torch.arange(k, device=rows.device)[:, None, None] * r).transpose(0, 1)  # [T, K, B]
    if not grad:
        return _last_hidden_inference(flat, flat_rows, w_hh, start)
    if start is None:
        return LSTMLastHidden.apply(flat, flat_rows, w_hh, None)
    # Order members by start so that the members running at each step are a prefix of the K axis.
    order = start.argsort(stable=True)
    active = tuple(torch.searchsorted(start[order], torch.arange(steps, device=start.device), right=True).tolist())
    hidden = LSTMLastHidden.apply(flat, flat_rows.index_select(1, order), w_hh.index_select(0, order), active)
    return hidden.index_select(0, order.argsort())


def lstm_last_hidden_dense(xg: Tensor, w_hh: Tensor, start: Tensor | None = None) -> Tensor:
    """`lstm_last_hidden` for inputs that are not token lookups: xg [K, T, B, 4H] pre-activations."""
    k, steps, b, g4 = xg.shape
    rows = torch.arange(steps * b, device=xg.device).view(1, steps, b).expand(k, steps, b)
    return lstm_last_hidden(xg.reshape(k, steps * b, g4), rows, w_hh, start)


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
        pad_row[..., :h] = CLOSED  # input gate shut: the state stays exactly zero
        self.register_buffer("pad_row", pad_row, persistent=False)

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """Initialise model k from generators[k] with the distributions of nn.Embedding (N(0, 1)), nn.LSTM
        and nn.Linear (U(±1/√H) for both here, since the head's fan-in is H)."""
        bound = 1 / math.sqrt(self.hidden_size)
        for k, gen in enumerate(generators):
            self.embedding[k].normal_(generator=gen)
            for p in (self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_out, self.b_out):
                p[k].uniform_(-bound, bound, generator=gen)

    def input_table(self) -> Tensor:
        """Gate pre-activations for every token: Embedding then W_ih fold into one lookup table."""
        table = torch.baddbmm((self.b_ih + self.b_hh).unsqueeze(1), self.embedding, self.w_ih)
        return torch.cat([table, self.pad_row.to(table.dtype)], dim=1)  # [K, V+1, 4H]

    def last_hidden(self, tokens: Tensor) -> Tensor:
        started = (tokens != self.vocab_size).any(dim=1)  # [K, T]: steps where any sequence has begun
        start = torch.where(started.any(dim=1), started.to(torch.uint8).argmax(dim=1), tokens.shape[2])
        return lstm_last_hidden(self.input_table(), tokens.transpose(1, 2), self.w_hh, start)

    def _params(self) -> tuple[Tensor, ...]:
        return (self.embedding, self.w_ih, self.b_ih, self.b_hh, self.w_hh, self.w_out, self.b_out)

    def bce_step(self, tokens: Tensor, labels: Tensor) -> Tensor | None:
        """A training step's per-member mean BCE-with-logits losses [K] (labels [K, B] in [0, 1]) with the
        gradients of their sum put in each parameter's .grad, in one native call and without autograd;
        None where the native kernel cannot run (use autograd then). The .grad tensors are reused."""
        params = self._params()
        if not lstm_native.usable(self.hidden_size, *params):
            return None
        for p in params:
            if p.grad is None or p.grad.shape != p.shape:
                p.grad = torch.empty_like(p, memory_format=torch.contiguous_format)
        return lstm_native.classifier_bce_step(tokens, labels, params, tuple(p.grad for p in params))

    def forward(self, tokens: Tensor) -> Tensor:
        params = self._params()
        if lstm_native.usable(self.hidden_size, *params):  # the whole model in one kernel call
            return lstm_native.classifier_logits(tokens, *params)
        hidden = self.last_hidden(tokens)
        # a multiply-and-sum, not a [K,B,H]@[K,H,1] matmul: MKL takes another path for a batch of one,
        # and a model's logits must not depend on how many models share the ensemble
        return (hidden * self.w_out[:, None, :]).sum(dim=-1) + self.b_out[:, None]


def select_members(model: EnsembleLSTMClassifier, index: Tensor) -> EnsembleLSTMClassifier:
    """A new ensemble whose member j is a copy of model's member index[j] (members may repeat)."""
    out = EnsembleLSTMClassifier(len(index), model.vocab_size, model.embedding.shape[-1], model.hidden_size)
    out.to(model.embedding.device)
    with torch.no_grad():
        for p, q in zip(model.parameters(), out.parameters(), strict=True):
            q.copy_(p.index_select(0, index.to(p.device)))
    return out
