"""Provenance: summary.json and the report say which learnlab (version, git commit, dirty or not), which
libraries, which Python and platform made a run; outside a git checkout, or without git, the commit is
absent and the run goes on."""

import json
import subprocess

import pytest

import learnlab
from learnlab.reporting.report import provenance_line
from learnlab.store import provenance


def test_a_run_records_its_provenance(tmp_path):
    summary = learnlab.run(
        "hard-negatives", preset="smoke", arms=["concept"], overrides={"steps": 10}, out=tmp_path / "r", progress=False
    )
    stored = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert stored["versions"] == summary["versions"] and stored["provenance"] == summary["provenance"]
    versions = summary["versions"]
    assert {"learnlab", "python", "torch", "numpy", "pandas", "scipy", "safetensors"} <= set(versions)
    import numpy
    import torch

    assert versions["torch"].split("+")[0] == torch.__version__.split("+")[0] and versions["numpy"] == numpy.__version__
    assert summary["provenance"]["learnlab"] == versions["learnlab"] and summary["provenance"]["platform"]
    head = provenance._git("rev-parse", "HEAD")
    if head is not None:  # these tests run from learnlab's own checkout
        assert summary["provenance"]["git_commit"] == head and isinstance(summary["provenance"]["git_dirty"], bool)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Provenance" in report and f"torch {versions['torch']}" in report
    if head is not None:
        assert f"git `{head[:12]}`" in report


def test_dirty_follows_the_tracked_files(monkeypatch):
    answers = {"rev-parse": "abc123", "ls-files": "__init__.py", "status": " M src/learnlab/api.py"}
    monkeypatch.setattr(provenance, "_git", lambda *args: answers[args[0]])
    assert provenance.git_state() == {"git_commit": "abc123", "git_dirty": True}
    answers["status"] = ""
    assert provenance.git_state() == {"git_commit": "abc123", "git_dirty": False}


def test_outside_a_checkout_there_is_no_commit(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path)  # a directory no git repository holds
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.git_state() == {}
    assert "git_commit" not in provenance.provenance()


def test_an_installed_copy_inside_another_repository_has_no_commit(monkeypatch, tmp_path):
    """A learnlab installed into a virtual environment inside some other project's repository: git
    answers there, but the package is no file of that repository, so the commit would be someone else's."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    package = tmp_path / "venv" / "learnlab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", package)
    assert provenance.git_state() == {}


@pytest.mark.parametrize("failure", [FileNotFoundError("git"), subprocess.TimeoutExpired("git", 2.0)])
def test_no_git_or_a_slow_git_never_fails_a_run(monkeypatch, failure):
    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(provenance.subprocess, "run", broken)
    assert provenance.git_state() == {}
    assert set(provenance.provenance()) == {"learnlab", "platform"}


def test_the_report_line_of_old_and_new_summaries():
    assert provenance_line({}) is None  # a run from before provenance
    assert (
        provenance_line({"versions": {"torch": "2.4.0", "python": "3.11.7"}}) == "Made with torch 2.4.0, Python 3.11.7."
    )
    line = provenance_line(
        {
            "versions": {"learnlab": "0.1.0", "python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.6"},
            "provenance": {
                "learnlab": "0.1.0",
                "git_commit": "0123456789abcdef",
                "git_dirty": True,
                "platform": "Linux",
            },
        }
    )
    assert (
        line == "Made with learnlab 0.1.0 (git `0123456789ab`, dirty), torch 2.13.0, numpy 2.4.6, Python 3.11.7, Linux."
    )
