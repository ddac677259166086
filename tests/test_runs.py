"""Determinism, atomic run directories and report contents."""

import dataclasses
import json

import pandas as pd
import pytest

import learnlab
from learnlab.errors import Interrupted, LearnlabError
from learnlab.studies import STUDIES, hard_negatives


def smoke(out, **kw):
    return learnlab.run("hard-negatives", preset="smoke", out=out, progress=False, **kw)


def test_same_seeds_give_identical_tables(tmp_path):
    a = smoke(tmp_path / "a", arms=["baseline", "concept"])
    b = smoke(tmp_path / "b", arms=["baseline", "concept"])
    assert a["table"] == b["table"]
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["table"] == a["table"]


def test_a_seed_gives_the_same_result_whatever_else_runs_beside_it(tmp_path):
    alone = smoke(tmp_path / "a", arms=["concept"], overrides={"seed": 1, "seeds": 1})
    crowd = smoke(tmp_path / "b", arms=["baseline", "concept"], overrides={"seed": 0, "seeds": 3})
    for metric, cell in alone["table"]["concept"].items():
        assert cell["values"][0] == crowd["table"]["concept"][metric]["values"][1]


def test_failed_run_leaves_no_directory(tmp_path, monkeypatch):
    def broken(cfg, progress):
        raise RuntimeError("boom")

    monkeypatch.setitem(STUDIES, "hard-negatives", dataclasses.replace(hard_negatives.STUDY, measure=broken))
    with pytest.raises(RuntimeError):
        smoke(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_report_sets_measured_beside_published_with_verdicts(tmp_path):
    smoke(tmp_path / "r", arms=["baseline", "concept"])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Verdict" in md and "## Measured beside published" in md
    assert "85.3%" in md  # the published concept hard accuracy
    assert all(c.text in md for c in hard_negatives.CLAIMS)
    assert f"/{len(hard_negatives.CLAIMS)} reproduced" in md  # the heading counts the verdicts
    assert "*Learning curves: mean over seeds" in md  # every figure has a caption saying what bands are
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'class="badge"' in html and "<figcaption>Learning curves" in html
    assert "data:image/png;base64," in html and 'src="http' not in html
    assert "Measured beside published" in html


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, ctrl_c):
    # 130 steps with a checkpoint every 50 and Ctrl-C at 120: the resume crosses a data-chunk boundary
    kw = {"arms": ["baseline", "concept"], "overrides": {"steps": 130}, "checkpoint_every": 50}
    whole = smoke(tmp_path / "whole", **kw)
    ctrl_c(120)
    with pytest.raises(Interrupted, match="learnlab resume"):
        smoke(tmp_path / "cut", **kw)
    assert not (tmp_path / "cut").exists()
    assert (tmp_path / ".cut.partial" / "train.ckpt").is_file()
    with pytest.raises(LearnlabError, match="interrupted run"):
        smoke(tmp_path / "cut", **kw)  # a second `run` does not clobber it

    ctrl_c(None)
    resumed = learnlab.resume(tmp_path / "cut", progress=False, checkpoint_every=50)
    assert resumed["table"] == whole["table"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "cut" / "metrics.parquet"), pd.read_parquet(tmp_path / "whole" / "metrics.parquet")
    )
    assert not (tmp_path / ".cut.partial").exists()
    assert not list((tmp_path / "cut").glob("*.ckpt"))


def test_resume_without_an_interrupted_run_is_an_error(tmp_path):
    with pytest.raises(LearnlabError, match="no interrupted run"):
        learnlab.resume(tmp_path / "nothing")


def test_one_seed_cannot_decide_a_claim(tmp_path):
    summary = smoke(tmp_path / "one", arms=["baseline", "concept"], overrides={"seeds": 1})
    assert {c["verdict"] for c in summary["claims"]} == {"undetermined"}
