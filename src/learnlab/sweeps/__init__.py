"""Sweeps: a grid of independent runs, locally or on a Ray cluster."""

from learnlab.sweeps.grid import SweepResult, expand_grid, run_sweep

__all__ = ["SweepResult", "expand_grid", "run_sweep"]
