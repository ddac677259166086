"""Invariants of the sortedness generators, checked on random shapes and seeds (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks import sortedness as task

VOCAB = 50


@st.composite
def batches(draw, min_len=2):
    seed = draw(st.integers(0, 2**31 - 1))
    width = draw(st.integers(min_len, 20))
    n = draw(st.integers(1, 40))
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, width + 1, (n,), generator=gen)
    return gen, lengths, width


def real_parts(seqs, lengths):
    return [row[len(row) - int(n) :] for row, n in zip(seqs, lengths, strict=True)]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_sorted_sequences_are_strictly_increasing_distinct_and_right_aligned(b):
    gen, lengths, width = b
    seqs = task.sorted_sequences(lengths, width, VOCAB, gen)
    assert seqs.shape == (len(lengths), width)
    assert torch.equal(task.is_padding(seqs, lengths), seqs == VOCAB)
    for real in real_parts(seqs, lengths):
        assert (real[1:] > real[:-1]).all()
        assert ((real >= 0) & (real < VOCAB)).all()
    assert (task.count_inversions(seqs, lengths) == 0).all()


@settings(max_examples=60, deadline=None)
@given(batches())
def test_random_unsorted_are_never_non_decreasing(b):
    gen, lengths, width = b
    seqs = task.random_unsorted(lengths, width, VOCAB, gen)
    assert torch.equal(task.is_padding(seqs, lengths), seqs == VOCAB)
    for real in real_parts(seqs, lengths):
        assert (real[1:] < real[:-1]).any()
        assert ((real >= 0) & (real < VOCAB)).all()


@settings(max_examples=60, deadline=None)
@given(batches(min_len=6), st.integers(1, 3))
def test_k_adjacent_swaps_make_exactly_k_inversions(b, k):
    gen, lengths, width = b
    base = task.sorted_sequences(lengths, width, VOCAB, gen)
    swapped = task.adjacent_swaps(base, lengths, k, gen)
    assert torch.equal(swapped.sort(dim=1).values, base.sort(dim=1).values)  # same tokens
    assert (task.count_inversions(swapped, lengths) == k).all()
    assert ((swapped != base).sum(dim=1) == 2 * k).all()
    assert torch.equal(swapped == VOCAB, base == VOCAB)


@settings(max_examples=60, deadline=None)
@given(batches(min_len=3))
def test_distant_swap_exchanges_two_non_adjacent_positions(b):
    gen, lengths, width = b
    base = task.sorted_sequences(lengths, width, VOCAB, gen)
    swapped = task.distant_swap(base, lengths, gen)
    assert torch.equal(swapped.sort(dim=1).values, base.sort(dim=1).values)
    for row_new, row_old in zip(swapped, base, strict=True):
        moved = (row_new != row_old).nonzero().squeeze(1)
        assert len(moved) == 2 and int(moved[1] - moved[0]) >= 2
    gaps = [int(torch.diff((n != o).nonzero().squeeze(1))) for n, o in zip(swapped, base, strict=True)]
    assert task.count_inversions(swapped, lengths).tolist() == [2 * d - 1 for d in gaps]


def test_one_swap_position_is_uniform_over_adjacent_pairs():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.full((20000,), 6)
    base = task.sorted_sequences(lengths, 6, VOCAB, gen)
    first = (task.adjacent_swaps(base, lengths, 1, gen) != base).float().argmax(dim=1)
    counts = torch.bincount(first, minlength=5).float() / len(first)
    assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.015)


def test_generators_depend_only_on_their_generator():
    lengths = torch.full((8,), 10)
    a = task.sorted_sequences(lengths, 12, VOCAB, torch.Generator().manual_seed(7))
    b = task.sorted_sequences(lengths, 12, VOCAB, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
