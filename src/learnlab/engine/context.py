"""What a protocol may use besides its config: progress bars and a work directory for checkpoints.

Below the studies and the job runner, so that protocols, studies and jobs all take the same context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from learnlab.engine.train import Checkpoint

Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]  # yields update(n_done)


@dataclass(frozen=True)
class RunContext:
    """What a protocol may use besides its config: progress bars, and a work directory that survives an
    interruption (checkpoints go there, so `learnlab resume` can continue the run)."""

    progress: Progress
    workdir: Path | None = None
    checkpoint_every: int = 200
    # where trained models are kept (a `learnlab.store.models.ModelKeeper`, which the API gives a run);
    # None: nowhere
    models: Any = None
    # where evaluations stream live (a `learnlab.tracking.Tracker`, given by `--track`); None: nowhere.
    # train_ensemble reports to it by itself, under the name of the progress bar it runs under
    tracker: Any = None

    def checkpoint(self, name: str) -> Checkpoint | None:
        return Checkpoint(self.workdir / f"{name}.ckpt", self.checkpoint_every) if self.workdir else None

    def keep_model(self, name: str, model: nn.Module, members: Iterable[tuple[str, int]], **meta: Any) -> None:
        """Keep a trained ensemble's final weights in the run directory's models/NAME.* (if the run keeps
        models): member k is (arm, seed) members[k]; `meta`: `tokenizer` (its JSON) for a language model,
        `kwargs` (and `members_kwarg`) to rebuild a class learnlab.store.models.constructor does not know."""
        if self.models is not None:
            self.models.keep(name, model, members, **meta)

    def snapshot(self, name: str, step: int, model: nn.Module) -> None:
        """Keep the weights at `step` of a training (a no-op unless the run keeps snapshots at that step)."""
        if self.models is not None:
            self.models.snapshot(name, step, model)

    def track(self, metrics: dict[str, Any], step: int) -> None:
        """Stream metrics of a study's own ({name: number or [K] tensor}) to the tracker, if the run has one."""
        if self.tracker is not None:
            self.tracker.evaluation(step, metrics)

    def job(self, name: str, workdir: Path | None) -> RunContext:
        """The context of a grid study's job `name`: its own work directory, its models kept under `name/`."""
        return replace(self, workdir=workdir, models=None if self.models is None else self.models.scoped(name))
