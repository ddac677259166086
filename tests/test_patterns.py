"""Invariants of the zigzag and pivot generators, on random shapes and seeds (hypothesis)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks import patterns

VOCAB = 50


@st.composite
def batches(draw, min_len=3):
    seed = draw(st.integers(0, 2**31 - 1))
    width = draw(st.integers(min_len, 40))
    n = draw(st.integers(1, 60))
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, width + 1, (n,), generator=gen)
    return gen, lengths, width


def check_layout(seqs, lengths, width):
    pad = patterns.padding_mask(lengths, width)
    assert seqs.shape == (len(lengths), width)
    assert torch.equal(seqs == VOCAB, pad)
    assert ((seqs >= 0) & (seqs < VOCAB) | pad).all()


@settings(max_examples=60, deadline=None)
@given(batches())
def test_zigzags_alternate_and_broken_ones_do_not(b):
    gen, lengths, width = b
    pos = patterns.zigzags(lengths, width, VOCAB, gen)
    neg, fallback = patterns.broken_zigzags(lengths, width, VOCAB, gen)
    check_layout(pos, lengths, width)
    check_layout(neg, lengths, width)
    assert patterns.is_zigzag(pos, lengths).all()
    assert not patterns.is_zigzag(neg, lengths)[~fallback].any()


@settings(max_examples=60, deadline=None)
@given(batches(min_len=2))
def test_pivots_stay_above_the_first_and_broken_ones_do_not(b):
    gen, lengths, width = b
    pos = patterns.pivots(lengths, width, VOCAB, gen)
    neg, fallback = patterns.broken_pivots(lengths, width, VOCAB, gen)
    check_layout(pos, lengths, width)
    check_layout(neg, lengths, width)
    assert patterns.is_pivot(pos, lengths).all()
    first = pos.gather(1, (width - lengths)[:, None]).squeeze(1)
    assert (first <= VOCAB // 2).all()
    assert not patterns.is_pivot(neg, lengths)[~fallback].any()
    # a broken pivot differs from a valid one in exactly one later token, below its first token
    real = ~patterns.padding_mask(lengths, width)
    neg_first = neg.gather(1, (width - lengths)[:, None])
    below = ((neg < neg_first) & real).sum(dim=1)
    assert (below[~fallback] == 1).all()


def test_rule_checks_on_hand_made_rows():
    lengths = torch.tensor([4, 4, 3])
    rows = torch.tensor([[3, 5, 2, 9], [5, 1, 9, 2], [VOCAB, 3, 3, 4]])
    assert patterns.is_zigzag(rows, lengths).tolist() == [True, False, False]
    assert patterns.is_pivot(rows, lengths).tolist() == [False, False, True]


def test_distributions_match_the_source():
    """Start/pivot ranges, the zigzag start of V-1 never used, and the fallback rates (exact formulas)."""
    gen = torch.Generator().manual_seed(0)
    n = 40_000
    lengths = torch.full((n,), 6)
    z = patterns.zigzags(lengths, 6, VOCAB, gen)
    assert z[:, 0].max() == VOCAB - 2 and z[:, 0].min() == 0
    p = patterns.pivots(lengths, 6, VOCAB, gen)
    assert p[:, 0].max() == VOCAB // 2
    _, fallback = patterns.broken_pivots(lengths, 6, VOCAB, gen)
    assert fallback.float().mean().item() == pytest.approx(1 / (VOCAB // 2 + 1), abs=0.005)
    _, fallback = patterns.broken_zigzags(lengths, 6, VOCAB, gen)
    assert 0 < fallback.float().mean().item() < 0.1
