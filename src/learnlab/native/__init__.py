"""Native CPU kernels (the C files beside this one): compiled on first use, cached, called through ctypes.

Tiny models are too small for PyTorch's per-op dispatch and memory passes to be cheap: a TinyLSTM time
step is a dozen ops on a few kilobytes. The kernels here run each ensemble member's whole computation
in cache. Each library is compiled for this machine (`-march=native`) the first time it is needed —
well under a second, no PyTorch headers — and cached under `$LEARNLAB_CACHE/kernels` (default
`~/.cache/learnlab`), keyed by the source, the flags, the compiler and the CPU. A cached library is
loaded only if the directory is this user's alone (`learnlab.cache`) and its SHA-256 is the one the
builder recorded beside it (`<library>.json`); anything else there is rebuilt over, and an untrusted
directory is not used at all (the kernels are built in a private temporary one, with a warning).

Every kernel treats ensemble members alike (the same instructions for each member, whatever K and
whichever thread), so a member's result does not depend on what else shares its ensemble. ctypes
releases the GIL, so ranges of members run on several threads.

Where a kernel cannot run — no C compiler, a GPU, float64, or `LEARNLAB_NATIVE=0` — callers fall back
to their PyTorch implementation (the same results within float rounding).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from learnlab import cache

FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC")


def enabled() -> bool:
    return os.environ.get("LEARNLAB_NATIVE", "1") != "0"


def _cpu_signature() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
        return next((line for line in info.splitlines() if line.startswith("flags")), platform.processor())
    except OSError:
        return platform.machine() + platform.processor()


def _cache_dir() -> Path:
    """This user's kernel cache; a private temporary one (warned about once) if that cannot be trusted."""
    try:
        return cache.private_dir("kernels")
    except cache.UntrustedCache as why:
        return _private_fallback(str(why))


@functools.cache
def _private_fallback(why: str) -> Path:
    fresh = Path(tempfile.mkdtemp(prefix="learnlab-kernels-"))  # 0700, a fresh name: nobody else's files
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)  # a loaded library needs no file any more
    warnings.warn(f"learnlab: not loading kernels from the cache: {why}; building them privately", stacklevel=4)
    return fresh


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(target: Path, manifest: Path) -> bool:
    """Whether `target` is the library this user's builder wrote: both files this user's alone, and the
    library's SHA-256 the one the builder recorded beside it (a planted or damaged file is neither)."""
    if cache.untrusted(target) or cache.untrusted(manifest):
        return False
    try:
        return json.loads(manifest.read_text()).get("sha256") == _sha256(target)
    except (OSError, ValueError, AttributeError):
        return False


def _compile(source: Path, flags: list[str], compiler: str, target: Path, manifest: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        command = [compiler, *flags, str(source), "-o", str(built), "-lm"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        record = {"sha256": _sha256(built), "source": source.name, "flags": flags, "compiler": compiler}
        os.chmod(built, 0o700)
        os.replace(built, target)  # atomic: concurrent processes never load a half-written library
    cache.write_atomic(manifest, json.dumps(record, indent=1).encode())


def _flags(defines: tuple[str, ...]) -> list[str]:
    return [*FLAGS, *(f"-D{d}" for d in defines)]


def cached_paths(directory: Path, source: Path, defines: tuple[str, ...], compiler: str) -> tuple[Path, Path]:
    """Where `source` compiled with `defines` is cached in `directory`, and its manifest: keyed by the source,
    the flags, the compiler and the CPU."""
    parts = [source.read_text(), *_flags(defines), compiler, _cpu_signature()]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    target = directory / f"{source.stem}_{'_'.join(defines).lower().replace('=', '')}_{key[:16]}.so"
    return target, target.with_suffix(".json")


def _build_and_load(source: Path, defines: tuple[str, ...], compiler: str) -> ctypes.CDLL:
    """The library compiled from `source`, loaded; from the cache when it verifies, else (re)built there."""
    directory = _cache_dir()
    target, manifest = cached_paths(directory, source, defines, compiler)
    flags = _flags(defines)
    with cache.locked(directory):  # no other process replaces the files between the check and the load
        if _verified(target, manifest):
            try:
                return ctypes.CDLL(str(target))
            except OSError:
                pass  # recorded, yet it does not load: build it again rather than go without it for good
        _compile(source, flags, compiler, target, manifest)
        return ctypes.CDLL(str(target))


def find_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@functools.cache
def library(name: str, *defines: str) -> ctypes.CDLL | None:
    """`name`.c beside this file, compiled with these -D defines; None where it cannot be built."""
    if not enabled():
        return None
    compiler = find_compiler()
    if compiler is None:
        return None
    try:
        return _build_and_load(Path(__file__).with_name(f"{name}.c"), defines, compiler)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = (getattr(err, "stderr", "") or str(err)).strip().splitlines()
        warnings.warn(f"learnlab: native kernel {name!r} unavailable, using PyTorch ({detail[0] if detail else err!r})",
                      stacklevel=2)  # fmt: skip
        return None


def on_cpu_float32(*tensors: Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def ptr(t: Tensor) -> int:
    return t.data_ptr()


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="learnlab-native")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads


@functools.cache
def threads() -> int:
    """Threads the kernels use: `$LEARNLAB_THREADS`, else the cores this process may run on."""
    if configured := os.environ.get("LEARNLAB_THREADS"):
        return int(configured)
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere all cores
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def split(work: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous ranges of members of about equal total `work`, one per thread (plain Python: this
    runs twice per training step, where a few tensor ops would cost more than the balancing gains)."""
    k = len(work)
    workers = min(threads(), k)
    if workers <= 1:
        return [(0, k)]
    total = sum(max(w, 0) for w in work)
    bounds, done, target = [0], 0, total / workers
    for i, w in enumerate(work[:-1]):
        done += max(w, 0)
        if done >= target * len(bounds) and len(bounds) < workers:
            bounds.append(i + 1)
    bounds.append(k)
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def run_split(fn: Callable[[int, int], int], work: Sequence[int]) -> list[int]:
    """fn(k0, k1) over ranges of members, in parallel; the caller's thread takes the first range."""
    ranges = split(work)
    rest = [_pool(len(ranges)).submit(fn, *r) for r in ranges[1:]]
    return [fn(*ranges[0]), *(f.result() for f in rest)]
