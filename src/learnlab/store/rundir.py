"""Run directories, written atomically, read defensively, and locked while a run works on them.

A run is built in a hidden sibling directory and renamed into place only when every file is written,
so an interrupted or failed run leaves nothing half-written under its name. A run directory someone
damaged (a truncated summary.json, a corrupt metrics.parquet) is a one-line error naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from learnlab.errors import LearnlabError

DEFAULT_ROOT = Path("runs")


def default_run_dir(study: str, preset: str, root: Path = DEFAULT_ROOT) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{study}-{preset}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{study}-{preset}-{stamp}-{n}"
    return path


def check_free(path: Path) -> None:
    if path.exists():
        raise LearnlabError(f"output directory {str(path)!r} already exists; choose another --out")


def partial_dir(path: Path) -> Path:
    """Where a run is built, hidden beside its final name; it keeps checkpoints if interrupted."""
    return path.parent / f".{path.name}.partial"


def lock_file(path: Path) -> Path:
    """The lock of a run (or sweep) directory, hidden beside it: it exists only while one is held."""
    return path.parent / f".{path.name}.lock"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the OS lock of `path` (flock on `lock_file(path)`) for the block: a second process on the
    same directory gets a LearnlabError naming the holder's pid and touches nothing. The OS drops the
    lock when its process dies, so a killed run never leaves a stale one. `path`'s parent must exist."""
    lock = lock_file(path)
    fd = _acquire(lock, path)
    try:
        with suppress(OSError):  # the pid is for the other process's message only (a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with suppress(OSError):
            lock.unlink()
        os.close(fd)  # after the unlink: whoever opens the file next finds it gone, or gets the lock


def _acquire(lock: Path, path: Path) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise LearnlabError(f"{str(path)!r}: cannot create its lock file ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LearnlabError(f"{str(path)!r}: cannot lock it ({err.strerror})") from None
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise LearnlabError(f"{str(path)!r} is in use by {who}; wait for it to finish") from None
        try:  # the holder before us may have removed the file between our open and our lock
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes `path` on success and disappears on any failure."""
    check_free(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.writing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# --- reading: what the report and the listing rely on, checked before they use it -------------------------

Number = float | None


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Cell(_Shape):
    mean: Number
    std: Number = None
    ci95: Annotated[list[Number], Field(min_length=2, max_length=2)] = [None, None]


class _Row(_Cell):
    arm: str
    metric: str
    published_mean: float
    published_std: Number = None
    difference: float
    published_inside_ci: bool


class _Claim(_Shape):
    claim: str
    verdict: str
    evidence: str


class _Summary(_Shape):
    """The keys of summary.json that `report` and `runs` read, with their types (others are allowed)."""

    study: str
    preset: str
    seeds: Annotated[list[int], Field(min_length=1)]
    device: str
    wall_seconds: float
    created: str = ""
    config: dict[str, Any]
    table: dict[str, dict[str, _Cell]]
    reference: dict[str, dict[str, dict[str, Any]]] = {}
    comparison: list[_Row] = []
    claims: list[_Claim] = []
    notes: list[str] = []
    method: str = ""
    plain_metrics: list[str] = []
    point_metrics: list[str] = []


def load_summary(file: Path) -> dict[str, Any]:
    """A summary.json as written by a run; anything else is a LearnlabError naming the file."""
    try:
        data = json.loads(Path(file).read_bytes())
    except OSError as err:
        raise LearnlabError(f"{str(file)!r}: cannot read it ({err.strerror})") from None
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise LearnlabError(f"{str(file)!r}: not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise LearnlabError(f"{str(file)!r}: not a run summary (a JSON {type(data).__name__}, not an object)")
    try:
        _Summary.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise LearnlabError(f"{str(file)!r}: not a run summary ({key!r}: {first['msg'].lower()})") from None
    return data


def read_summary(run_dir: Path) -> dict[str, Any]:
    file = Path(run_dir) / "summary.json"
    if not file.is_file():
        raise LearnlabError(f"{str(run_dir)!r} is not a run directory (no summary.json)")
    return load_summary(file)


def read_metrics(run_dir: Path, columns: list[str]) -> pd.DataFrame:
    """A run's metrics.parquet with its long-format `columns` (value, step and seed numbers)."""
    file = Path(run_dir) / "metrics.parquet"
    if not file.is_file():
        raise LearnlabError(f"{str(run_dir)!r} has no metrics.parquet: not a complete run directory")
    try:
        metrics = pd.read_parquet(file)
    except Exception as err:  # noqa: BLE001 - pyarrow's errors for a damaged file have no common base
        problem = (str(err).splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise LearnlabError(f"{str(file)!r}: not a readable parquet file ({problem})") from None
    missing = [c for c in columns if c not in metrics.columns]
    if missing:
        raise LearnlabError(f"{str(file)!r}: not run metrics (no column {missing[0]!r})")
    for column in ("seed", "step", "value"):
        if column in columns and not pd.api.types.is_numeric_dtype(metrics[column]):
            raise LearnlabError(f"{str(file)!r}: column {column!r} holds {metrics[column].dtype}, not numbers")
    return metrics


def find_runs(
    root: Path = DEFAULT_ROOT, on_skip: Callable[[str], None] | None = None
) -> list[tuple[Path, dict[str, Any]]]:
    """Every run directory under root (at any depth, sweeps included), oldest first. A damaged
    summary.json is left out, and `on_skip` is told why in one line naming the file."""
    found = []
    for file in sorted(Path(root).glob("**/summary.json")):
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            continue  # a partial run
        try:
            found.append((file.parent, load_summary(file)))
        except LearnlabError as err:
            if on_skip is not None:
                on_skip(f"{err}; skipped")
    return sorted(found, key=lambda item: item[1].get("created", ""))
