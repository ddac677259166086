import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as learnlab sets it, but before torch loads here

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory, so default run directories land in tmp_path/runs."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
