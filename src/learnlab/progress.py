"""Progress bars (rich) for anything slower than a few seconds; silent when disabled. And the console
the command line prints through."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

UNBOUNDED = 10_000  # the width of a pipe or a file: no table cell cut, no line wrapped


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr) as it is now. A terminal sets the width; a pipe or a file has
    none (rich would assume 80 columns, or $COLUMNS, and cut table cells to fit: "(publis…")."""
    stream = sys.stderr if stderr else sys.stdout
    terminal = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, width=None if terminal else UNBOUNDED)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields `update(completed)`; draws a bar on stderr when enabled."""
    if not enabled:
        yield lambda completed: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        try:
            yield lambda completed: bar.update(task, completed=completed)
        except BaseException:
            if not bar.tasks[0].completed:  # it failed before a step (a damaged checkpoint): no empty bar
                bar.live.transient = True  # above the one-line error, nor the line a pipe gets after it
                bar.live.stop()
                bar.disable = True
            raise
