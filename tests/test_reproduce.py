"""`learnlab reproduce`: every study's smoke preset into one directory with an index; a second call keeps
what is finished; a failing study gets a row and the rest go on; bad input is one line, exit 2."""

import dataclasses
from pathlib import Path

import pytest

import learnlab
from learnlab import api
from learnlab.cli import main
from learnlab.errors import Interrupted, LearnlabError
from learnlab.reporting.index import Entry, summary_line
from learnlab.reporting.report import Badge, Link, to_html, to_markdown
from learnlab.studies import hard_negatives
from learnlab.sweeps.reproduce import select


def test_every_study_reproduces_at_smoke_scale_into_one_index(tmp_path, capsys):
    assert main(["reproduce", "--preset", "smoke", "--out", str(tmp_path / "all"), "--quiet"]) == 0
    out = capsys.readouterr().out
    index = (tmp_path / "all" / "index.md").read_text()
    claims = sum(len(s.claims) for s in api.STUDIES.values())
    assert f"**{claims} claims: 0 reproduced, 0 not, {claims} undetermined**" in index  # smoke decides nothing
    for name in api.STUDIES:
        assert (tmp_path / "all" / name / "summary.json").is_file()
        assert f"[{name}]({name}/report.html)" in index
        assert name in out
    assert '<span class="badge"' in (tmp_path / "all" / "index.html").read_text()


def test_a_second_call_keeps_finished_studies_and_adds_the_new_ones(tmp_path):
    first = learnlab.reproduce(preset="smoke", only=["A1"], out=tmp_path / "r", progress=False)
    kept = (tmp_path / "r" / "hard-negatives" / "summary.json").stat().st_mtime_ns
    second = learnlab.reproduce(preset="smoke", only=["A1", "robustness"], out=tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "hard-negatives" / "summary.json").stat().st_mtime_ns == kept
    assert [s["study"] for s in first["studies"]] == ["hard-negatives"]
    assert [s["study"] for s in second["studies"]] == ["hard-negatives", "robustness"]
    assert second["studies"][0] == first["studies"][0]


def test_an_interrupted_study_resumes_on_the_next_call(tmp_path, ctrl_c):
    whole = api.run("hard-negatives", preset="smoke", out=tmp_path / "whole", progress=False, checkpoint_every=10)
    ctrl_c(25)
    kw = {"preset": "smoke", "only": ["A1"], "out": tmp_path / "r", "progress": False, "checkpoint_every": 10}
    with pytest.raises(Interrupted, match="learnlab reproduce"):
        learnlab.reproduce(**kw)
    ctrl_c(None)
    assert not (tmp_path / "r" / "hard-negatives").exists()
    done = learnlab.reproduce(**kw)
    assert api.read_summary(tmp_path / "r" / "hard-negatives")["table"] == whole["table"]
    assert done["studies"][0]["verdicts"] == [c["verdict"] for c in whole["claims"]]


def test_a_study_that_cannot_run_gets_a_row_and_the_others_go_on(tmp_path, monkeypatch):
    def refused(cfg, ctx):
        raise LearnlabError("batch_size=9 needs about 1 TiB of memory")

    monkeypatch.setitem(api.STUDIES, "hard-negatives", dataclasses.replace(hard_negatives.STUDY, measure=refused))
    result = learnlab.reproduce(preset="smoke", only=["A1", "A4"], out=tmp_path / "r", progress=False)
    assert result["studies"][0] == {
        "study": "hard-negatives",
        "run_dir": str(tmp_path / "r" / "hard-negatives"),
        "error": "batch_size=9 needs about 1 TiB of memory",
    }
    assert "did not finish (hard-negatives)" in result["summary_line"]
    assert "**did not finish**" in (tmp_path / "r" / "index.md").read_text()
    assert (tmp_path / "r" / "robustness" / "summary.json").is_file()


def entry(verdicts, study="s"):
    claims = [{"claim": f"c{i}", "verdict": v, "evidence": "e"} for i, v in enumerate(verdicts)]
    return Entry(study, ("A1",), Path(study), {"preset": "laptop", "claims": claims, "wall_seconds": 1.0})


def test_the_summary_line_counts_every_verdict_and_names_studies_that_did_not_finish():
    unfinished = Entry("x", (), Path("x"))
    entries = [entry(["reproduced", "not reproduced"]), entry(["undetermined", "reproduced"]), unfinished]
    assert summary_line(entries) == ("4 claims: 2 reproduced, 1 not, 1 undetermined; 1 of 3 studies did not finish (x)")
    assert summary_line(entries[:1]) == "2 claims: 1 reproduced, 1 not, 0 undetermined"


def test_badges_and_links_render_in_both_formats_and_a_pipe_cannot_break_a_row():
    doc = [
        ("h1", "index"),
        ("table", (["a", "b", "c"], [[Link("run", "run/report.html"), Badge("reproduced"), "x | y"]])),
    ]
    assert "| [run](run/report.html) | **reproduced** | x \\| y |" in to_markdown(doc)
    page = to_html(doc, Path("."))
    assert '<a href="run/report.html">run</a>' in page and 'class="badge"' in page and "x | y" in page


def test_studies_are_chosen_by_code_or_name_in_code_order():
    assert [s.name for s in select(["C3", "a1", "hard-negatives"])] == ["hard-negatives", "plateau-scaling"]
    assert [s.codes for s in select(["C7"])] == [("C2", "C7")]
    every = [s.codes[0] for s in select(None)]
    assert every == sorted(every, key=lambda c: (c[0], int(c[1:])))
    assert all(s.codes for s in api.STUDIES.values())  # every study names its STUDIES.md section


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--only", "Z9"], "'Z9'"),
        (["--only", ","], "--only ','"),
        (["--preset", "huge"], "'huge'"),
        (["--backend", "slurm"], "slurm"),
        (["--out", "afile"], "'afile'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, named):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("mine")
    assert main(["reproduce", "--preset", "smoke", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "\n" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_directory_of_another_preset_is_refused(tmp_path):
    learnlab.reproduce(preset="smoke", only=["A5"], out=tmp_path / "r", progress=False)
    with pytest.raises(LearnlabError, match="reproduces preset 'smoke', not 'laptop'"):
        learnlab.reproduce(preset="laptop", only=["A5"], out=tmp_path / "r", progress=False)
