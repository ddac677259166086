"""Multi-operand modular addition with a scratchpad that may add the operands in any order.

An item is n digits a_0 … a_{n-1} in base m (the modulus; n from `min_operands` to `max_operands`) and
its answer (a_0 + … + a_{n-1}) mod m; it takes n − 1 additions (its `steps`). The prompt holds the digits in slots
0 … max_operands − 1 (unused slots BLANK) and then `=`. A solution is a scratchpad of n pairs
(pointer P_i, running sum): the pointers visit the item's slots in a uniformly random order, and each
running sum is the previous one plus the operand pointed at, mod 10 (the first is the operand itself).
Many orders reach the same answer — the diverse reasoning paths of self-consistency — and the answer is
the last running sum.

Label noise: each addition's sum is, with probability `noise`, written wrong (shifted by a uniform
1 … m − 1), and later sums continue from the written value, so a slip carries into the answer as a slip in
real arithmetic does. A model fit to such solutions spreads its probability over paths that end in
different answers, with the true answer the commonest ending.

Tokens: digits 0 … m − 1, BLANK = m, EQ = m + 1, then one pointer token per slot (from m + 2); the
scratchpad is padded with BLANK after its n pairs (those positions carry no loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_OPERANDS = 12
MAX_MODULUS = 100


def blank(modulus: int) -> int:
    return modulus


def eq(modulus: int) -> int:
    return modulus + 1


def pointer0(modulus: int) -> int:
    """The pointer to slot i is pointer0 + i."""
    return modulus + 2


def vocab_size(modulus: int, max_operands: int) -> int:
    return pointer0(modulus) + max_operands


def prompt_len(max_operands: int) -> int:
    return max_operands + 1


def scratch_len(max_operands: int) -> int:
    return 2 * max_operands


def seq_len(max_operands: int) -> int:
    return prompt_len(max_operands) + scratch_len(max_operands)


def check(min_operands: int, max_operands: int, modulus: int = 10) -> None:
    """ValueError naming the bad value: 2 <= min_operands <= max_operands <= MAX_OPERANDS, 2 <= modulus <=
    MAX_MODULUS."""
    if not 2 <= modulus <= MAX_MODULUS:
        raise ValueError(f"modulus={modulus}: need 2 <= modulus <= {MAX_MODULUS}")
    if not 2 <= min_operands <= max_operands <= MAX_OPERANDS:
        raise ValueError(
            f"min_operands={min_operands}, max_operands={max_operands}: need 2 <= min_operands <= max_operands "
            f"<= {MAX_OPERANDS}"
        )


@dataclass(frozen=True)
class Items:
    """n items: digits [n, max_operands] (-1 in unused slots), operand counts [n], answers [n], modulus."""

    digits: np.ndarray
    counts: np.ndarray
    answers: np.ndarray
    modulus: int = 10

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def steps(self) -> np.ndarray:
        """Additions per item: n − 1."""
        return self.counts - 1


def items(rng: np.random.Generator, n: int, min_operands: int, max_operands: int, modulus: int = 10) -> Items:
    """n items with a uniform operand count and uniform digits in 0 … modulus − 1."""
    check(min_operands, max_operands, modulus)
    counts = rng.integers(min_operands, max_operands + 1, n)
    digits = rng.integers(0, modulus, (n, max_operands))
    digits[np.arange(max_operands)[None, :] >= counts[:, None]] = -1
    return Items(digits, counts, np.where(digits >= 0, digits, 0).sum(1) % modulus, modulus)


def prompts(it: Items) -> np.ndarray:
    """Prompt tokens [n, max_operands + 1]: the digits (BLANK in unused slots), then EQ."""
    slots = np.where(it.digits >= 0, it.digits, blank(it.modulus))
    return np.concatenate([slots, np.full((len(it), 1), eq(it.modulus))], axis=1)


def solutions(rng: np.random.Generator, it: Items, noise: float) -> np.ndarray:
    """Scratchpads [n, 2·max_operands]: pointer, running sum, … in a random order per item, each addition's
    sum shifted by a uniform 1 … m − 1 with probability `noise` (later sums continue from it); BLANK after."""
    n, m = it.digits.shape
    keys = rng.random((n, m))
    keys[it.digits < 0] = np.inf  # unused slots sort last
    order = np.argsort(keys, axis=1)  # [n, m]: the visited slots first
    picked = np.take_along_axis(it.digits, order, axis=1)
    base = it.modulus
    slip = (rng.random((n, m)) < noise) * rng.integers(1, base, (n, m))
    slip[:, 0] = 0  # the first "sum" copies an operand: no addition to slip on
    sums = np.cumsum(np.where(picked >= 0, picked, 0) + slip, axis=1) % base
    out = np.empty((n, 2 * m), dtype=np.int64)
    out[:, 0::2] = pointer0(base) + order
    out[:, 1::2] = sums
    out[np.arange(2 * m)[None, :] >= 2 * it.counts[:, None]] = blank(base)
    return out


def read_answers(scratch: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The answer a scratchpad [..., 2·max_operands] ends in: its n-th running sum (n = counts, [...])."""
    return np.take_along_axis(scratch, (2 * counts - 1)[..., None], axis=-1)[..., 0]


def is_pointer(position: np.ndarray | int) -> np.ndarray | bool:
    """Scratchpad positions (0-based) that hold pointers; the others hold running sums."""
    return np.asarray(position) % 2 == 0
