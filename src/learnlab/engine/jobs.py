"""The independent trainings of a grid study, run in this process or as Ray tasks.

A grid study (`plateau-scaling`, `data-imbalance`, …) is one run whose protocol needs several separate
trainings — one per number of individuals, per imbalance, … Each is a `Job`: a module-level function
of a config that returns long-format measurements. `run_jobs` computes them with the study's backend
(`local`, or `ray` from the optional extra `learnlab[ray]`, imported lazily) and keeps each finished
job's measurements in the run's work directory, so an interrupted grid resumes where it stopped and a
resumed job continues from its own checkpoints (local backend). A job's result depends only on its
function, its config and its thread count (`job_threads`, the same on both backends), so both backends
give the same numbers on one machine. A job on a GPU reserves one from Ray. On Ray each job runs under
`deterministic()`, as the API runs a study's protocol. Grid sweeps (`learnlab.sweeps`) use the Ray
plumbing here too (`connect_ray`, `ray_results`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
import torch
from pydantic import Field, field_validator

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.determinism import deterministic
from learnlab.engine.train import torch_threads
from learnlab.errors import LearnlabError
from learnlab.progress import progress_bar

Backend = Literal["local", "ray"]


class GridConfig(StudyConfig):
    """Where a grid study's jobs run: not part of what is measured (both backends give the same)."""

    backend: Backend = Field("local", description="local: in this process; ray: as Ray tasks")
    address: str | None = Field(None, description="Ray cluster address (default: start a local Ray)")
    job_threads: int = Field(
        0, ge=0, description="CPU threads of each job (0: this machine's); Ray reserves as many CPUs per job"
    )
    # the knobs that make the arms, when they are the grid's own (no `--arms` then)
    grid_knobs: ClassVar[str | None] = None

    @field_validator("arms")
    @classmethod
    def _arms_come_from_the_grid(cls, arms: list[str]) -> list[str]:
        if arms and cls.grid_knobs:
            raise ValueError(f"this study's arms are its grid: set {cls.grid_knobs} instead")
        return arms


@dataclass(frozen=True)
class Job:
    name: str  # unique within the run; a file name
    fn: Callable[[Any, RunContext], pd.DataFrame]  # module-level, so Ray can ship it by reference
    config: Any  # the job's own (pydantic) config


def run_jobs(jobs: list[Job], cfg: GridConfig, ctx: RunContext, label: str) -> dict[str, pd.DataFrame]:
    """Every job's measurements by name; finished ones are read back from the work directory."""
    if len({job.name for job in jobs}) < len(jobs):
        raise ValueError("job names must be unique")
    store = ctx.workdir / "jobs" if ctx.workdir else None
    done = {job.name: _read(_file(store, job)) for job in jobs if store and _file(store, job).is_file()}
    todo = [job for job in jobs if job.name not in done]
    # one thread count on both backends: a parallel reduction's rounding depends on it
    threads = cfg.job_threads or torch.get_num_threads()
    run = _ray(cfg.address, threads, cfg.device) if cfg.backend == "ray" else _local(ctx, threads)
    # locally each job shows its own bar (one live bar at a time); on Ray one bar counts the jobs
    outer = ctx.progress if cfg.backend == "ray" else _quiet
    with outer(f"{label} · {len(jobs)} trainings", len(jobs)) as update:
        update(len(done))
        for job, frame in run(todo):
            if store is not None:
                store.mkdir(parents=True, exist_ok=True)
                _write(frame, _file(store, job))
            done[job.name] = frame
            update(len(done))
    return {job.name: done[job.name] for job in jobs}


def _file(store: Path, job: Job) -> Path:
    return store / f"{job.name}.parquet"


def _write(frame: pd.DataFrame, file: Path) -> None:
    """Atomically: a job's file exists only whole (a resume takes any that exists as finished)."""
    tmp = file.with_name(file.name + ".tmp")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(file: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(file)
    except Exception as err:  # noqa: BLE001 - pyarrow's errors for a damaged file have no common base
        problem = (str(err).splitlines() or [type(err).__name__])[0]
        raise LearnlabError(
            f"finished job {str(file)!r} cannot be read ({problem}); delete it to run that job again"
        ) from None


Runner = Callable[[list[Job]], Iterator[tuple[Job, pd.DataFrame]]]


def _local(ctx: RunContext, threads: int) -> Runner:
    def run(jobs: list[Job]) -> Iterator[tuple[Job, pd.DataFrame]]:
        for job in jobs:
            workdir = ctx.workdir / "jobs" / job.name if ctx.workdir else None
            if workdir is not None:
                workdir.mkdir(parents=True, exist_ok=True)
            with torch_threads(threads):
                frame = job.fn(job.config, ctx.job(job.name, workdir))
            yield job, frame

    return run


def _quiet(desc: str, total: int) -> Any:
    return progress_bar(desc, total, False)


def _remote(fn: Callable[[Any, RunContext], pd.DataFrame], config: Any, threads: int) -> pd.DataFrame:
    if getattr(config, "device", "").startswith("cuda"):
        config = config.model_copy(update={"device": in_ray_worker(config.device)})
    with deterministic(), torch_threads(task_threads(threads, config.device)):
        return fn(config, RunContext(_quiet))


def ray_task_options(ray: Any, threads: int, device: str) -> dict[str, int]:
    """What a Ray task reserves. A GPU when it runs on one: Ray hides every GPU from a task that asks
    for none; then one CPU, so that CPU reservations leave no GPU idle. Otherwise CPUs for its threads,
    at most the largest node's: a task asking for more would never be scheduled."""
    if device.startswith("cuda"):
        return {"num_cpus": 1, "num_gpus": 1}
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=threads)
    return {"num_cpus": max(1, min(threads, int(largest))), "num_gpus": 0}


def task_threads(threads: int, device: str) -> int:
    """PyTorch threads inside a Ray task on a CPU: the driver's count, but no more than the CPUs the task
    reserved (`ray_task_options` caps a reservation at the largest node's CPUs: on a smaller node, or
    under that cap, the driver's count would oversubscribe the node)."""
    if device.startswith("cuda"):
        return threads
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, min(threads, int(cpus))) if cpus else threads


def in_ray_worker(device: str) -> str:
    """The device inside a Ray task, set up as the driver's: the one GPU Ray gave the task is cuda:0
    (`cuda:1` on the driver would be an invalid ordinal there), with deterministic cuBLAS."""
    if not device.startswith("cuda"):
        return device
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts in this worker
    return "cuda"


def import_ray() -> Any:
    """Ray, from the optional extra, imported on first use."""
    try:
        import ray
    except ImportError:
        raise LearnlabError("the ray backend needs the optional extra: pip install 'learnlab[ray]'") from None
    return ray


PROBE_SECONDS = 5.0


def connect_ray(address: str | None) -> Any:
    """Ray, connected to `address` (None, "auto", "local": as ray.init takes them). A HOST:PORT or
    ray://HOST:PORT is probed first (`_probe`, at most PROBE_SECONDS): where nothing answers, ray.init
    retries for minutes; here it is a one-line LearnlabError at once."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    remote = address not in (None, "", "auto", "local")
    if remote:
        _probe(address)
    try:
        # a port that answers but is no Ray cluster: ray.init's C++ client logs a line a second until it
        # gives up (about 20 s); the error below says it in one (a local Ray's processes keep stderr)
        with _silenced_stderr() if remote else contextlib.nullcontext():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LearnlabError(f"--address {address!r}: cannot connect to Ray ({problem})") from None
    return ray


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """File descriptor 2 (where C++ libraries log) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# the HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, its client server)
# answers with a SETTINGS frame of its own
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


def _probe(address: str) -> None:
    """A TCP connection to the address, and a gRPC (HTTP/2) greeting back: a port that accepts but
    never answers (no Ray behind it) would otherwise keep ray.init waiting without end. With TLS
    (RAY_USE_TLS) the greeting would be refused, so only the connection is checked."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LearnlabError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_SECONDS) as conn:
            if not tls:
                conn.sendall(_HTTP2_HELLO)
                head = conn.recv(9)
                if len(head) < 4 or head[3] != _SETTINGS:
                    raise ConnectionError(0, "it answers, but not as a Ray cluster")
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise LearnlabError(f"--address {address!r}: no Ray cluster answers there ({reason})") from None


def ray_results(ray: Any, address: str | None, fn: Callable[..., Any], threads: int, device: str,
                calls: dict[Any, tuple[Any, ...]]) -> Iterator[tuple[Any, Any]]:  # fmt: skip
    """Run fn(*args) for every {key: args} as Ray tasks reserving what `threads` threads on `device`
    need (connecting first); (key, result) as each ends."""
    if not calls:
        return
    connect_ray(address)
    remote = ray.remote(**ray_task_options(ray, threads, device))(fn)
    pending = {remote.remote(*args): key for key, args in calls.items()}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        yield pending.pop(ready[0]), ray.get(ready[0])


def _ray(address: str | None, threads: int, device: str) -> Runner:
    ray = import_ray()

    def run(jobs: list[Job]) -> Iterator[tuple[Job, pd.DataFrame]]:
        by_name = {job.name: job for job in jobs}
        calls = {job.name: (job.fn, job.config, threads) for job in jobs}
        for name, frame in ray_results(ray, address, _remote, threads, device, calls):
            yield by_name[name], frame

    return run
