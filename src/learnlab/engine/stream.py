"""Training batches drawn a chunk of steps at a time, the next chunk drawn while the current one trains.

A stream owns one torch.Generator per seed (or per task and seed) and draws `chunk` steps of batches
at once, which is where vectorized generators pay off. The draw of chunk c+1 starts in a background
thread as soon as chunk c is handed over: only that thread touches the generators, one chunk after
the other, so the batches are exactly those of drawing in the foreground — a stream is a function of
its seeds. Checkpoints keep the generators' states at the start of the current chunk; a resumed stream
re-draws that chunk and goes on identically.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Chunk:
    start: int  # the step of its first batch
    states: list[torch.Tensor]  # the generators' states before it was drawn
    data: dict[str, Any]  # whatever `draw` returned


@functools.cache
def _drawer() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="learnlab-data")


os.register_at_fork(after_in_child=_drawer.cache_clear)  # a forked child has none of the parent's threads


class ChunkedStream:
    """Subclasses define `draw()` (one chunk's data from self.gens; `self.drawing` is the step of its
    first batch) and `batch(data, i)` (its i-th step)."""

    def __init__(self, gens: list[torch.Generator], chunk: int, steps: int | None = None):
        self.gens, self.chunk_size, self.steps = gens, chunk, steps
        self.current: Chunk | None = None
        self.drawing = 0
        self._next: Future[Chunk] | None = None

    def draw(self) -> dict[str, Any]:
        raise NotImplementedError

    def batch(self, data: dict[str, Any], i: int) -> Any:
        raise NotImplementedError

    def _draw_chunk(self, start: int) -> Chunk:
        states = [g.get_state() for g in self.gens]
        self.drawing = start  # for `draw`s whose distribution changes along training
        return Chunk(start, states, self.draw())

    def __call__(self, step: int) -> Any:
        if self.current is None or step >= self.current.start + self.chunk_size:
            upcoming = self._next.result() if self._next is not None else None
            self.current = upcoming if upcoming is not None and upcoming.start == step else self._draw_chunk(step)
            following = step + self.chunk_size
            wanted = self.steps is None or following < self.steps
            self._next = _drawer().submit(self._draw_chunk, following) if wanted else None
        return self.batch(self.current.data, step - self.current.start)

    def state_dict(self) -> dict[str, Any]:
        assert self.current is not None, "a stream has no state before its first batch"
        return {"chunk_start": self.current.start, "generators": self.current.states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Re-draw the current chunk from the generators' states at its start."""
        if self._next is not None:
            self._next.result()  # let an in-flight draw finish before the generators are reset
            self._next = None
        for gen, gen_state in zip(self.gens, state["generators"], strict=True):
            gen.set_state(gen_state)
        self.current = self._draw_chunk(state["chunk_start"])
