"""The zigzag and pivot tasks of A3 (`inductive-bias`): rules about differences between tokens.

Zigzag: a sequence is positive when its consecutive differences strictly alternate up, down, up, ...
(first step up). Pivot: positive when every token after the first is >= the first.

The generators follow the source's (reference/zigzag.py, pivot.py) distributions exactly:
- zigzag positive: start uniform in 0..V-1, then each step uniform over the values strictly above
  (going up) or strictly below (going down) the current one. The source restarts the whole sequence
  when no such value exists; that happens only when the start is V-1 (after an up step the value is
  >= 1, after a down step <= V-2), so for L >= 2 the start is simply uniform in 0..V-2;
- zigzag negative: a fresh positive whose position idx+2 (idx uniform in 0..L-3) is redrawn so that
  step idx+1 repeats the direction of step idx; when no such value exists (the value at idx+1 is V-1
  after an up step, or 0 after a down step) the source returns a uniform random sequence instead;
- pivot positive: pivot uniform in 0..V//2, the rest uniform in pivot..V-1;
- pivot negative: a fresh positive with one later position (uniform in 1..L-1) redrawn uniformly below
  the pivot; when the pivot is 0 the source returns a uniform random sequence instead.
A fallback row is uniform random, so it may satisfy the rule by chance (a mislabelled negative, as in
the source); the negative generators say which rows fell back.

Rows of different lengths share one tensor right-aligned behind the padding token `vocab`, as in
`sortedness`. Every function is vectorized over rows and draws only from the generator it is given.
"""

from __future__ import annotations

import torch
from torch import Tensor

from learnlab.tasks.sortedness import padding_mask


def _uniform(n: int, m: int, gen: torch.Generator) -> Tensor:
    # float64: floor(u * n) never rounds up to n for the small ranges used here
    return torch.rand(n, m, generator=gen, device=gen.device, dtype=torch.float64)


def _between(low: Tensor, high: Tensor, u: Tensor) -> Tensor:
    """Uniform integers in [low, high] from uniforms u in [0, 1) (garbage where the range is empty)."""
    span = (high - low + 1).clamp(min=1)
    return low + (u * span).long().minimum(span - 1)


def _right_align(seqs: Tensor, lengths: Tensor, vocab: int) -> Tensor:
    """Left-aligned rows (the first lengths[i] columns are real) -> right-aligned behind padding."""
    width = seqs.shape[1]
    shift = (width - lengths)[:, None]
    source = (torch.arange(width, device=seqs.device) - shift).clamp(min=0)
    return seqs.gather(1, source).masked_fill_(padding_mask(lengths, width), vocab)


def _left_zigzags(n: int, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    u = _uniform(n, width, gen)
    out = torch.empty(n, width, dtype=torch.long, device=gen.device)
    top = torch.full((n,), vocab - 1, dtype=torch.long, device=gen.device)
    zero = torch.zeros_like(top)
    out[:, 0] = _between(zero, top - 1, u[:, 0])  # a start of V-1 is rejected by the source
    for j in range(1, width):
        cur = out[:, j - 1]
        out[:, j] = _between(cur + 1, top, u[:, j]) if j % 2 else _between(zero, cur - 1, u[:, j])
    return out


def random_sequences(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    """Uniform random rows with replacement (the source's fallback negative), right-aligned."""
    seqs = torch.randint(0, vocab, (lengths.numel(), width), generator=gen, device=gen.device)
    return seqs.masked_fill_(padding_mask(lengths, width), vocab)


def zigzags(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    """Positive zigzags (up, down, up, ...) of lengths[i] >= 2 tokens, right-aligned in `width` columns."""
    return _right_align(_left_zigzags(lengths.numel(), width, vocab, gen), lengths, vocab)


def broken_zigzags(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Hard zigzag negatives (one direction repeated) and the rows that fell back to random sequences."""
    if int(lengths.min()) < 3:
        raise ValueError("a broken zigzag needs length >= 3")
    n = lengths.numel()
    seqs = _left_zigzags(n, width, vocab, gen)
    u = _uniform(n, 2, gen)
    idx = _between(torch.zeros_like(lengths), lengths - 3, u[:, 0])
    middle = seqs.gather(1, (idx + 1)[:, None]).squeeze(1)
    up = idx % 2 == 0  # steps alternate from an up step at 0, so step idx is up when idx is even
    top = torch.full_like(middle, vocab - 1)
    bad = torch.where(up, _between(middle + 1, top, u[:, 1]), _between(torch.zeros_like(middle), middle - 1, u[:, 1]))
    seqs.scatter_(1, (idx + 2)[:, None], bad[:, None])
    fallback = torch.where(up, middle >= vocab - 1, middle <= 0)
    seqs = _right_align(seqs, lengths, vocab)
    return torch.where(fallback[:, None], random_sequences(lengths, width, vocab, gen), seqs), fallback


def _left_pivots(n: int, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    u = _uniform(n, width, gen)
    zero = torch.zeros(n, dtype=torch.long, device=gen.device)
    pivot = _between(zero, zero + vocab // 2, u[:, 0])
    rest = _between(pivot[:, None], torch.full_like(pivot, vocab - 1)[:, None], u[:, 1:])
    return torch.cat([pivot[:, None], rest], dim=1)


def pivots(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    """Positive pivot rows (every later token >= the first, first in 0..V//2), right-aligned."""
    return _right_align(_left_pivots(lengths.numel(), width, vocab, gen), lengths, vocab)


def broken_pivots(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Hard pivot negatives (one later token below the pivot) and the rows that fell back to random ones."""
    if int(lengths.min()) < 2:
        raise ValueError("a broken pivot needs length >= 2")
    n = lengths.numel()
    seqs = _left_pivots(n, width, vocab, gen)
    u = _uniform(n, 2, gen)
    pivot = seqs[:, 0]
    idx = _between(torch.ones_like(lengths), lengths - 1, u[:, 0])
    seqs.scatter_(1, idx[:, None], _between(torch.zeros_like(pivot), pivot - 1, u[:, 1])[:, None])
    fallback = pivot == 0
    seqs = _right_align(seqs, lengths, vocab)
    return torch.where(fallback[:, None], random_sequences(lengths, width, vocab, gen), seqs), fallback


def is_zigzag(seqs: Tensor, lengths: Tensor) -> Tensor:
    """Whether each right-aligned row's real tokens go strictly up, down, up, ... from the first."""
    width = seqs.shape[1]
    pair_real = ~padding_mask(lengths, width)[:, :-1]  # both tokens of pair (c, c+1) are real
    step = torch.arange(width - 1, device=seqs.device) - (width - lengths)[:, None]  # index of the step
    diff = seqs[:, 1:] - seqs[:, :-1]
    ok = torch.where(step % 2 == 0, diff > 0, diff < 0)
    return (ok | ~pair_real).all(dim=1)


def is_pivot(seqs: Tensor, lengths: Tensor) -> Tensor:
    """Whether each right-aligned row's real tokens after the first are all >= the first."""
    width = seqs.shape[1]
    first = seqs.gather(1, (width - lengths)[:, None])
    return ((seqs >= first) | padding_mask(lengths, width)).all(dim=1)


TASKS = {"zigzag": (zigzags, broken_zigzags, is_zigzag), "pivot": (pivots, broken_pivots, is_pivot)}
