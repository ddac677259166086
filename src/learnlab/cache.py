"""The per-user cache under `$LEARNLAB_CACHE` (default `~/.cache/learnlab`): compiled kernels, tokenizers.

What is read back from a cache is only as trustworthy as the directory it sits in: a library loaded from
a directory another user can write to runs their code in this process. So a cache directory is used only
when it is owned by this user and writable by nobody else, and every directory above it is owned by this
user or root and not world-writable unless sticky (`/tmp`); group-writable parents are tolerated (a
umask of 002 makes them, and the cache directory itself is checked strictly). The files in it are
checked the same way before use, and written atomically (a temporary file, then `os.replace`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


class UntrustedCache(Exception):
    """A cache directory or file someone else could have written: its message says why."""


def root() -> Path:
    return Path(os.environ.get("LEARNLAB_CACHE", Path.home() / ".cache" / "learnlab"))


def untrusted(path: Path) -> str | None:
    """Why the file or directory at `path` (not followed if a link) may hold another user's writing, or None."""
    try:
        st = path.lstat()
    except OSError as err:
        return f"{str(path)!r}: {err.strerror or err}"
    if stat.S_ISLNK(st.st_mode):
        return f"{str(path)!r} is a symbolic link"
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return f"{str(path)!r} is not a regular file"
    if st.st_uid != os.getuid():
        return f"{str(path)!r} is owned by uid {st.st_uid}, not this user ({os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{str(path)!r} is group- or world-writable (chmod go-w fixes it)"
    return None


def unsafe_parent(path: Path) -> str | None:
    """Why a directory above `path` would let another user replace it, or None."""
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid not in (0, os.getuid()):
            return f"{str(parent)!r}, above the cache, is owned by uid {st.st_uid}"
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            return f"{str(parent)!r}, above the cache, is world-writable"
    return None


def private_dir(name: str) -> Path:
    """`root()/name`, created for this user alone if missing; `UntrustedCache` if another could write there."""
    path = root() / name
    try:
        for directory in (path.parent, path):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700, parents=True)
                os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask (002 makes it group-writable)
        path = path.resolve(strict=True)
        problem = untrusted(path) or unsafe_parent(path)
    except OSError as err:
        problem = f"{str(path)!r}: {err.strerror or err}"
    if problem:
        raise UntrustedCache(problem)
    return path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """`data` at `path`, all or nothing: a concurrent reader sees the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive OS lock on `directory` (on a `.lock` file in it), released when the block ends or the
    process dies: one process at a time checks, builds and replaces what is in it."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
