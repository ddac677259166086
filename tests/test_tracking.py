"""Live tracking (learnlab.tracking): evaluations streamed during training to MLflow, TensorBoard or W&B.

The sinks are an optional extra (`pip install 'learnlab[track]'`): their tests skip where it is absent.
"""

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from learnlab import tracking
from learnlab.cli import main
from learnlab.engine.train import Checkpoint, train_ensemble

SMOKE = ["run", "hard-negatives", "--preset", "smoke", "--quiet", "--seeds", "2"]


class ListSink:
    def __init__(self, fail: bool = False):
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.closed: list = []
        self.fail = fail

    def log(self, metrics, step):
        if self.fail:
            raise OSError("disk gone")
        self.logged.append((step, dict(metrics)))

    def close(self, summary):
        self.closed.append(summary)


class Pull(nn.Module):
    """K scalars pulled toward 1: member k's metric is its own value."""

    def __init__(self, k: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(k))


def _train(steps=6, k=3, **kwargs):
    model = Pull(k)
    return train_ensemble(
        model,
        lambda step: (torch.zeros(1), torch.zeros(1)),
        lambda m, _batch: (m.w - 1) ** 2,
        steps=steps,
        lr=0.1,
        evaluate=lambda m: {"w": m.w.detach().clone()},
        eval_every=2,
        **kwargs,
    )


def test_evaluations_stream_under_the_progress_bar_name_mean_and_members():
    sink = ListSink()
    tracker = tracking.Tracker(sink)
    bars = tracker.progress(lambda desc, total: _null(desc))
    with tracking.active(tracker), bars("pull · 3 models", 6):
        log = _train()
    assert [step for step, _ in sink.logged] == [2, 4, 6]  # every evaluation, as it happens
    step, last = sink.logged[-1]
    w = log.evals[-1][1]["w"]
    assert last["pull/3_models/w/mean"] == pytest.approx(w.mean().item())
    assert [last[f"pull/3_models/w/member{k}"] for k in range(3)] == pytest.approx(w.tolist())
    assert last["pull/3_models/train_loss/mean"] == pytest.approx(log.losses[5].mean().item())
    with tracking.active(tracker), bars("pull · 3 models", 6):  # the same name again: its own curve
        _train()
    assert "pull/3_models#2/w/mean" in sink.logged[-1][1]


def test_nothing_streams_without_a_tracker_and_big_ensembles_log_only_the_mean():
    sink = ListSink()
    _train()  # no tracker active
    assert sink.logged == []
    with tracking.active(tracking.Tracker(sink)):
        _train(k=tracking.MEMBERS_MAX + 1)
    assert sorted(sink.logged[-1][1]) == ["train_loss/mean", "w/mean"]


def test_a_failing_sink_warns_once_and_the_training_goes_on():
    sink = ListSink(fail=True)
    tracker = tracking.Tracker(sink)
    with tracking.active(tracker), pytest.warns(UserWarning, match="tracking stopped .*disk gone"):
        log = _train()
    assert len(log.evals) == 3
    tracker.close({"table": {}})
    assert sink.closed == [None]  # marked failed, not finished


def test_a_resumed_training_streams_the_whole_curve(tmp_path):
    ckpt = Checkpoint(tmp_path / "t.ckpt", every=2)

    def stop(step):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(checkpoint=ckpt, on_step=stop)
    sink = ListSink()
    with tracking.active(tracking.Tracker(sink)):
        _train(checkpoint=ckpt)
    assert [step for step, _ in sink.logged] == [2, 4, 6]


def test_final_means_and_verdicts():
    summary = {
        "table": {"hard": {"acc": {"mean": 0.9, "std": 0.1}, "note": "x"}},
        "claims": [{"claim": "it holds", "verdict": "reproduced"}],
    }
    assert tracking.final_means(summary) == {"final/hard/acc": 0.9}
    assert tracking.verdicts(summary) == {"verdict/1": "reproduced", "claim/1": "it holds"}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--track", "nope"], "--track"),
        (["--track-uri", "somewhere"], "--track-uri"),
    ],
)
def test_bad_track_options_are_one_line_exit_2_and_write_nothing(in_tmp, capsys, argv, named):
    assert main([*SMOKE, "--out", "r", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err
    assert list(in_tmp.iterdir()) == []


def test_a_missing_extra_is_refused_before_anything_is_written(in_tmp, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main([*SMOKE, "--out", "r", "--track", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: --track mlflow: mlflow-skinny is not installed (pip install 'learnlab[track]')"
    ]
    assert list(in_tmp.iterdir()) == []


def test_track_mlflow_leaves_a_local_store_with_the_curves(in_tmp, capsys):
    mlflow = pytest.importorskip("mlflow")
    assert main([*SMOKE, "--out", "runs/r", "--track", "mlflow"]) == 0
    run_dir = in_tmp / "runs" / "r"
    assert not any("mlruns" in p.name for p in run_dir.rglob("*"))  # the run directory is as without --track
    store = in_tmp / "runs" / "mlruns"  # beside it, shared by the runs of that root
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(store.resolve().as_uri())
    runs = mlflow.search_runs(experiment_names=["hard-negatives"])
    assert len(runs) == 1
    found = runs.iloc[0]
    assert found["status"] == "FINISHED" and found["tags.mlflow.runName"] == "r"
    assert found["tags.verdict/1"] == "undetermined"  # the smoke preset decides nothing
    assert found["params.seeds"] == "2"
    curve = mlflow.MlflowClient().get_metric_history(found["run_id"], "hard-negatives/10_models/hard/mean")
    steps = [m.step for m in curve]
    assert len(steps) >= 2 and steps == sorted(steps)
    assert "metrics.final/hard50/hard" in runs.columns


def test_track_tensorboard_writes_an_event_file_with_the_curves(in_tmp, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main([*SMOKE, "--out", "r", "--track", "tensorboard", "--track-uri", "tb"]) == 0
    events = EventAccumulator(str(in_tmp / "tb" / "r")).Reload()
    curve = events.Scalars("hard-negatives/10_models/hard/mean")
    assert len(curve) >= 2 and [e.step for e in curve] == sorted(e.step for e in curve)
    assert "final/hard50/hard" in events.Tags()["scalars"]


def test_a_resumed_run_tracks_the_whole_curve(in_tmp, capsys, ctrl_c):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ctrl_c(50)  # after the checkpoint at step 40
    assert main([*SMOKE, "--out", "r", "--checkpoint-every", "20"]) == 130
    ctrl_c(None)
    assert main(["resume", "r", "--quiet", "--track", "tensorboard", "--track-uri", "tb"]) == 0
    curve = EventAccumulator(str(in_tmp / "tb" / "r")).Reload().Scalars("hard-negatives/10_models/hard/mean")
    assert [e.step for e in curve] == [20, 40, 60]  # 20 and 40 from the checkpoint, 60 trained now


def test_track_wandb_offline_writes_a_local_run_with_the_curves(in_tmp, capsys):
    pytest.importorskip("wandb")
    assert main([*SMOKE, "--out", "r", "--track", "wandb"]) == 0
    files = list(Path(in_tmp / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1  # offline: nothing left the machine; `wandb sync` uploads it
    data = files[0].read_bytes()
    assert b"hard-negatives/10_models/hard/mean" in data and b"final/hard50/hard" in data


def _null(desc):
    from contextlib import nullcontext

    return nullcontext(lambda n: None)
