"""Handwritten digits (scikit-learn's bundled 8x8 `load_digits`, no download) and the noise inputs
that carry nothing about them.

Pixels are scaled to [-1, 1], so uniform noise on [-1, 1]^64 spans the same range as the digits. The
train/test split is fixed (a stratified split with a fixed generator), the same for every master seed:
seeds vary the models and their data order, not which digits are held out.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

N_PIXELS = 64
N_CLASSES = 10
SPLIT_SEED = 20250301  # fixes the held-out digits; not a master seed


@cache
def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits  # imported lazily: only the digits studies need scikit-learn

    data = load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float32) / 8.0 - 1.0
    y = torch.as_tensor(data.target, dtype=torch.long)
    return x, y


def split(test_fraction: float = 0.3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test, y_test): each class split `test_fraction` held out, deterministically."""
    x, y = _digits()
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    test_rows = []
    for c in range(N_CLASSES):
        rows = torch.nonzero(y == c).squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=gen)]
        test_rows.append(rows[: round(test_fraction * len(rows))])
    is_test = torch.zeros(len(y), dtype=torch.bool)
    is_test[torch.cat(test_rows)] = True
    return x[~is_test], y[~is_test], x[is_test], y[is_test]


def noise(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Uniform noise images on [-1, 1]^64: inputs unrelated to any digit."""
    return torch.rand(*shape, N_PIXELS, generator=gen, device=gen.device) * 2.0 - 1.0
