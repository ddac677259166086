"""A study defined outside the package (examples/xor_width.py, the README's example) registers through
`learnlab.register_study` or a `learnlab.studies` entry point, and every command then finds it."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import learnlab
from learnlab import api
from learnlab.cli import main
from learnlab.errors import LearnlabError

EXAMPLE = Path(__file__).parents[1] / "examples" / "xor_width.py"


@pytest.fixture
def xor_width():
    study = runpy.run_path(str(EXAMPLE))["STUDY"]  # registers it
    yield study
    api.STUDIES.pop(study.name, None)


def test_a_registered_study_is_listed_run_reported_and_reproduced(xor_width, tmp_path, capsys):
    assert main(["list"]) == 0 and "xor-width" in capsys.readouterr().out
    assert main(["run", "xor-width", "--preset", "laptop", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert "Width 16 ends with a lower loss" in shown and "reproduced" not in shown  # a hypothesis, not a paper
    assert main(["report", str(tmp_path / "r")]) == 0
    summary = learnlab.load_run(tmp_path / "r").summary
    assert summary["study"] == "xor-width" and summary["claims"][0]["verdict"] in ("held", "did not hold")
    assert "reproduced" not in (tmp_path / "r" / "report.md").read_text()
    done = learnlab.reproduce(preset="smoke", only=["xor-width"], out=tmp_path / "all", progress=False)
    assert [s["study"] for s in done["studies"]] == ["xor-width"]


def test_registering_another_study_under_a_taken_name_or_a_non_study_is_refused(xor_width):
    import dataclasses

    assert learnlab.register_study(xor_width) is xor_width  # the same one again: fine
    with pytest.raises(LearnlabError, match="'xor-width' is already registered"):
        learnlab.register_study(dataclasses.replace(xor_width, title="another"))
    with pytest.raises(LearnlabError, match="hard-negatives' is already registered"):
        learnlab.register_study(dataclasses.replace(xor_width, name="hard-negatives"))
    with pytest.raises(LearnlabError, match="is not a learnlab"):
        learnlab.register_study("xor-width")


def installed(tmp_path: Path, entry: str) -> dict[str, str]:
    """A package on PYTHONPATH that declares `entry` under the learnlab.studies entry-point group."""
    (tmp_path / "my_studies.py").write_text(EXAMPLE.read_text())
    info = tmp_path / "my_studies-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-studies\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[learnlab.studies]\n{entry}\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_an_entry_point_makes_a_study_known_to_the_command_line(tmp_path):
    env = installed(tmp_path, "xor = my_studies:STUDY")
    done = subprocess.run([sys.executable, "-m", "learnlab", "list"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "xor-width" in done.stdout


def test_a_broken_entry_point_is_a_warning_and_the_lab_still_works(tmp_path):
    env = installed(tmp_path, "broken = no_such_module:STUDY")
    done = subprocess.run([sys.executable, "-m", "learnlab", "list"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "hard-negatives" in done.stdout
    assert "entry point 'broken'" in done.stderr and "Traceback" not in done.stderr


def test_neutral_verdict_words_are_counted_as_their_outcomes():
    from learnlab.reporting.report import verdict_counts

    held = [{"verdict": "held"}, {"verdict": "did not hold"}, {"verdict": "undetermined"}]
    assert verdict_counts(held) == "1/3 held, 1 did not hold, 1 undetermined"
    assert verdict_counts([{"verdict": "reproduced"}, {"verdict": "undetermined"}]) == "1/2 reproduced, 1 undetermined"
