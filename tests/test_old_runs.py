"""Run directories made before issue 11 (t-intervals, new claim checks, new metrics) still render:
`learnlab report` draws the figures of each study's smoke run, as stored, with today's code."""

import shutil
from pathlib import Path

import pytest

import learnlab

OLD = Path(__file__).parent / "data" / "runs-before-issue-11"


@pytest.mark.parametrize("study", sorted(p.name for p in OLD.iterdir()))
def test_a_run_made_before_issue_11_still_renders(study, tmp_path):
    run = shutil.copytree(OLD / study, tmp_path / study)
    html = learnlab.report(run)
    md = (run / "report.md").read_text()
    assert html.is_file() and "## Verdict" in md and "## All measurements" in md
