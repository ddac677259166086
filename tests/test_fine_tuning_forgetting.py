"""fine-tuning-forgetting: the summary's names, the fine-tuning data and schedule, paired effects on a
hand-made frame, the claims' checks, and Ray = local."""

import numpy as np
import pandas as pd
import pytest
import torch

import learnlab
from learnlab.engine.rng import NumpyGenerator
from learnlab.engine.train import train_ensemble
from learnlab.protocols import biography_lm as bl
from learnlab.protocols import fine_tuning as ftp
from learnlab.reporting.stats import describe
from learnlab.studies import fine_tuning_forgetting as ftf

REQUIRED = ("old_acc_start", "old_acc_min_100", "old_acc_end", "new_acc_end")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ftf") / "run"
    return out, learnlab.run("fine-tuning-forgetting", preset="smoke", out=out, progress=False)


def test_smoke_summary_has_every_arm_and_required_metric(smoke_run):
    out, summary = smoke_run
    table = summary["table"]
    arms = {"new-4", "new-8", "replay-1", "replay-1/4", "frozen-attention-8", "toy-memory", "toy-memory-new-32"}
    assert arms | {"pre-training"} == set(table)
    for arm in arms:
        assert set(REQUIRED) <= set(table[arm]) and all(len(table[arm][m]["values"]) == 2 for m in REQUIRED)
    assert {"attn_change_l0", "attn_recall_change_l1"} <= set(table["new-4"]) & set(table["pre-training"])
    assert {"old_loss_end_vs_no_replay", "early_drop_vs_no_replay"} <= set(table["replay-1/4"])
    assert "old_acc_end_vs_fewest" in table["new-8"]
    assert {"early_drop_vs_unfrozen", "old_acc_end_vs_unfrozen"} <= set(table["frozen-attention-8"])
    # equal exposures per new individual (40 at batch 8): steps grow with n and with replay
    assert [table[a]["ft_steps"]["mean"] for a in ("new-4", "new-8", "replay-1", "replay-1/4")] == [20, 40, 80, 50]
    assert all(table[a]["new_exposures"]["mean"] == 40 for a in ("new-4", "new-8", "replay-1", "frozen-attention-8"))
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
    enc = bl.world_of(cfg)
    new = ftf.new_individuals(enc, 8)
    assert set(new) <= set(enc.world.unseen)
    stream = ftp.FineTuningStream(cfg, enc, [0], new, old_share=1 / 3, steps=20)
    who = np.concatenate([stream.individuals(NumpyGenerator(s, "test")) for s in range(20)])
    old = who < cfg.n_individuals
    assert set(who[~old]) == set(new) and abs(old.mean() - 1 / 3) < 0.02
    only_new = ftp.FineTuningStream(cfg, enc, [0], new, 0.0, 20).individuals(NumpyGenerator(0, "test"))
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
            ("frozen-attention-8", "old_acc_start"): [0.9, 0.9],
            ("frozen-attention-8", "old_acc_min_100"): [0.2, 0.1],
            ("frozen-attention-8", "old_acc_end"): [0.3, 0.3],
        }
    )
    table = ftf.paired_effects(frame, cfg)
    assert table["new-8"]["old_acc_end_vs_fewest"]["values"] == pytest.approx([-0.3, -0.2])
    assert table["new-8"]["old_loss_end_vs_fewest"]["values"] == pytest.approx([1.0, 2.0])
    assert table["replay-1"]["old_loss_end_vs_no_replay"]["values"] == pytest.approx([-2.0, -2.5])
    assert table["replay-1"]["old_acc_end_vs_no_replay"]["values"] == pytest.approx([0.5, 0.3])
    assert table["replay-1"]["early_drop_vs_no_replay"]["values"] == pytest.approx([-0.4, -0.3])
    assert table["frozen-attention-8"]["early_drop_vs_unfrozen"]["values"] == pytest.approx([-0.1, 0.2])
    assert table["frozen-attention-8"]["old_acc_end_vs_unfrozen"]["values"] == pytest.approx([0.1, -0.1])
    assert set(table) == {"new-8", "replay-1", "frozen-attention-8"}


def test_arms_fine_tune_at_equal_exposures_per_new_individual():
    cfg = ftf.ForgettingConfig(batch_size=32, new_values=[25, 50, 100], replay_new=50, ft_exposures=128)
    runs = {ft.arm: ft for ft in ftf.fine_tunings(cfg)}
    assert [runs[a].steps(cfg) for a in ("new-25", "new-50", "new-100", "frozen-attention-50")] == [100, 200, 400, 200]
    assert [runs[a].steps(cfg) for a in ("replay-2", "replay-1/2", "replay-1/8", "replay-1/32")] == [600, 300, 225, 207]
    assert runs["replay-1/8"].exposures(cfg) == 128 and 128 <= runs["replay-1/32"].exposures(cfg) < 129
    assert runs["frozen-attention-50"].frozen and runs["replay-2"].old_share == pytest.approx(2 / 3)
    same_steps = cfg.model_copy(update={"ft_exposures": 0})
    assert {ft.steps(same_steps) for ft in runs.values()} == {cfg.ft_steps}


def test_frozen_attention_keeps_every_attention_weight_and_trains_the_rest():
    cfg = ftf.job_config(ftf.Config(**ftf.PRESETS["smoke"]), ftf.ForgettingConfig, seed=0, seeds=1)
    enc = bl.world_of(cfg)
    model = bl.build_model(cfg, enc, [0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ftf.freeze_attention(model)
    stream = ftp.FineTuningStream(cfg, enc, [0], ftf.new_individuals(enc, 4), 0.0, 3)
    train_ensemble(model, stream, bl.lm_loss(cfg, enc.pad_id), steps=3, lr=1e-2, weight_decay=0.1,
                   decoupled_weight_decay=True)  # fmt: skip
    after = model.state_dict()
    attention = [k for k in before if ".attn." in k]
    assert attention and all(torch.equal(before[k], after[k]) for k in attention)
    assert not torch.equal(before["blocks.0.mlp.w_in"], after["blocks.0.mlp.w_in"])


# --- the claims, on hand-built tables (5 seeds) --------------------------------------------------------------


def _cells(rng, **means):
    """Per-seed cells around the given means (a little seed noise); a list is taken per seed as it is."""
    spread = {"old_half_step": 2, "new_half_step": 10, "ft_steps": 0, "new_exposures": 0}
    spread |= {m: 0.001 for m in means if m.startswith("attn_")}
    return {
        m: describe(list(v) if isinstance(v, list) else v + spread.get(m, 0.01) * rng.standard_normal(5))
        for m, v in means.items()
    }


def _fine_tuning(rng, steps, **changes):
    means = {"old_acc_start": 0.9, "old_acc_min_100": 0.2, "old_acc_end": 0.4, "old_loss_end": 4.0,
             "new_acc_start": 0.0, "new_acc_100": 0.1, "new_acc_end": 0.6, "old_half_step": 20.0,
             "new_half_step": [None] * 5 if steps <= 100 else 150.0, "ft_steps": float(steps),
             "new_exposures": 128.0, "attn_recall_change_l0": 0.02, "attn_recall_change_l1": 0.02}  # fmt: skip
    return _cells(rng, **(means | changes))


def _derived(rng, **means):
    return {m: {**describe(v + 0.02 * rng.standard_normal(5)), "derived": True} for m, v in means.items()}


def _table(**changes):
    """A run in which every claim holds; `changes` = {arm: {metric: mean or per-seed list}} edits it."""
    rng = np.random.default_rng(0)
    table = {
        "pre-training": _cells(
            rng, final_acc_heldout_templates=0.93, attn_recall_change_l0=0.5, attn_recall_change_l1=0.4
        ),  # fmt: skip
        "new-25": _fine_tuning(rng, 100, old_acc_end=0.5),
        "new-50": _fine_tuning(rng, 200, old_acc_end=0.4),
        "new-100": _fine_tuning(rng, 400, old_acc_end=0.3),
        "replay-2": _fine_tuning(rng, 600, old_acc_min_100=0.35, old_acc_end=0.7),
        "replay-1/8": _fine_tuning(rng, 225, old_acc_min_100=0.25, old_acc_end=0.5),
        "frozen-attention-50": _fine_tuning(rng, 200, attn_recall_change_l0=0.0, attn_recall_change_l1=0.0),
        "toy-memory": _fine_tuning(
            rng, 4000, old_acc_start=0.95, old_acc_min_100=0.3, old_half_step=30.0, new_half_step=400.0, new_acc_end=0.9
        ),  # fmt: skip
    }
    table["new-100"] |= _derived(rng, old_acc_end_vs_fewest=-0.2)
    for arm in ("replay-2", "replay-1/8"):
        table[arm] |= _derived(rng, old_loss_end_vs_no_replay=-0.5, early_drop_vs_no_replay=-0.1)
    table["frozen-attention-50"] |= _derived(rng, early_drop_vs_unfrozen=0.0, old_acc_end_vs_unfrozen=0.01)
    for arm, metrics in changes.items():
        table[arm] = {**table[arm], **_cells(rng, **metrics)}
        for m in metrics:
            if m.endswith(("_vs_fewest", "_vs_no_replay", "_vs_unfrozen")):
                table[arm][m]["derived"] = True
    return table


def _verdict(index, table):
    return ftf.CLAIMS[index].judge(table).as_dict()["verdict"]


def test_claims_are_reproduced_on_a_run_where_they_hold():
    table = _table()
    assert [claim.judge(table).as_dict()["verdict"] for claim in ftf.CLAIMS] == ["reproduced"] * len(ftf.CLAIMS)


def test_claims_need_five_seeds_and_a_model_that_knew_something():
    four = {a: {m: {**describe(c["values"][:4]), "derived": c.get("derived", False)} for m, c in cells.items()}
            for a, cells in _table().items()}  # fmt: skip
    assert {c.judge(four).as_dict()["verdict"] for c in ftf.CLAIMS} == {"undetermined"}
    assert all(c.min_seeds >= 5 for c in ftf.CLAIMS) and ftf.PRESETS["laptop"]["seeds"] >= 5
    ignorant = _table(**{a: {"old_acc_start": 0.3} for a in ("new-25", "new-50", "new-100", "replay-2",
                                                               "replay-1/8", "toy-memory")})  # fmt: skip
    assert [_verdict(i, ignorant) for i in (0, 1, 2, 3, 4, 6, 7)] == ["undetermined"] * 7


FALSE = {  # claim index -> the edit of the table that makes it false
    0: {"new-50": {"old_acc_min_100": 0.6}},  # a third of old knowledge lost, not half
    1: {"new-50": {"new_half_step": 10.0}},  # new knowledge at 50% before old halves
    2: {"new-25": {"old_acc_end": 0.3}, "new-100": {"old_acc_end": 0.5}},  # less forgetting with more n
    3: {"replay-1/8": {"old_loss_end_vs_no_replay": 0.1}},  # replay at 1/8 does not soften the final loss
    4: {"replay-2": {"old_acc_min_100": 0.7}},  # replay at 2 prevents the collapse
    5: {"new-100": {"attn_recall_change_l1": 0.2}},  # half of pre-training's change
    6: {"frozen-attention-50": {"early_drop_vs_unfrozen": -0.3}},  # frozen attention forgets far less
    7: {"toy-memory": {"new_half_step": 20.0}},  # the toy learns new pairs before it forgets old ones
}


@pytest.mark.parametrize("index", sorted(FALSE))
def test_claim_is_not_reproduced_where_it_is_false(index):
    assert _verdict(index, _table(**FALSE[index])) == "not reproduced", ftf.CLAIMS[index].text


def test_claim_slow_acquisition_fails_if_old_never_halves_or_new_never_rises():
    assert _verdict(1, _table(**{"new-100": {"old_half_step": [20, 25, None, 18, 22]}})) == "not reproduced"
    assert _verdict(1, _table(**{"new-25": {"new_acc_end": 0.0}})) == "not reproduced"
    assert _verdict(7, _table(**{"toy-memory": {"old_half_step": [None] * 5}})) == "not reproduced"


def test_claim_more_forgetting_is_undetermined_at_unmatched_exposures():
    unmatched = _table(**{"new-25": {"new_exposures": 512.0}, "new-100": {"new_exposures": 32.0}})
    verdict = ftf.CLAIMS[2].judge(unmatched).as_dict()
    assert verdict["verdict"] == "undetermined" and "matched" in verdict["evidence"]


def test_claim_attention_stable_needs_a_tight_interval_not_a_small_mean():
    noisy = _table(**{"new-50": {"attn_recall_change_l0": [0.0, 0.0, 0.09, 0.0, 0.0]}})  # mean 4%, CI wide
    assert _verdict(5, noisy) == "not reproduced"


def test_claim_frozen_attention_without_any_collapse_is_undetermined():
    calm = _table(**{"new-50": {"old_acc_min_100": 0.85}})
    assert _verdict(6, calm) == "undetermined"
    assert _verdict(6, _table(**{"frozen-attention-50": {"old_acc_end_vs_unfrozen": 0.2}})) == "not reproduced"


def test_claims_on_a_missing_arm_are_undetermined():
    table = {a: cells for a, cells in _table().items() if not a.startswith(("replay-", "frozen-", "toy-"))}
    assert [_verdict(i, table) for i in (3, 4, 6, 7)] == ["undetermined"] * 4


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    small = {"seeds": 1, "new_values": [4, 8], "replay_weights": [1], "ft_exposures": 10, "toy_steps": 60,
             "toy_ft_steps": 30, "toy_new_sweep": []}  # fmt: skip
    local, remote = local_and_ray("fine-tuning-forgetting", small)
    assert local["table"] == remote["table"] and "old_acc_min_100" in local["table"]["replay-1"]
