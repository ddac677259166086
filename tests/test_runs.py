"""Determinism, atomic run directories and report contents."""

import dataclasses
import json

import pytest

import learnlab
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
        assert cell["values"][0] == pytest.approx(crowd["table"]["concept"][metric]["values"][1], abs=1e-9)


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
    assert md.count("reproduced") >= len(hard_negatives.CLAIMS)
    html = (tmp_path / "r" / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="http' not in html
    assert "Measured beside published" in html
