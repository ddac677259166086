"""Sweeps: a grid of normal run directories plus a summary table; Ray gives the local numbers."""

import contextlib
import os
import sys

import pandas as pd
import pytest
import torch

from learnlab.cli import main
from learnlab.errors import LearnlabError
from learnlab.sweeps import expand_grid, run_sweep

GRID = ["lr=0.001,0.005"]


def test_expand_grid_is_the_product_in_order():
    assert expand_grid(["a=1,2", "b=x,y"]) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def sweep(out, backend="local"):
    return run_sweep("hard-negatives", GRID, preset="smoke", arms=["concept"], backend=backend, out=out, progress=False)


def test_local_sweep_writes_runs_and_summary_and_resumes(tmp_path):
    result = sweep(tmp_path / "s")
    runs = sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir())
    assert runs == ["000-lr=0.001", "001-lr=0.005"]
    table = pd.read_parquet(tmp_path / "s" / "sweep.parquet")
    assert set(table.lr) == {0.001, 0.005} and {"mean", "ci95_lo", "ci95_hi"} <= set(table.columns)
    assert (tmp_path / "s" / "sweep.md").read_text().startswith("# Sweep of hard-negatives")
    # resuming: a finished point is not run again
    (tmp_path / "s" / "000-lr=0.001" / "report.md").write_text("kept")
    again = sweep(tmp_path / "s")
    assert (tmp_path / "s" / "000-lr=0.001" / "report.md").read_text() == "kept"
    pd.testing.assert_frame_equal(again.table, result.table)
    # ... and a finished point run with another config is refused, not silently reused
    with pytest.raises(LearnlabError, match="another config"):
        run_sweep(
            "hard-negatives",
            GRID,
            preset="smoke",
            arms=["concept"],
            overrides={"steps": 7},
            out=tmp_path / "s",
            progress=False,
        )


def test_sweep_cli_rejects_unknown_backend(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "hard-negatives", "--grid", "lr=0.1", "--backend", "spark"]) == 2
    assert "spark" in capsys.readouterr().err


@pytest.mark.ray
def test_ray_backend_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = sweep(tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    local = sweep(tmp_path / "local")
    pd.testing.assert_frame_equal(remote.table, local.table)


class FakeRay:
    """Just enough of Ray to see what a task asks for: tasks run at once, in this process."""

    def __init__(self):
        self.options, self.results = {}, {}

    def is_initialized(self):
        return True

    def nodes(self):
        return [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": False, "Resources": {"CPU": 64.0}}]

    def remote(self, **options):
        self.options = options

        def wrap(fn):
            fake = self

            class Task:
                def remote(self, *args):
                    ref = len(fake.results)
                    fake.results[ref] = fn(*args)
                    return ref

            return Task()

        return wrap

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get_runtime_context(self):
        reserved = {"CPU": float(self.options["num_cpus"])}

        class Context:
            def get_assigned_resources(self):
                return reserved

        return Context()

    def get(self, ref):
        return self.results[ref]


def seen_in_job(config, ctx):
    return pd.DataFrame({"threads": [torch.get_num_threads()], "device": [config.device]})


@pytest.mark.parametrize(
    "device, options, device_in_job",
    [
        ("cpu", {"num_cpus": 2, "num_gpus": 0}, "cpu"),  # 3 threads asked, capped at the largest live node's 2
        ("cuda:1", {"num_cpus": 1, "num_gpus": 1}, "cuda"),  # Ray's one visible GPU is device 0 in the task
    ],
)
def test_ray_tasks_reserve_what_they_use_and_run_the_threads_they_reserved(monkeypatch, device, options, device_in_job):
    from learnlab.config import StudyConfig
    from learnlab.engine.context import RunContext
    from learnlab.engine.jobs import GridConfig, Job, run_jobs

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cfg = GridConfig(backend="ray", device=device, job_threads=3)
    ctx = RunContext(lambda desc, total: contextlib.nullcontext(lambda n: None))
    job = Job("a", seen_in_job, StudyConfig(device=device))
    before = torch.get_num_threads()
    out = run_jobs([job], cfg, ctx, "test")
    assert fake.options == options
    # a CPU task runs the threads it reserved (2 on the largest node, not the 3 asked: no oversubscription)
    assert out["a"].threads.tolist() == [options["num_cpus"] if device == "cpu" else 3]
    assert out["a"].device.tolist() == [device_in_job]
    assert torch.get_num_threads() == before
    assert ("CUBLAS_WORKSPACE_CONFIG" in os.environ) == device.startswith("cuda")
    local = run_jobs([job], cfg.model_copy(update={"backend": "local"}), ctx, "test")
    assert local["a"].threads.tolist() == [3] and torch.get_num_threads() == before
