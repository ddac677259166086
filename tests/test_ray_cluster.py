"""A real two-node Ray cluster on this machine: a head and a worker, each a `ray start --block` process in
its own session with one CPU. A grid study run against it gives the local backend's table; with the
worker's whole session killed (by its process id) while it runs a job, Ray retries that job on the head
and the study still completes with the same table, each job's rows once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).parent / "ray")
# token authentication (on by default for local clusters since Ray 2.5x) needs a token shared by every
# process; a cluster on 127.0.0.1 for a test runs without it, the same in the head, the worker and the driver
# and its own RAY_TMPDIR: a head records itself in RAY_TMPDIR/ray/ray_current_cluster, which a later plain
# ray.init() in this machine would try to join once the head is gone
ENV = {
    **os.environ,
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TMPDIR": tempfile.mkdtemp(prefix="rt", dir="/tmp"),  # short: Ray's socket paths must fit 107 bytes
}
STUDY = ["plateau-scaling", "--preset", "smoke", "--set", "steps=150", "--set", "schedule_steps=150"]
STUDY += ["--set", "stop_after_plateau=false", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str) -> subprocess.Popen:
    """A Ray node as one process session (its raylet and workers inherit it): killpg ends all of it."""
    cmd = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args]
    return subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def end(node: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait(timeout=30)


def alive_nodes(address: str) -> int:
    code = f"import ray; ray.init(address={address!r}); print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    return int(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.split() else 0


def wait_for(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start("--head", f"--port={port}", "--include-dashboard=false")
    nodes = [head]
    try:
        wait_for(lambda: alive_nodes(address) == 1, "the head node")
        nodes.append(start(f"--address={address}"))
        wait_for(lambda: alive_nodes(address) == 2, "the worker node")
        yield address, nodes[1]
    finally:
        for node in reversed(nodes):
            end(node)


def learnlab(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "learnlab", *args], env=ENV, **kw)


def table(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["table"]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    assert learnlab("run", *STUDY, "--out", str(out)).wait(timeout=600) == 0
    return out


def test_a_grid_study_on_two_nodes_gives_the_local_table(cluster, local, tmp_path):
    address, _ = cluster
    out = tmp_path / "ray"
    assert learnlab("run", *STUDY, "--backend", "ray", "--address", address, "--out", str(out)).wait(600) == 0
    assert table(out) == table(local)


def running_task(session: int) -> bool:
    """Whether a process of that session executes a learnlab job (Ray titles it `ray::_remote`)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) == session and Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_remote"):
                return True
        except (OSError, ProcessLookupError):
            continue
    return False


def test_killing_the_worker_mid_run_loses_nothing_and_counts_nothing_twice(cluster, local, tmp_path):
    address, worker = cluster
    out = tmp_path / "ray"
    run = learnlab("run", *STUDY, "--backend", "ray", "--address", address, "--out", str(out))
    wait_for(lambda: running_task(worker.pid) or run.poll() is not None, "a job on the worker", timeout=300)
    assert run.poll() is None, "the study ended before the worker ran a job: nothing was killed"
    end(worker)  # the worker's ray start, raylet and task processes, by process id
    assert run.wait(timeout=600) == 0
    assert table(out) == table(local)
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert not metrics.duplicated(["arm", "seed", "step", "split", "metric"]).any()
    pd.testing.assert_frame_equal(metrics, pd.read_parquet(local / "metrics.parquet"))


def test_a_task_runs_no_more_threads_than_the_cpus_it_reserved(monkeypatch):
    import ray

    from learnlab.engine.jobs import task_threads

    class Context:
        def __init__(self, cpus):
            self.cpus = cpus

        def get_assigned_resources(self):
            return {"CPU": self.cpus} if self.cpus else {}

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context(1.0))
    assert task_threads(8, "cpu") == 1  # a 1-CPU node: not the driver's 8
    assert task_threads(8, "cuda") == 8  # a GPU task reserves one CPU whatever it runs
    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context(4.0))
    assert task_threads(2, "cpu") == 2
