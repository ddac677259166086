"""Sweeps: a grid of independent runs (`grid`), and the independent jobs of a grid study (`jobs`),
locally or on a Ray cluster."""

from typing import Any

__all__ = ["SweepResult", "expand_grid", "run_sweep"]


def __getattr__(name: str) -> Any:
    """`grid` is imported on first use: it needs the API, which imports the studies, which use `jobs`."""
    if name in __all__:
        from learnlab.sweeps import grid

        return getattr(grid, name)
    raise AttributeError(f"module 'learnlab.sweeps' has no attribute {name!r}")
