"""What a protocol may use besides its config: progress bars and a work directory for checkpoints.

Below the studies and the job runner, so that protocols, studies and jobs all take the same context.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from learnlab.engine.train import Checkpoint

Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]  # yields update(n_done)


@dataclass(frozen=True)
class RunContext:
    """What a protocol may use besides its config: progress bars, and a work directory that survives an
    interruption (checkpoints go there, so `learnlab resume` can continue the run)."""

    progress: Progress
    workdir: Path | None = None
    checkpoint_every: int = 200

    def checkpoint(self, name: str) -> Checkpoint | None:
        return Checkpoint(self.workdir / f"{name}.ckpt", self.checkpoint_every) if self.workdir else None
