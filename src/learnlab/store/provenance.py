"""What made a run: learnlab's version and git commit, the versions of the libraries it ran on, the machine.

Recorded in summary.json (`versions`, `provenance`) and in the report, so a number can be traced to the
code that produced it. The commit is read with git from the package's own directory, and only when that
directory is part of the checkout (an installed learnlab inside someone else's repository has no commit);
without git, outside a checkout or when git is slow, the commit is simply absent: provenance never fails
a run.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]
GIT_TIMEOUT = 2.0  # seconds per git call
# the libraries whose versions a result may depend on (torch and numpy first: the numbers come from them)
PACKAGES = ("torch", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "scikit-learn", "tokenizers",
            "safetensors", "matplotlib")  # fmt: skip


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """learnlab's, Python's and the key packages' versions (those installed)."""
    found = {"learnlab": _version("learnlab") or "unknown", "python": platform.python_version()}
    return found | {name: v for name in PACKAGES if (v := _version(name)) is not None}


def _git(*args: str) -> str | None:
    """git's output in the package directory, or None (no git, not a checkout, an error, a timeout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """{"git_commit": SHA, "git_dirty": bool} when learnlab runs from a git checkout of itself, else {}.
    Dirty: a tracked file differs from the commit (untracked files, such as run directories, do not count)."""
    commit = _git("rev-parse", "HEAD")
    if not commit or _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return {}
    status = _git("status", "--porcelain", "--untracked-files=no")
    state: dict[str, Any] = {"git_commit": commit}
    if status is not None:
        state["git_dirty"] = bool(status)
    return state


def provenance() -> dict[str, Any]:
    """summary.json's "provenance": learnlab's version, its git commit (if any), the platform."""
    return {"learnlab": versions()["learnlab"], **git_state(), "platform": platform.platform()}
