"""The command line: one-line errors with exit code 2, and the run directory contract."""

import dataclasses
import json

import pandas as pd
import pytest

from learnlab import api
from learnlab.cli import main

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
