import os
import sys

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
