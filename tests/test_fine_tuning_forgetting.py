"""fine-tuning-forgetting: the summary's names, the fine-tuning data and schedule, paired effects on a
hand-made frame, the claims' checks, and Ray = local."""

import numpy as np
import pandas as pd
import pytest

import learnlab
from learnlab.engine.rng import NumpyGenerator
from learnlab.studies import fine_tuning_forgetting as ftf
from learnlab.studies import knowledge_acquisition as ka

REQUIRED = ("old_acc_start", "old_acc_min_100", "old_acc_end", "new_acc_end")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ftf") / "run"
    return out, learnlab.run("fine-tuning-forgetting", preset="smoke", out=out, progress=False)


def test_smoke_summary_has_every_arm_and_required_metric(smoke_run):
    out, summary = smoke_run
    table = summary["table"]
    arms = {"new-4", "new-8", "replay-1", "replay-1/4", "toy-memory", "toy-memory-new-32"}
    assert arms | {"pre-training"} == set(table)
    for arm in arms:
        assert set(REQUIRED) <= set(table[arm]) and all(len(table[arm][m]["values"]) == 2 for m in REQUIRED)
    assert {"attn_change_l0", "attn_recall_change_l1"} <= set(table["new-4"]) & set(table["pre-training"])
    assert {"old_loss_end_vs_no_replay", "early_drop_vs_no_replay"} <= set(table["replay-1/4"])
    assert "old_acc_end_vs_fewest" in table["new-8"]
    assert len(summary["claims"]) == len(ftf.CLAIMS)
    assert {"forgetting.png", "toy_memory.png", "attention.png", "report.html"} <= {p.name for p in out.iterdir()}


def test_curves_start_before_the_first_update_and_are_dense_early(smoke_run):
    out, _ = smoke_run
    metrics = pd.read_parquet(out / "metrics.parquet")
    ev = metrics[(metrics.split == "eval") & (metrics.arm == "new-4") & (metrics.metric == "acc_old")]
    assert sorted(set(ev.step)) == [0, 5, 10, 15, 20]
    toy = metrics[(metrics.split == "eval") & (metrics.arm == "toy-memory") & (metrics.metric == "acc_old")]
    assert sorted(set(toy.step))[:3] == [0, 10, 20] and max(toy.step) == 120
    start = metrics[(metrics.split == "test") & (metrics.arm == "new-4") & (metrics.metric == "old_acc_start")]
    assert start.value.tolist() == ev[ev.step == 0].sort_values("seed").value.tolist()


def test_eval_schedule_and_weight_labels():
    assert ftf.eval_steps(250, 10, 50) == [*range(0, 101, 10), 150, 200, 250]
    assert ftf.eval_steps(4000, 10, 100)[-3:] == [3800, 3900, 4000] and 100 in ftf.eval_steps(4000, 10, 100)
    assert [ftf.replay_arm(w) for w in (2, 1 / 2, 1 / 8, 1 / 32, 0.3)] == [
        "replay-2", "replay-1/2", "replay-1/8", "replay-1/32", "replay-3/10"
    ]  # fmt: skip
    with pytest.raises(learnlab.LearnlabError, match="replay_new"):
        learnlab.resolve("fine-tuning-forgetting", preset="smoke", overrides={"replay_new": 5})
    with pytest.raises(learnlab.LearnlabError, match="arms"):
        learnlab.run("fine-tuning-forgetting", preset="smoke", arms=["new-4"])


def test_the_stream_mixes_old_and_new_individuals_at_the_replay_share():
    cfg = ftf.job_config(ftf.Config(**ftf.PRESETS["smoke"]), ftf.ForgettingConfig, seed=0, seeds=1)
    enc = ka.world_of(cfg)
    new = ftf.new_individuals(enc, 8)
    assert set(new) <= set(enc.world.unseen)
    stream = ftf.FineTuningStream(cfg, enc, [0], new, old_share=1 / 3)
    who = np.concatenate([stream.individuals(NumpyGenerator(s, "test")) for s in range(20)])
    old = who < cfg.n_individuals
    assert set(who[~old]) == set(new) and abs(old.mean() - 1 / 3) < 0.02
    only_new = ftf.FineTuningStream(cfg, enc, [0], new, old_share=0.0).individuals(NumpyGenerator(0, "test"))
    assert set(only_new) <= set(new)


def _frame(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = [
        {"arm": arm, "seed": s, "step": 1, "split": "test", "metric": metric, "value": v}
        for (arm, metric), vs in values.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_paired_effects_are_per_seed_differences_against_the_right_baseline():
    cfg = ftf.Config(**{**ftf.PRESETS["smoke"], "new_values": [4, 8], "replay_new": 8, "replay_weights": [1]})
    frame = _frame(
        {
            ("new-4", "old_acc_end"): [0.5, 0.6],
            ("new-4", "old_loss_end"): [2.0, 2.0],
            ("new-8", "old_acc_end"): [0.2, 0.4],
            ("new-8", "old_loss_end"): [3.0, 4.0],
            ("new-8", "old_acc_start"): [0.9, 0.9],
            ("new-8", "old_acc_min_100"): [0.1, 0.3],
            ("replay-1", "old_acc_end"): [0.7, 0.7],
            ("replay-1", "old_loss_end"): [1.0, 1.5],
            ("replay-1", "old_acc_start"): [0.9, 0.9],
            ("replay-1", "old_acc_min_100"): [0.5, 0.6],
        }
    )
    table = ftf.paired_effects(frame, cfg)
    assert table["new-8"]["old_acc_end_vs_fewest"]["values"] == pytest.approx([-0.3, -0.2])
    assert table["new-8"]["old_loss_end_vs_fewest"]["values"] == pytest.approx([1.0, 2.0])
    assert table["replay-1"]["old_loss_end_vs_no_replay"]["values"] == pytest.approx([-2.0, -2.5])
    assert table["replay-1"]["old_acc_end_vs_no_replay"]["values"] == pytest.approx([0.5, 0.3])
    assert table["replay-1"]["early_drop_vs_no_replay"]["values"] == pytest.approx([-0.4, -0.3])
    assert set(table) == {"new-8", "replay-1"}


def _cell(values):
    values = [float("nan") if v is None else v for v in values]
    finite = [v for v in values if v == v]
    mean = float(np.mean(finite)) if finite else None
    return {"mean": mean, "ci95": [min(finite, default=None), max(finite, default=None)], "values": values}


def test_the_claims_read_collapse_and_half_steps_per_seed():
    arm = {
        "old_acc_start": _cell([0.9, 0.9]),
        "old_acc_min_100": _cell([0.2, 0.3]),
        "old_acc_end": _cell([0.1, 0.1]),
        "new_acc_100": _cell([0.05, 0.1]),
        "old_half_step": _cell([20, 30]),
        "new_half_step": _cell([200, None]),  # never: slower than any step
    }
    table = {"new-4": arm}
    assert ftf._fast_collapse(table)[0] and ftf._slow_acquisition(table)[0]
    slow_forgetting = {**arm, "old_half_step": _cell([250, 30])}
    assert not ftf._slow_acquisition({"new-4": slow_forgetting})[0]
    mild = {**arm, "old_acc_min_100": _cell([0.6, 0.6])}
    assert not ftf._fast_collapse({"new-4": mild})[0]


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    small = {"seeds": 1, "new_values": [4, 8], "replay_weights": [1], "ft_steps": 10, "toy_steps": 60,
             "toy_ft_steps": 30, "toy_new_sweep": []}  # fmt: skip
    local, remote = local_and_ray("fine-tuning-forgetting", small)
    assert local["table"] == remote["table"] and "old_acc_min_100" in local["table"]["replay-1"]
