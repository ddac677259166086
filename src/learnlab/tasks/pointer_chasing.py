"""k-hop pointer chasing over a random permutation, in a solve and a verify format over one vocabulary.

A problem is a permutation f of n nodes, written as its table f(0) … f(n−1) (the position of a token
names its source node), a start node s, and the number of hops k (fixed per study): the answer is
f^k(s). Each hop is one lookup, so a model needs depth — or loops — that grows with k: accuracy with
few loops is low and rises with more, which is what a looped transformer's per-loop readout is for.

One sequence serves both formats (causal attention reads a prefix without what follows it):

    f(0) … f(n−1)  SEP  s  EQ  c  Q
                           ^solve: the answer is read here   ^verify: Y or N is read here

Solve reads the output at EQ (the candidate c after it is invisible there); verify reads it at Q, with
c a candidate answer: the true one (label Y) or a corrupted one (N). Node tokens are 0 … MAX_NODES−1,
then the special tokens, so the vocabulary is one for every n ≤ MAX_NODES. Every draw comes from the
numpy Generator passed in (one per seed), so a member's data depend on its seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_NODES = 24  # node tokens in the vocabulary
SEP, EQ, Q, YES, NO = range(MAX_NODES, MAX_NODES + 5)
VOCAB_SIZE = MAX_NODES + 5
TOKENS = [*(str(i) for i in range(MAX_NODES)), "|", "=", "?", "Y", "N"]


def seq_len(n_nodes: int) -> int:
    return n_nodes + 5


def eq_pos(n_nodes: int) -> int:
    """Where the solve answer is read (the EQ token)."""
    return n_nodes + 2


def q_pos(n_nodes: int) -> int:
    """Where the verify verdict is read (the Q token, last)."""
    return n_nodes + 4


@dataclass(frozen=True)
class Problems:
    """A batch of problems: tables [B, n] (row i is f), starts [B], answers [B] = f^k(start)."""

    tables: np.ndarray
    starts: np.ndarray
    answers: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def check(n_nodes: int, hops: int) -> None:
    """ValueError (a one-line message) when the problem family does not fit the vocabulary."""
    if not 2 <= n_nodes <= MAX_NODES:
        raise ValueError(f"n_nodes={n_nodes} must be 2 … {MAX_NODES} (the vocabulary's node tokens)")
    if hops < 1:
        raise ValueError(f"hops={hops} must be at least 1")


def chase(tables: np.ndarray, starts: np.ndarray, hops: int) -> np.ndarray:
    """f^hops(start) for every row, by following the table `hops` times."""
    rows = np.arange(len(starts))
    node = np.asarray(starts).copy()
    for _ in range(hops):
        node = tables[rows, node]
    return node


def problems(rng: np.random.Generator, size: int, n_nodes: int, hops: int) -> Problems:
    """`size` problems: uniform random permutations and start nodes."""
    check(n_nodes, hops)
    tables = rng.permuted(np.tile(np.arange(n_nodes), (size, 1)), axis=1)
    starts = rng.integers(0, n_nodes, size)
    return Problems(tables, starts, chase(tables, starts, hops))


def corrupt(rng: np.random.Generator, answers: np.ndarray, n_nodes: int) -> np.ndarray:
    """For every answer, a uniformly drawn other node (never the answer itself)."""
    shift = rng.integers(1, n_nodes, len(answers))
    return (np.asarray(answers) + shift) % n_nodes


def sequences(p: Problems, candidates: np.ndarray) -> np.ndarray:
    """Token rows [B, n + 5]: table SEP start EQ candidate Q (the solve format is its prefix up to EQ)."""
    b = len(p)
    cols = [
        p.tables,
        np.full((b, 1), SEP),
        p.starts[:, None],
        np.full((b, 1), EQ),
        candidates[:, None],
        np.full((b, 1), Q),
    ]
    return np.concatenate(cols, axis=1).astype(np.int64)


def verify_batch(rng: np.random.Generator, p: Problems) -> tuple[np.ndarray, np.ndarray]:
    """Training rows for both formats at once: candidates true or corrupted (a fair coin each), and the
    verify labels (YES where the candidate is the answer, else NO)."""
    true = rng.random(len(p)) < 0.5
    candidates = np.where(true, p.answers, corrupt(rng, p.answers, p.tables.shape[1]))
    return sequences(p, candidates), np.where(true, YES, NO)
