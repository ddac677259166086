"""TinyLSTMs that read an embedding difference beside the embedding: A3's hand-made inductive biases.

Each input step is e_t (`reference=None`, the standard model), or [e_t, e_t − e_ref] with e_ref the
previous token's embedding (`"neighbor"`, e_{-1} = 0) or the first token's (`"anchor"`). Then
LSTM(H) -> Linear(H, 1) on the last hidden state, as in the source.

A group (`EnsembleDeltaLSTM`) holds K members with one input kind and one embedding width as stacked
[K, ...] parameters and turns tokens into gate pre-activations with batched ops; `DeltaLSTMEnsembles`
runs several groups through one recurrence (`lstm_last_hidden_dense`), so arms of different input
widths still train as one vectorized ensemble.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from learnlab.models.lstm import CLOSED, lstm_last_hidden_dense

REFERENCES = (None, "neighbor", "anchor")


class EnsembleDeltaLSTM(nn.Module):
    """K TinyLSTMs with the same input kind; tokens [K, B, T] (right-aligned, padding token = vocab_size)."""

    def __init__(self, n_models: int, vocab_size: int, embed_dim: int, hidden_size: int, reference: str | None):
        super().__init__()
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, not {reference!r}")
        k, v, e, h = n_models, vocab_size, embed_dim, hidden_size
        self.n_models, self.vocab_size, self.hidden_size, self.reference = k, v, h, reference
        width = e if reference is None else 2 * e
        self.embedding = nn.Parameter(torch.empty(k, v, e))
        self.w_ih = nn.Parameter(torch.empty(k, width, 4 * h))  # gate order (i, f, o, g), as lstm.py
        self.w_hh = nn.Parameter(torch.empty(k, h, 4 * h))
        self.b_ih = nn.Parameter(torch.empty(k, 4 * h))
        self.b_hh = nn.Parameter(torch.empty(k, 4 * h))
        self.w_out = nn.Parameter(torch.empty(k, h))
        self.b_out = nn.Parameter(torch.empty(k))

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """Member k from generators[k]: nn.Embedding's N(0, 1), nn.LSTM's and nn.Linear's U(±1/√H)."""
        bound = 1 / math.sqrt(self.hidden_size)
        for k, gen in enumerate(generators):
            self.embedding[k].normal_(generator=gen)
            for p in (self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_out, self.b_out):
                p[k].uniform_(-bound, bound, generator=gen)

    def gates(self, tokens: Tensor) -> Tensor:
        """Input pre-activations xg [K, T, B, 4H]; padding steps get a shut input gate (state stays 0)."""
        k, b, t = tokens.shape
        v, e = self.vocab_size, self.embedding.shape[-1]
        steps = tokens.transpose(1, 2)  # [K, T, B]
        pad = steps == v
        # the padding token embeds to zero: e_{-1} = 0 for the first real step of a right-aligned row
        table = torch.cat([self.embedding, self.embedding.new_zeros(k, 1, e)], dim=1).reshape(k * (v + 1), e)
        rows = steps + torch.arange(k, device=tokens.device)[:, None, None] * (v + 1)
        emb = table.index_select(0, rows.reshape(-1)).view(k, t, b, e)
        if self.reference == "neighbor":
            ref = torch.cat([emb.new_zeros(k, 1, b, e), emb[:, :-1]], dim=1)
        elif self.reference == "anchor":
            first = (~pad).to(torch.uint8).argmax(dim=1)  # [K, B]: each row's first real step
            ref = emb.gather(1, first[:, None, :, None].expand(k, 1, b, e))
        x = emb if self.reference is None else torch.cat([emb, emb - ref], dim=-1)
        bias = (self.b_ih + self.b_hh).unsqueeze(1)
        xg = torch.baddbmm(bias, x.reshape(k, t * b, -1), self.w_ih).view(k, t, b, -1)
        h = self.hidden_size
        return torch.cat([xg[..., :h].masked_fill(pad[..., None], CLOSED), xg[..., h:]], dim=-1)

    def head(self, hidden: Tensor) -> Tensor:
        # multiply-and-sum, not a matmul with one output column: a member's logits must not depend on K
        return (hidden * self.w_out[:, None, :]).sum(dim=-1) + self.b_out[:, None]

    def forward(self, tokens: Tensor) -> Tensor:
        return DeltaLSTMEnsembles([self])(tokens)


def _start(tokens: Tensor, pad: int) -> Tensor:
    """Each member's first step where any row has begun (right-aligned rows); T if none."""
    started = (tokens != pad).any(dim=1)  # [K, T]
    return torch.where(started.any(dim=1), started.to(torch.uint8).argmax(dim=1), tokens.shape[2])


class DeltaLSTMEnsembles(nn.Module):
    """Several groups trained as one ensemble: members are the groups' members in order.

    forward(tokens [K_total, B, T]) -> logits [K_total, B]. The groups' gate pre-activations and
    recurrent weights are concatenated so that a single recurrence runs every member.
    """

    def __init__(self, groups: Sequence[EnsembleDeltaLSTM]):
        super().__init__()
        self.groups = nn.ModuleList(groups)
        self.sizes = [g.n_models for g in groups]
        self.pad = groups[0].vocab_size

    def forward(self, tokens: Tensor) -> Tensor:
        parts = tokens.split(self.sizes)
        groups: list[EnsembleDeltaLSTM] = list(self.groups)  # type: ignore[arg-type]
        xg = torch.cat([g.gates(x) for g, x in zip(groups, parts, strict=True)])
        w_hh = torch.cat([g.w_hh for g in groups]) if len(groups) > 1 else groups[0].w_hh
        hidden = lstm_last_hidden_dense(xg, w_hh, _start(tokens, self.pad))
        return torch.cat([g.head(h) for g, h in zip(groups, hidden.split(self.sizes), strict=True)])
