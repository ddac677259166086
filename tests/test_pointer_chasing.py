"""Pointer chasing: answers correct by construction, verify labels balanced and right, corruptions wrong."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks import pointer_chasing as pc

shapes = st.tuples(st.integers(0, 2**32 - 1), st.integers(2, pc.MAX_NODES), st.integers(1, 9), st.integers(1, 50))


def naive(table, start, hops):
    for _ in range(hops):
        start = table[start]
    return start


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_answers_follow_the_table_k_times_over_permutations(shape):
    seed, n, k, size = shape
    p = pc.problems(np.random.default_rng(seed), size, n, k)
    assert all(sorted(row) == list(range(n)) for row in p.tables)
    assert [naive(t, s, k) for t, s in zip(p.tables, p.starts, strict=True)] == list(p.answers)


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_corrupted_answers_differ_and_stay_nodes(shape):
    seed, n, k, size = shape
    rng = np.random.default_rng(seed)
    p = pc.problems(rng, size, n, k)
    bad = pc.corrupt(rng, p.answers, n)
    assert (bad != p.answers).all() and ((bad >= 0) & (bad < n)).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, pc.MAX_NODES), st.integers(1, 6))
def test_verify_rows_lay_out_both_formats_and_label_them(seed, n, k):
    rng = np.random.default_rng(seed)
    p = pc.problems(rng, 64, n, k)
    rows, labels = pc.verify_batch(rng, p)
    assert rows.shape == (64, pc.seq_len(n)) and ((rows >= 0) & (rows < pc.VOCAB_SIZE)).all()
    assert (rows[:, pc.eq_pos(n)] == pc.EQ).all() and (rows[:, pc.q_pos(n)] == pc.Q).all()
    assert (rows[:, :n] == p.tables).all() and (rows[:, n] == pc.SEP).all()
    candidates = rows[:, pc.eq_pos(n) + 1]
    assert np.array_equal(labels == pc.YES, candidates == p.answers)
    assert set(np.unique(labels)) <= {pc.YES, pc.NO}


def test_verify_labels_are_balanced():
    p = pc.problems(np.random.default_rng(0), 20000, 8, 3)
    _, labels = pc.verify_batch(np.random.default_rng(1), p)
    assert abs((labels == pc.YES).mean() - 0.5) < 0.02


def test_a_seed_draws_the_same_problems_and_another_seed_others():
    a, b, c = (pc.problems(np.random.default_rng(s), 50, 8, 3) for s in (7, 7, 8))
    assert np.array_equal(a.tables, b.tables) and not np.array_equal(a.tables, c.tables)


@pytest.mark.parametrize(("n", "k"), [(1, 2), (pc.MAX_NODES + 1, 2), (8, 0)])
def test_a_family_outside_the_vocabulary_is_a_one_line_error(n, k):
    with pytest.raises(ValueError, match=r"^(n_nodes|hops)=") as err:
        pc.check(n, k)
    assert "\n" not in str(err.value)
