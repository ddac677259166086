"""The sortedness task: is this sequence strictly increasing?

Positives are `sorted(random.sample(range(vocab), L))`. Negatives come in kinds of increasing difficulty:
a random sequence drawn with replacement that is not non-decreasing (easy), a positive with one adjacent
pair swapped (hard: exactly one inversion), k non-overlapping adjacent swaps (exactly k inversions), or
one swap of two non-adjacent positions.

Sequences of different lengths share one tensor: they are right-aligned in `width` columns and the
leading columns hold the padding token `vocab` (the recurrent models treat it as "not started yet").
Every function is vectorized over rows and draws only from the generator it is given.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _rand(n: int, m: int, gen: torch.Generator) -> Tensor:
    return torch.rand(n, m, generator=gen, device=gen.device)


def _largest(keys: Tensor, k: int) -> Tensor:
    """Indices of each row's k largest keys, largest first: torch.topk's indices. On a CPU through numpy's
    argpartition, twice as fast at these sizes (the training streams spend half their time here)."""
    if keys.device.type != "cpu":
        return keys.topk(k, dim=1).indices
    x = -keys.numpy()
    top = np.argpartition(x, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(x, top, axis=1), axis=1, kind="stable")
    return torch.from_numpy(np.take_along_axis(top, order, axis=1))


def _offsets(lengths: Tensor, width: int) -> Tensor:
    return width - lengths


def sorted_sequences(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    """Strictly increasing rows of `lengths[i]` distinct tokens from 0..vocab-1, right-aligned."""
    n = lengths.numel()
    sample = _largest(_rand(n, vocab, gen), width)  # a random width-subset, random order
    columns = torch.arange(width, device=lengths.device)
    kept = torch.where(columns < lengths[:, None], sample, -1)  # its first L elements: an L-subset
    values = kept.sort(dim=1).values  # padding (-1) sorts first: right-aligned
    return values.masked_fill_(values < 0, vocab)


def padding_mask(lengths: Tensor, width: int) -> Tensor:
    """True at the leading padding columns of right-aligned rows of these lengths."""
    return torch.arange(width, device=lengths.device) < _offsets(lengths, width)[:, None]


def is_padding(seqs: Tensor, lengths: Tensor) -> Tensor:
    return padding_mask(lengths, seqs.shape[1])


def count_inversions(seqs: Tensor, lengths: Tensor) -> Tensor:
    """Pairs i < j with x_i >= x_j among the real tokens (0 exactly for strictly increasing rows)."""
    real = ~is_padding(seqs, lengths)
    later = torch.triu(torch.ones(seqs.shape[1], seqs.shape[1], dtype=torch.bool, device=seqs.device), 1)
    inverted = seqs[:, :, None] >= seqs[:, None, :]
    both = real[:, :, None] & real[:, None, :]
    return (inverted & both & later).sum(dim=(1, 2))


def random_unsorted(lengths: Tensor, width: int, vocab: int, gen: torch.Generator) -> Tensor:
    """Uniform random rows (with replacement) that are not non-decreasing; rejection-sampled."""
    n = lengths.numel()
    pad = padding_mask(lengths, width)
    seqs = torch.randint(0, vocab, (n, width), generator=gen, device=gen.device)
    while True:
        seqs.masked_fill_(pad, -1)
        descents = (seqs[:, 1:] < seqs[:, :-1]) & ~pad[:, :-1]
        redo = ~descents.any(dim=1)
        if not redo.any():
            return seqs.masked_fill_(pad, vocab)
        rows = redo.nonzero().squeeze(1)
        seqs[rows] = torch.randint(0, vocab, (rows.numel(), width), generator=gen, device=gen.device)


def _swap(seqs: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """Swap columns first[i, j] and second[i, j] in each row i (positions must be disjoint)."""
    out = seqs.clone()
    a, b = seqs.gather(1, first), seqs.gather(1, second)
    out.scatter_(1, first, b)
    out.scatter_(1, second, a)
    return out


def adjacent_swaps(seqs: Tensor, lengths: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Swap k non-overlapping adjacent pairs, uniformly over such choices (k=1: the source's one swap).

    Choosing k non-adjacent pair starts among L-1 is choosing k of L-k positions and spreading them
    (stars and bars): p_j + j for sorted picks p_0 < ... < p_{k-1}.
    """
    if int(lengths.min()) < 2 * k:
        raise ValueError(f"{k} non-overlapping adjacent swaps need length >= {2 * k}")
    n, width = seqs.shape
    slots = lengths - k  # choose k of these
    keys = _rand(n, width, gen).masked_fill_(torch.arange(width, device=seqs.device) >= slots[:, None], 2.0)
    picks = _largest(-keys, k).sort(dim=1).values
    starts = picks + torch.arange(k, device=seqs.device) + _offsets(lengths, width)[:, None]
    return _swap(seqs, starts, starts + 1)


def distant_swap(seqs: Tensor, lengths: Tensor, gen: torch.Generator) -> Tensor:
    """Swap two positions at distance >= 2, uniformly over such pairs."""
    if int(lengths.min()) < 3:
        raise ValueError("a non-adjacent swap needs length >= 3")
    n, width = seqs.shape
    pairs = torch.empty(n, 2, dtype=torch.long, device=seqs.device)
    todo = torch.arange(n, device=seqs.device)
    while todo.numel():
        span = lengths[todo, None].float()
        draw = (_rand(todo.numel(), 2, gen) * span).long().sort(dim=1).values
        ok = draw[:, 1] - draw[:, 0] >= 2
        pairs[todo[ok]] = draw[ok]
        todo = todo[~ok]
    pairs += _offsets(lengths, width)[:, None]
    return _swap(seqs, pairs[:, :1], pairs[:, 1:])
