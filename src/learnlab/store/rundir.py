"""Run directories, written atomically.

A run is built in a hidden sibling directory and renamed into place only when every file is written,
so an interrupted or failed run leaves nothing half-written under its name.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def read_summary(run_dir: Path) -> dict[str, Any]:
    file = Path(run_dir) / "summary.json"
    if not file.is_file():
        raise LearnlabError(f"{str(run_dir)!r} is not a run directory (no summary.json)")
    return json.loads(file.read_text())


def find_runs(root: Path = DEFAULT_ROOT) -> list[tuple[Path, dict[str, Any]]]:
    """Every run directory under root (at any depth, sweeps included), oldest first."""
    found = []
    for file in sorted(Path(root).glob("**/summary.json")):
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            continue  # a partial run
        try:
            found.append((file.parent, json.loads(file.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(found, key=lambda item: item[1].get("created", ""))
