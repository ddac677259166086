"""Independent random streams, one per model and purpose.

A model's run must depend only on its own master seed, whatever else shares its ensemble. Each
(master seed, purpose) pair gets its own `torch.Generator`, seeded through numpy's SeedSequence so that
streams for different purposes ("init", "data", "eval") are statistically independent.
"""

from __future__ import annotations

import copy
import zlib

import numpy as np
import torch


def stream_seed(master_seed: int, purpose: str) -> int:
    """A 63-bit seed derived from a master seed and a purpose name."""
    entropy = [master_seed & 0xFFFFFFFF, master_seed >> 32 & 0xFFFFFFFF, zlib.crc32(purpose.encode())]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def generator(master_seed: int, purpose: str, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(stream_seed(master_seed, purpose))
    return gen


class NumpyGenerator:
    """A numpy Generator with torch.Generator's get_state/set_state, so that a `ChunkedStream` can
    checkpoint it; for data drawn by numpy code (`rng` is the numpy Generator)."""

    def __init__(self, master_seed: int, purpose: str):
        self.rng = np.random.default_rng(stream_seed(master_seed, purpose))

    def get_state(self) -> dict:
        return copy.deepcopy(self.rng.bit_generator.state)

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
