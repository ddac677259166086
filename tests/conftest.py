import os
import sys
from contextlib import contextmanager

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as learnlab sets it, but before torch loads here

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
    if "matplotlib.pyplot" in sys.modules:  # tests that draw a study's figures without saving them
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory, so default run directories land in tmp_path/runs."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def local_and_ray(tmp_path):
    """run(study, overrides, **kw) -> the summaries of the smoke preset run locally and on a 2-CPU local Ray."""
    ray = pytest.importorskip("ray")
    import learnlab

    def run(study: str, overrides: dict, **kw) -> list[dict]:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            backends = {"local": overrides, "ray": {**overrides, "backend": "ray"}}
            return [
                learnlab.run(study, preset="smoke", progress=False, out=tmp_path / name, overrides=values, **kw)
                for name, values in backends.items()
            ]
        finally:
            ray.shutdown()

    return run


@pytest.fixture
def ctrl_c(monkeypatch):
    """ctrl_c(step, label="") makes learnlab's progress bar raise KeyboardInterrupt (Ctrl-C) when a bar whose
    description starts with `label` reaches `step`; ctrl_c(None) puts the real bar back."""
    import learnlab.api as api

    real_bar = api.progress_bar

    def at(step: int | None, label: str = "") -> None:
        if step is None:
            monkeypatch.setattr(api, "progress_bar", real_bar)
            return

        @contextmanager
        def interrupted_bar(desc, total, enabled):
            with real_bar(desc, total, False) as update:

                def interrupting(done):
                    if done == step and desc.startswith(label):
                        raise KeyboardInterrupt
                    update(done)

                yield interrupting

        monkeypatch.setattr(api, "progress_bar", interrupted_bar)

    return at
