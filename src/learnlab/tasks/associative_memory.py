"""Key → class pairs for a toy associative memory (Zucchet et al. 2025, appendix F.4).

Keys are random unit vectors, classes uniform: nothing to generalise, only pairs to store, so what a
model keeps or loses under fine-tuning is memory alone. A seed's old pairs are the same however many new
ones are drawn after them, so fine-tunings on more or fewer new pairs start from one pre-training.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from learnlab.engine.rng import generator


def memory_pairs(seed: int, old: int, new: int, dim: int, classes: int) -> tuple[Tensor, Tensor]:
    """Keys [old + new, dim] and classes [old + new]: the first `old` are the pairs to pre-train on.
    Keys and classes come from separate streams, so asking for more new pairs only appends to them
    (for keys, when dim is a multiple of 16: torch draws normals in blocks of 16)."""
    keys, labels = [], []
    for purpose, n in (("toy-memory", old), ("toy-memory-new", new)):
        keys.append(F.normalize(torch.randn(n, dim, generator=generator(seed, purpose)), dim=-1))
        labels.append(torch.randint(0, classes, (n,), generator=generator(seed, f"{purpose}-classes")))
    return torch.cat(keys), torch.cat(labels)


class MemoryBatches:
    """batch(step): for every member, `size` pairs drawn uniformly from its pairs [lo, hi); checkpointable."""

    def __init__(self, keys: Tensor, classes: Tensor, lo: int, hi: int, size: int, seeds: list[int], purpose: str):
        self.keys, self.classes, self.lo, self.hi, self.size = keys, classes, lo, hi, size
        self.gens = [generator(s, purpose) for s in seeds]

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        idx = torch.stack([torch.randint(self.lo, self.hi, (self.size,), generator=g) for g in self.gens])
        rows = torch.arange(len(self.gens))[:, None]
        return self.keys[rows, idx], self.classes[rows, idx]

    def state_dict(self) -> dict[str, Any]:
        return {"generators": [g.get_state() for g in self.gens]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, s in zip(self.gens, state["generators"], strict=True):
            g.set_state(s)
