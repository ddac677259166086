"""The command line: one-line errors with exit code 2, and the run directory contract."""

import contextlib
import dataclasses
import io
import json
import re
import shutil
from importlib.metadata import version

import pandas as pd
import pytest
from click.testing import CliRunner

import learnlab
from learnlab import api
from learnlab.cli import app, main, print_summary

SMOKE = ["run", "hard-negatives", "--preset", "smoke", "--quiet"]


@pytest.mark.parametrize(
    "argv, named",
    [
        (["run", "hard-negatives", "--set", "steps=-3"], "steps"),
        (["run", "hard-negatives", "--set", "no_such_key=1"], "no_such_key"),
        (["run", "hard-negatives", "--seeds", "0"], "seeds"),
        (["run", "no-such-study"], "no-such-study"),
        (["run", "hard-negatives", "--arms", "baseline,nope"], "nope"),
        (["run", "hard-negatives", "--preset", "huge"], "huge"),
        (["run", "hard-negatives", "--set", "min_len=9", "--set", "max_len=7"], "max_len"),
        (["run", "hard-negatives", "--seeds", "many"], "--seeds"),
        (["sweep", "hard-negatives", "--grid", "lr"], "--grid"),
        (["sweep", "hard-negatives", "--grid", "lr=0.1,-1"], "lr"),
        (["report", "nowhere"], "nowhere"),
        (["run", "hard-negatives", "--arms", "concept,concept"], "twice"),
        (["run", "hard-negatives", "--set", "lr=.inf"], "lr"),
        (["run", "hard-negatives", "--set", "max_len=60"], "vocab_size >= 60"),
        (["run", "hard-negatives", "--set", "seed=99999999999999999999"], "seed"),
        (["run", "hard-negatives", "--config", "missing.yaml"], "missing.yaml"),
        (["run", "hard-negatives", "--out", "/dev/null/x"], "/dev/null/x"),
        (["run", "model-collapse", "--set", "generations=1"], "generations"),
        (["run", "robustness", "--set", "bits=[1]"], "bits"),
        (["run", "inductive-bias", "--arms", "zigzag-standard,pivot-nope"], "pivot-nope"),
        (["resume", "nowhere"], "nowhere"),
        (["sweep", "hard-negatives", "--grid", "seeds=1,2", "--seeds", "3"], "seeds"),
        (["sweep", "hard-negatives", "--grid", "lr=0.1", "--grid", "lr=0.2"], "lr"),
        (["run", "hard-negatives", "--backend", "ray"], "not a grid study"),
        (["run", "plateau-scaling", "--set", "n_values=[10]"], "n_values"),
        (["run", "knowledge-acquisition", "--set", "warmup_individuals=5", "--set", "alpha=0.5"], "warm-up"),
        (["run", "knowledge-acquisition", "--resume", "nowhere"], "nowhere"),
        (["run", "knowledge-acquisition", "--set", "schedule_steps=100"], "schedule_steps"),
        (["run", "plateau-scaling", "--set", "warmup_individuals=900"], "warmup_individuals (900)"),
        (
            ["run", "warmup-curriculum", "--set", "warmup_individuals_grid=[40]"]
            + ["--set", "warmup_epochs_grid=[559.6]"],
            "longest warm-up (700 steps)",  # 699.5 batches of 32 take 700 steps, the whole budget
        ),
        (["run", "fine-tuning-forgetting", "--set", "ft_eval_early=30"], "ft_eval_early"),
        (["run", "data-imbalance", "--set", "n_values=[50, 200]", "--set", "celebrities=60"], "celebrities"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, capsys, argv, named):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert named in err and "Traceback" not in err
    assert not (in_tmp / "runs").exists()


def test_list_names_studies_and_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "hard-negatives" in out and "smoke" in out and "paper" in out


def test_smoke_run_writes_the_output_contract(in_tmp, capsys):
    assert main([*SMOKE, "--out", "r1", "--arms", "baseline,concept", "--seeds", "2", "--set", "seed=42"]) == 0
    run = in_tmp / "r1"
    for name in (
        "summary.json",
        "metrics.parquet",
        "config.yaml",
        "report.md",
        "report.html",
        "learning_curves.png",
        "final.png",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"study", "preset", "config", "seeds", "device", "wall_seconds", "table", "reference"}
    assert summary["seeds"] == [42, 43]
    assert list(summary["table"]) == ["baseline", "concept"]
    cell = summary["table"]["concept"]["hard"]
    assert set(cell) == {"mean", "std", "ci95", "values"} and len(cell["values"]) == 2
    assert 0.0 <= cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1] <= 1.0
    metrics = pd.read_parquet(run / "metrics.parquet")
    assert list(metrics.columns) == ["arm", "seed", "step", "split", "metric", "value"]
    assert set(metrics.split) == {"train", "eval", "test"}
    assert "concept" in capsys.readouterr().out  # the table is printed

    # the saved config re-runs the same thing
    assert main([*SMOKE, "--out", "r2", "--config", str(run / "config.yaml")]) == 0
    again = json.loads((in_tmp / "r2" / "summary.json").read_text())
    assert again["table"] == summary["table"]


def test_runs_lists_past_runs_and_report_rerenders(in_tmp, capsys):
    assert main([*SMOKE, "--arms", "concept"]) == 0
    capsys.readouterr()
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "hard-negatives" in out and "smoke" in out and "concept.hard" in out
    run = next((in_tmp / "runs").iterdir())
    (run / "report.md").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.md").is_file()


def test_report_of_an_older_run_prints_in_the_units_the_study_declares_now(in_tmp, capsys, monkeypatch):
    assert main([*SMOKE, "--arms", "concept"]) == 0
    run = next((in_tmp / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "plain_metrics": ["hard"]}))  # as declared then
    spec = api.get_study("hard-negatives")
    monkeypatch.setitem(api.STUDIES, "hard-negatives", dataclasses.replace(spec, point_metrics=("hard",)))
    assert main(["report", str(run)]) == 0
    measurements = (run / "report.md").read_text().split("## All measurements", 1)[1]
    row = next(line for line in measurements.splitlines() if line.startswith("| concept |"))
    assert f"{100 * summary['table']['concept']['hard']['mean']:+.1f} pts ±" in row


def test_existing_out_dir_is_refused(in_tmp, capsys):
    (in_tmp / "taken").mkdir()
    assert main([*SMOKE, "--out", "taken"]) == 2
    assert "taken" in capsys.readouterr().err


def test_malformed_config_file_is_one_line(in_tmp, capsys):
    (in_tmp / "bad.yaml").write_text("steps: [1,\n  : :")
    assert main(["run", "hard-negatives", "--config", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err


def test_report_needs_a_complete_run_directory(in_tmp, capsys):
    (in_tmp / "half").mkdir()
    (in_tmp / "half" / "summary.json").write_text("{}")
    assert main(["report", "half"]) == 2
    assert "metrics.parquet" in capsys.readouterr().err


@pytest.mark.parametrize("study", sorted(api.STUDIES))
def test_every_preset_of_every_study_is_a_valid_config(study):
    for preset in api.get_study(study).presets:
        api.resolve(study, preset=preset, device="cpu")  # paper presets are meant for a GPU; the config is the same


def test_stored_unit_lists_merge_with_the_studys_current_ones(monkeypatch):
    spec = api.get_study("hard-negatives")
    monkeypatch.setitem(api.STUDIES, "hard-negatives", dataclasses.replace(spec, plain_metrics=("easy",)))
    merged = api.with_current_units({"study": "hard-negatives", "plain_metrics": ["hard"], "table": {}})
    assert merged["plain_metrics"] == ["easy", "hard"] and "point_metrics" not in merged


# --- a saved config keeps its labels (issue 12, class 7) -------------------------------------------------


def test_a_saved_config_runs_as_its_own_preset_and_no_other(in_tmp, capsys):
    assert main([*SMOKE, "--arms", "concept", "--set", "steps=20", "--out", "saved"]) == 0
    saved = str(in_tmp / "saved" / "config.yaml")
    capsys.readouterr()
    before = sorted(in_tmp.rglob("*"))
    for argv, named in (
        (
            ["run", "hard-negatives", "--config", saved, "--preset", "laptop", "--out", "x"],
            "'smoke' but the run's is 'laptop'",
        ),
        (
            ["run", "model-collapse", "--config", saved, "--out", "x"],
            "'hard-negatives' but the run's is 'model-collapse'",
        ),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and named in err
    assert sorted(in_tmp.rglob("*")) == before
    for extra, out in (([], "as-saved"), (["--preset", "smoke"], "same-label")):
        assert main(["run", "hard-negatives", "--quiet", "--config", saved, *extra, "--out", out]) == 0
        summary = json.loads((in_tmp / out / "summary.json").read_text())
        assert summary["preset"] == "smoke" and summary["config"]["steps"] == 20


# --- what the terminal shows (issue 12, class 11) -------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A smoke run of hard-negatives (all arms: the table has published rows) and its stdout, piped."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    result = CliRunner().invoke(app, [*SMOKE, "--out", str(out)], env={"COLUMNS": None}, catch_exceptions=False)
    assert result.exit_code == 0
    return out, result.stdout


def test_piped_output_cuts_no_cell(smoke_run):
    _, stdout = smoke_run
    assert "baseline (published)" in stdout and "concept (published)" in stdout
    assert "…" not in stdout and "\x1b[" not in stdout  # nothing cut, no colour codes in a pipe
    summary = json.loads((smoke_run[0] / "summary.json").read_text())
    for claim in summary["claims"]:
        assert claim["claim"] in stdout  # a verdict line is one line, however long


def test_piped_output_ignores_a_narrow_columns(in_tmp):
    result = CliRunner().invoke(app, [*SMOKE, "--arms", "baseline", "--set", "steps=5"], env={"COLUMNS": "30"})
    assert result.exit_code == 0 and "baseline (published)" in result.stdout and "…" not in result.stdout


def with_claims(run, verdict: str, preset: str):
    summary = json.loads((run / "summary.json").read_text())
    claims = [{**c, "verdict": verdict} for c in summary["claims"]]
    (run / "summary.json").write_text(json.dumps({**summary, "claims": claims, "preset": preset}))
    return summary


def test_a_smoke_runs_verdicts_show_as_undetermined(smoke_run, tmp_path, capsys):
    run = shutil.copytree(smoke_run[0], tmp_path / "run")
    summary = with_claims(run, "not reproduced", "smoke")
    stored = (run / "summary.json").read_text()
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    n = len(summary["claims"])
    assert f"## Verdict: 0/{n} reproduced, {n} undetermined (smoke preset: decides nothing)" in report
    verdicts = [line for line in report.splitlines() if line.startswith("- **")]
    assert len(verdicts) == n and all(line.startswith("- **undetermined** — ") for line in verdicts)
    assert "its check said not reproduced" in report  # what the check said is kept, in the evidence
    assert (run / "summary.json").read_text() == stored  # summary.json keeps the verdicts as judged
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_summary(json.loads(stored))
    lines = [line for line in printed.getvalue().splitlines() if "decides nothing" in line]
    assert len(lines) == n + 1 and all(line.startswith(("undetermined ", "Verdicts: 0/")) for line in lines)


def test_a_laptop_runs_failed_verdicts_still_show(smoke_run, tmp_path):
    run = shutil.copytree(smoke_run[0], tmp_path / "run")
    summary = with_claims(run, "not reproduced", "laptop")
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    assert report.count("- **not reproduced** — ") == len(summary["claims"]) and "decides nothing" not in report


def test_the_sweep_table_is_one_line_a_row_in_percent(in_tmp):
    argv = ["sweep", "hard-negatives", "--preset", "smoke", "--arms", "concept", "--grid", "steps=5,10", "-q"]
    result = CliRunner().invoke(app, [*argv, "--out", "s"], env={"COLUMNS": None}, catch_exceptions=False)
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 00")]
    assert len(rows) == 4  # 2 points x the headline cells (concept hard, concept extrap)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert row.endswith("|") and re.fullmatch(r"\d+\.\d% ± \d+\.\d%", cells[-2]), row
        assert re.fullmatch(r"\[-?\d+\.\d%, \d+\.\d%\]", cells[-1]), row
    table = pd.read_parquet(in_tmp / "s" / "sweep.parquet")
    assert table["mean"].between(0, 1).all()  # the stored table keeps its fractions
    assert "%" in (in_tmp / "s" / "sweep.md").read_text()


# --- show, --help, --version ------------------------------------------------------------------------------


def test_show_lists_arms_presets_and_every_key_with_default_and_bounds():
    result = CliRunner().invoke(app, ["show", "hard-negatives"], env={"COLUMNS": None}, catch_exceptions=False)
    assert result.exit_code == 0
    spec = api.get_study("hard-negatives")
    out = result.stdout
    assert ", ".join(spec.arms) in out
    assert "smoke: steps=60, seeds=2, eval_size=50" in out and "laptop: the defaults" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 6}
    assert set(rows) == set(spec.config.model_fields) - {"study", "preset"}
    assert re.search(r"│ steps\s+│ int\s+│ 1600\s+│ > 0\s+│ training steps", rows["steps"])
    assert re.search(r"│ eval_size\s+│ int\s+│ 500\s+│ > 0\s+│ test sequences per class", rows["eval_size"])
    assert "matches ^(cpu|cuda(:\\d+)?)$" in rows["device"]
    shown = api.show("subliminal")
    assert {k["key"]: k["type"] for k in shown["keys"]}["distill_loss"] == "kl | mse"
    assert all(k["description"] for k in shown["keys"])
    assert learnlab.show("subliminal") == shown


@pytest.mark.parametrize("study", sorted(api.STUDIES))
def test_show_describes_every_key_of_every_study(study):
    keys = api.show(study)["keys"]
    assert [k["key"] for k in keys] == [
        k for k in api.get_study(study).config.model_fields if k not in ("study", "preset")
    ]
    assert all(k["description"] for k in keys), [k["key"] for k in keys if not k["description"]]


def test_show_of_an_unknown_study_is_one_line(capsys):
    assert main(["show", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'nope'" in err and "hard-negatives" in err


def test_run_help_points_to_list_and_show():
    out = CliRunner().invoke(app, ["run", "--help"]).stdout
    assert "learnlab list" in out and "learnlab show STUDY" in out


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"learnlab {version('learnlab')}\n"
    assert main(["--version"]) == 0
