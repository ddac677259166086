"""L-digit addition in base 10, as digit tokens, and the composite two-digit task built from its skills.

Operands are L digits each (leading zeros allowed, so every L-digit string is equally likely); the answer
is the sum's lowest T digits, T = L + 1 by default (the whole sum, its top digit the final carry). Digits
are stored least-significant first ([n, L]: column i holds the 10^i digit), so column i of the answer
depends on the operands' columns 0..i only. Models read operands as one-hot digits (`encode`) and write
one 10-way token per answer digit.

Two skills on one input (`two_skills`): digits x, y answered with (x + y) mod 10 and x·y mod 10 together.
The two-digit composite (`skill_queries`): on operands a1a0 + b1b0, the query `digit_sum` asks
(a1 + b1) mod 10, `carry` asks [a0 + b0 ≥ 10] (written as the token 0 or 1) and `tens` asks the tens digit
of the sum, (a1 + b1 + carry) mod 10: the composite needs both skills. `token_edit_distance` is the
Levenshtein distance between token strings (Schaeffer et al. 2023's "token edit distance").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASE = 10
MAX_DIGITS = 15  # sums of two 15-digit numbers stay exact in int64
QUERIES = ("digit_sum", "carry", "tens")  # the composite task's queries: skill 1, skill 2, the composite


def check_digits(digits: int, answer_digits: int | None = None) -> None:
    """ValueError naming the bad value: L in 1..MAX_DIGITS, T in 1..L+1."""
    if not 1 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits={digits}: L-digit addition needs 1 <= L <= {MAX_DIGITS}")
    if answer_digits is not None and not 1 <= answer_digits <= digits + 1:
        raise ValueError(f"answer_digits={answer_digits}: the answer has 1 to L + 1 = {digits + 1} digits")


@dataclass(frozen=True)
class Problems:
    """n problems: operands a, b [n, L] and answer [n, T], digits least-significant first."""

    a: np.ndarray
    b: np.ndarray
    answer: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def value(digits: np.ndarray) -> np.ndarray:
    """The integers that rows of digits (least-significant first) write."""
    return (digits.astype(np.int64) * BASE ** np.arange(digits.shape[-1], dtype=np.int64)).sum(-1)


def to_digits(values: np.ndarray, width: int) -> np.ndarray:
    """The lowest `width` digits of each value, least-significant first [n, width]."""
    return values[:, None] // BASE ** np.arange(width, dtype=np.int64) % BASE


def problems(rng: np.random.Generator, n: int, digits: int, answer_digits: int | None = None) -> Problems:
    """n problems with uniformly random L-digit operands; the answer's lowest T digits (default all L + 1)."""
    t = digits + 1 if answer_digits is None else answer_digits
    check_digits(digits, t)
    a = rng.integers(0, BASE, (n, digits))
    b = rng.integers(0, BASE, (n, digits))
    return Problems(a, b, to_digits(value(a) + value(b), t))


def encode(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One-hot operands, a's digits then b's: float32 [n, 2·L·10]."""
    n = len(a)
    eye = np.eye(BASE, dtype=np.float32)
    return np.concatenate([eye[a].reshape(n, -1), eye[b].reshape(n, -1)], axis=1)


def skill_queries(
    rng: np.random.Generator, n: int, query: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n two-digit problems with a query each (uniform over QUERIES, or all `query`): (inputs [n, 43] = the
    one-hot operands and the one-hot query, queries [n], targets [n] in 0..9)."""
    p = problems(rng, n, 2)
    q = rng.integers(0, len(QUERIES), n) if query is None else np.full(n, query)
    digit_sum, carry, tens = skill_answers(p.a, p.b)
    target = np.choose(q, [digit_sum, carry, tens])
    x = np.concatenate([encode(p.a, p.b), np.eye(len(QUERIES), dtype=np.float32)[q]], axis=1)
    return x, q, target


def skill_answers(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For two-digit operands [n, 2]: (a1 + b1) mod 10, the units' carry, and the sum's tens digit."""
    carry = (a[:, 0] + b[:, 0] >= BASE).astype(np.int64)
    return (a[:, 1] + b[:, 1]) % BASE, carry, (a[:, 1] + b[:, 1] + carry) % BASE


def two_skills(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n digit pairs (x, y) and two answers written together: one-hot x then y [n, 20] and the targets
    [n, 2] = ((x + y) mod 10, x·y mod 10): two skills on one input, the composite both right."""
    d = rng.integers(0, BASE, (n, 2))
    eye = np.eye(BASE, dtype=np.float32)
    return eye[d].reshape(n, -1), np.stack([(d[:, 0] + d[:, 1]) % BASE, d[:, 0] * d[:, 1] % BASE], axis=1)


def token_edit_distance(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Levenshtein distance (insert, delete, substitute: cost 1 each) between rows of two token arrays
    [n, T1] and [n, T2], vectorised over rows: [n] ints."""
    n, t1 = pred.shape
    t2 = target.shape[1]
    prev = np.tile(np.arange(t2 + 1), (n, 1))
    for i in range(1, t1 + 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        for j in range(1, t2 + 1):
            sub = prev[:, j - 1] + (pred[:, i - 1] != target[:, j - 1])
            cur[:, j] = np.minimum(np.minimum(prev[:, j] + 1, cur[:, j - 1] + 1), sub)
        prev = cur
    return prev[:, t2]
