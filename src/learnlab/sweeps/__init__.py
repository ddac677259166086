"""Sweeps: a grid of independent runs over the API, locally or on a Ray cluster (`grid`). The jobs of a
grid study, which the studies run themselves, are the engine's (`learnlab.engine.jobs`)."""

from learnlab.sweeps.grid import SweepResult, expand_grid, run_sweep

__all__ = ["SweepResult", "expand_grid", "run_sweep"]
