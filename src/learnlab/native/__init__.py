"""Native CPU kernels (the C files beside this one): compiled on first use, cached, called through ctypes.

Tiny models are too small for PyTorch's per-op dispatch and memory passes to be cheap: a TinyLSTM time
step is a dozen ops on a few kilobytes. The kernels here run each ensemble member's whole computation
in cache. Each library is compiled for this machine (`-march=native`) the first time it is needed —
well under a second, no PyTorch headers — and cached under `$LEARNLAB_CACHE` (default
`~/.cache/learnlab`), keyed by the source, the flags, the compiler and the CPU.

Every kernel treats ensemble members alike (the same instructions for each member, whatever K and
whichever thread), so a member's result does not depend on what else shares its ensemble. ctypes
releases the GIL, so ranges of members run on several threads.

Where a kernel cannot run — no C compiler, a GPU, float64, or `LEARNLAB_NATIVE=0` — callers fall back
to their PyTorch implementation (the same results within float rounding).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
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
    return Path(os.environ.get("LEARNLAB_CACHE", Path.home() / ".cache" / "learnlab")) / "kernels"


def _build(source: Path, defines: tuple[str, ...], compiler: str) -> Path:
    flags = [*FLAGS, *(f"-D{d}" for d in defines)]
    key = hashlib.sha256("\n".join([source.read_text(), *flags, compiler, _cpu_signature()]).encode()).hexdigest()
    target = _cache_dir() / f"{source.stem}_{'_'.join(defines).lower().replace('=', '')}_{key[:16]}.so"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            command = [compiler, *flags, str(source), "-o", str(built), "-lm"]
            subprocess.run(command, check=True, capture_output=True, text=True)
            os.replace(built, target)  # atomic: concurrent processes never load a half-written library
    return target


@functools.cache
def library(name: str, *defines: str) -> ctypes.CDLL | None:
    """`name`.c beside this file, compiled with these -D defines; None where it cannot be built."""
    if not enabled():
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    try:
        return ctypes.CDLL(str(_build(Path(__file__).with_name(f"{name}.c"), defines, compiler)))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        warnings.warn(f"learnlab: native kernel {name!r} unavailable, using PyTorch ({detail})", stacklevel=2)
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
