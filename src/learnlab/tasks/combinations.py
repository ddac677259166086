"""Attribute combinations with a label that needs both attributes, seen at frequencies spanning ≥ 100×.

Two attributes (think colour and shape) take `n` values each; combination (a, b) is labelled
L[a, b] = (π(a) + ρ(b)) mod n for random permutations π, ρ: a Latin square, so every row and every column
holds each label once and neither attribute alone says anything about the label — a model must learn the
combination. An example of (a, b) is a noisy rendering: the two attributes' prototype vectors (random unit
vectors in R^dim), each plus N(0, noise²) per coordinate, concatenated; accuracy on a combination is then
a fraction over its renderings, not a 0/1 lookup.

Frequencies: the n² − 1 trained combinations are dealt at random into `bins` frequency levels, log-spaced
from 1 to `span` (the deck: 10 versus 1000 examples, span 100), as evenly as the count allows; one
combination, `held_out`, is never trained on (weight 0). Training draws a combination with probability
∝ its level, and a fresh rendering every time (frequency is a sampling rate, not a fixed dataset). Every
seed has its own square, prototypes and dealing, so frequency is not tied to particular attribute values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from learnlab.engine.rng import generator, stream_seed


@dataclass(frozen=True)
class Combinations:
    """One seed's task: labels [n, n], prototypes [2, n, dim], levels [bins], bin [n, n] (−1: held out)."""

    labels: np.ndarray
    prototypes: np.ndarray
    levels: np.ndarray
    bin: np.ndarray
    held_out: tuple[int, int]

    @property
    def n(self) -> int:
        return self.labels.shape[0]

    @property
    def weights(self) -> np.ndarray:
        """Each combination's relative training frequency [n, n]: its bin's level, 0 where held out."""
        return np.where(self.bin >= 0, self.levels[np.maximum(self.bin, 0)], 0.0)

    @property
    def probabilities(self) -> np.ndarray:
        """The chance [n, n] that a training example is each combination."""
        w = self.weights
        return w / w.sum()


def levels(bins: int, span: float) -> np.ndarray:
    """`bins` relative frequencies log-spaced from 1 to `span` (rare to common)."""
    return np.geomspace(1.0, span, bins)


def check(n: int, bins: int, span: float, held_out: tuple[int, int]) -> None:
    """ValueError naming the bad value: the grid must hold every bin, the span be ≥ 1, the pair be in it."""
    if n < 2:
        raise ValueError(f"n_values {n}: each attribute needs at least 2 values")
    if not 2 <= bins <= n * n - 1:
        raise ValueError(f"bins {bins}: between 2 and the {n * n - 1} trained combinations of {n}x{n}")
    if not span >= 1:
        raise ValueError(f"frequency span {span}: must be >= 1 (commonest over rarest)")
    if any(not 0 <= v < n for v in held_out):
        raise ValueError(f"held_out {list(held_out)}: attribute values run 0..{n - 1}")


def make(seed: int, n: int, dim: int, bins: int, span: float, held_out: tuple[int, int]) -> Combinations:
    """Seed `seed`'s square, prototypes and dealing of the trained combinations into frequency bins."""
    check(n, bins, span, held_out)
    rng = np.random.default_rng(stream_seed(seed, "combinations"))
    pi, rho = rng.permutation(n), rng.permutation(n)
    labels = (pi[:, None] + rho[None, :]) % n
    protos = rng.standard_normal((2, n, dim))
    protos /= np.linalg.norm(protos, axis=-1, keepdims=True)
    held = held_out[0] * n + held_out[1]
    trained = rng.permutation([c for c in range(n * n) if c != held])
    bin_of = np.full(n * n, -1)
    bin_of[trained] = np.arange(trained.size) % bins  # as even as the count allows: sizes differ by ≤ 1
    return Combinations(labels, protos, levels(bins, span), bin_of.reshape(n, n), (held_out[0], held_out[1]))


def render(task: Combinations, combos: Tensor, noise: float, gen: torch.Generator) -> Tensor:
    """Noisy renderings [len(combos), 2·dim] of flat combination indices a·n + b."""
    a, b = combos // task.n, combos % task.n
    protos = torch.as_tensor(task.prototypes, dtype=torch.float32)
    x = torch.cat([protos[0, a], protos[1, b]], dim=-1)
    return x + noise * torch.randn(x.shape, generator=gen)


def label(task: Combinations, combos: Tensor) -> Tensor:
    return torch.as_tensor(task.labels.reshape(-1), dtype=torch.long)[combos]


def eval_set(task: Combinations, per_combo: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """`per_combo` renderings of every combination (held-out one included), combination-major:
    x [n²·per_combo, 2·dim], y [n²·per_combo]."""
    combos = torch.arange(task.n * task.n).repeat_interleave(per_combo)
    return render(task, combos, noise, generator(seed, "combinations-eval")), label(task, combos)


class Batches:
    """batch(step): for every member (seed), `size` combinations drawn ∝ frequency, freshly rendered:
    x [K, size, 2·dim], y [K, size]; checkpointable."""

    def __init__(self, tasks: list[Combinations], seeds: list[int], size: int, noise: float, device: str = "cpu"):
        self.tasks, self.size, self.noise, self.device = tasks, size, noise, device
        self.probs = [torch.as_tensor(t.probabilities.reshape(-1), dtype=torch.float64) for t in tasks]
        self.gens = [generator(s, "combinations-train") for s in seeds]

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for task, p, gen in zip(self.tasks, self.probs, self.gens, strict=True):
            combos = torch.multinomial(p, self.size, replacement=True, generator=gen)
            xs.append(render(task, combos, self.noise, gen))
            ys.append(label(task, combos))
        return torch.stack(xs).to(self.device), torch.stack(ys).to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"generators": [g.get_state() for g in self.gens]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, s in zip(self.gens, state["generators"], strict=True):
            g.set_state(s)
