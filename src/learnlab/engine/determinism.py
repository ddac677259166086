"""Deterministic kernels for a run: the API wraps a study's protocol in it, a Ray task its job."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels (they matter on CUDA: scatter-add backward uses atomics), without the
    NaN-filling of fresh tensors that deterministic mode adds by default and that costs ~40% on CPU."""
    enabled, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    fill = torch.utils.deterministic.fill_uninitialized_memory
    _use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        _use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def _use_deterministic_algorithms(mode: bool, warn_only: bool) -> None:
    """torch.use_deterministic_algorithms without importing torch.compile's inductor (~0.9 s) just to set
    its flag: that flag is set only when inductor is already loaded (nothing here compiles)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    setter(mode, warn_only=warn_only)
    if (inductor := sys.modules.get("torch._inductor.config")) is not None:
        inductor.deterministic = mode
