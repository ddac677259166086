"""looped-introspection: the probe on a planted signal and on shuffled labels, injection of nothing, bad
configs, every claim on a table where it holds and one where it fails, and a smoke run end to end."""

import json

import numpy as np
import pytest
import torch

import learnlab
from learnlab.config import build_config
from learnlab.errors import Interrupted, LearnlabError
from learnlab.reporting.stats import describe
from learnlab.studies import looped_introspection as li
from learnlab.tasks import pointer_chasing as pc


def smoke(**over):
    return build_config(li.Config, li.STUDY.name, li.PRESETS, "smoke", over)


def test_the_probe_recovers_a_planted_linear_signal_and_sits_at_chance_on_shuffled_labels():
    rng = np.random.default_rng(0)
    y = rng.random(1000) < 0.4
    x = rng.normal(size=(1000, 32)) + 1.5 * y[:, None] * rng.normal(size=32)
    fit, score = slice(0, 500), slice(500, None)
    real = li.probe_scores(x[fit], y[fit], x[score], y[score])
    assert real["auroc"] > 0.95 and real["acc"] > 0.85 and real["f1"] > 0.8
    shuffled = li.probe_scores(x[fit], rng.permutation(y[fit]), x[score], y[score])
    assert abs(shuffled["auroc"] - 0.5) < 0.1
    assert np.isnan(li.probe_scores(x[fit], np.zeros(500, bool), x[score], y[score])["auroc"])


def test_a_zero_vector_injected_at_any_loop_flips_nothing_and_a_large_one_does():
    cfg = smoke(loops=3)
    model = li.build(cfg, cfg.seed_list).eval()
    p = pc.problems(np.random.default_rng(1), 64, cfg.n_nodes, cfg.hops)
    tokens = torch.as_tensor(np.stack([pc.sequences(p, p.answers)] * cfg.seeds))
    with torch.no_grad():
        _, verify = li.readouts(model, tokens, cfg.n_nodes)
        base = verify[-1].argmax(-1) == 1
        zero = torch.zeros(cfg.seeds, cfg.d_model)
        for t in range(cfg.loops):
            assert torch.equal(li.inject(model, tokens, cfg.n_nodes, t, zero), base)
        yes_no = model.w_unembed[:, :, pc.YES] - model.w_unembed[:, :, pc.NO]  # pushes every verdict to Y
        pushed = li.inject(model, tokens, cfg.n_nodes, cfg.loops - 1, 1e4 * yes_no)
    assert pushed.all()


@pytest.mark.parametrize(
    ("over", "key"),
    [({"loops": 0}, "'loops'"), ({"n_nodes": pc.MAX_NODES + 1}, "n_nodes=25"), ({"hops": 0}, "'hops'"),
     ({"n_heads": 3}, "n_heads=3")],
)  # fmt: skip
def test_a_bad_config_is_a_one_line_error_naming_its_key(over, key):
    with pytest.raises(LearnlabError) as err:
        smoke(**over)
    assert key in str(err.value) and "\n" not in str(err.value)


def table(task, sv, probe, flip_true, flip_random, seeds=5, floor=0.2, auroc_gap=None):
    """A run's table: per loop, every seed's value plus a small per-seed wiggle (so CIs have a width)."""
    wiggle = np.linspace(-0.01, 0.01, seeds)
    auroc_gap = [p - v for p, v in zip(probe, sv, strict=True)] if auroc_gap is None else auroc_gap

    def cell(v):
        return describe(list(v + wiggle))

    return {
        li.arm(t + 1): {
            "task_acc": cell(task[t]), "floor_acc": cell(floor), "sv_acc": cell(sv[t]), "probe_acc": cell(probe[t]),
            "gap_acc": describe(list(probe[t] - sv[t] + wiggle[::-1] * 0.5)),
            "gap_auroc": describe(list(auroc_gap[t] + wiggle[::-1] * 0.5)),
            "flip_true": cell(flip_true[t]), "flip_random": cell(flip_random[t]),
        }
        for t in range(len(task))
    }  # fmt: skip


TASK = [0.4, 0.6, 0.8]
HOLDS = table(TASK, sv=[0.6, 0.7, 0.8], probe=[0.9, 0.85, 0.82], flip_true=[0.05, 0.1, 0.6], flip_random=[0.02] * 3)
FAILS = table(TASK, sv=[0.9, 0.7, 0.5], probe=[0.6, 0.75, 0.9], flip_true=[0.6, 0.3, 0.1], flip_random=[0.5] * 3)
PROBE_BEATS, GAP_SHRINKS, PROBE_FLAT, LAST_LOOP = li.CLAIMS


@pytest.mark.parametrize("claim", li.CLAIMS, ids=["probe-beats-words", "gap-shrinks", "probe-flat", "last-loop"])
def test_every_claim_holds_on_a_table_made_to_hold_it_and_fails_on_one_made_to_fail_it(claim):
    assert claim.judge(HOLDS).as_dict()["verdict"] == "reproduced"
    assert claim.judge(FAILS).as_dict()["verdict"] == "not reproduced"


def test_every_claim_is_undetermined_when_the_last_loop_is_no_better_than_the_trivial_floor():
    guessing = table([0.3, 0.32, 0.34], sv=[0.6, 0.7, 0.8], probe=[0.9, 0.85, 0.82], flip_true=[0.05, 0.1, 0.6],
                     flip_random=[0.02] * 3, floor=0.33)  # fmt: skip
    for claim in li.CLAIMS:
        verdict = claim.judge(guessing).as_dict()
        assert verdict["verdict"] == "undetermined" and "not learned the task" in verdict["evidence"]
    barely = table([0.3, 0.32, 0.36], sv=[0.6, 0.7, 0.8], probe=[0.9, 0.85, 0.82], flip_true=[0.05, 0.1, 0.6],
                   flip_random=[0.02] * 3, floor=0.33)  # fmt: skip
    # 3 points above the floor: inside the margin
    assert {c.judge(barely).as_dict()["verdict"] for c in li.CLAIMS} == {"undetermined"}


def test_the_trivial_floor_is_the_start_node_or_the_commonest_answer():
    hops0 = pc.Problems(np.tile(np.arange(4), (4, 1)), np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]))
    assert li.trivial_floor(hops0) == 1.0  # identity tables: the answer is the start
    shifted = pc.Problems(np.zeros((4, 4), int), np.array([0, 1, 2, 3]), np.array([1, 1, 1, 2]))
    assert li.trivial_floor(shifted) == 0.75  # never the start (but 1 once), and "1" is right 3 times of 4


def test_the_gap_claim_follows_the_auroc_gap_not_the_accuracy_gap():
    acc_shrinks_auroc_grows = table(TASK, sv=[0.6, 0.7, 0.8], probe=[0.9, 0.85, 0.82], flip_true=[0.05, 0.1, 0.6],
                                    flip_random=[0.02] * 3, auroc_gap=[0.0, 0.1, 0.2])  # fmt: skip
    verdict = GAP_SHRINKS.judge(acc_shrinks_auroc_grows).as_dict()
    assert verdict["verdict"] == "not reproduced" and "AUROC gap" in verdict["evidence"]
    assert "accuracy gap, not judged" in verdict["evidence"]


def test_auroc_by_hand():
    # positives score 0.9 and 0.3, negatives 0.8 and 0.1: of the 4 (positive, negative) pairs 3 are ranked right
    assert li.auroc(np.array([True, False, True, False]), np.array([0.9, 0.8, 0.3, 0.1])) == 0.75
    # a tie counts half: positives 0.5, 0.9; negatives 0.5, 0.2 -> (0.5 + 1 + 1 + 1) / 4
    assert li.auroc(np.array([True, True, False, False]), np.array([0.5, 0.9, 0.5, 0.2])) == 0.875
    assert np.isnan(li.auroc(np.array([True, True]), np.array([0.1, 0.9])))


def test_a_claim_that_straddles_its_bound_or_has_one_loop_is_undetermined():
    noisy = table(TASK, sv=[0.7] * 3, probe=[0.7] * 3, flip_true=[0.1] * 3, flip_random=[0.1] * 3)
    for claim in (PROBE_BEATS, GAP_SHRINKS, LAST_LOOP):
        assert claim.judge(noisy).as_dict()["verdict"] == "undetermined"
    one = {li.arm(1): HOLDS[li.arm(1)]}
    assert GAP_SHRINKS.judge(one).as_dict()["verdict"] == "undetermined"
    assert LAST_LOOP.judge(one).as_dict()["verdict"] == "undetermined"


def test_the_smoke_preset_runs_end_to_end_with_per_loop_tables_figures_and_the_model(tmp_path):
    cfg = smoke()
    summary = learnlab.run("looped-introspection", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == ["loop-1", "loop-2", "flat-params", "flat-flops"]
    for flat in ("flat-params", "flat-flops"):
        assert {"task_acc", "floor_acc", "sv_acc", "sv_f1", "sv_auroc"} <= set(table[flat])
        assert len(table[flat]["task_acc"]["values"]) == cfg.seeds
    for cells in (table["loop-1"], table["loop-2"]):
        assert {"task_acc", "sv_acc", "sv_f1", "probe_acc", "probe_f1", "probe_auroc", "probe_auroc_shuffled",
                "gap_acc", "sv_auroc", "gap_auroc", "floor_acc", "flip_true", "flip_random", "flip_true_x4",
                "flip_random_x1"} <= set(cells)  # fmt: skip
        assert len(cells["task_acc"]["values"]) == cfg.seeds
    assert [c["verdict"] for c in summary["claims"]] == ["undetermined"] * 4  # 2 seeds, claims need 5
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["table"] == table
    assert any((tmp_path / "r").rglob("per_loop*"))
    run = learnlab.load_run(tmp_path / "r")
    model = run.models["looped"].model
    assert run.models["flat-flops"].model.n_layers == cfg.block_layers * cfg.loops
    assert run.models["flat-params"].model.n_layers == cfg.block_layers
    assert isinstance(model, li.LoopedTransformer) and model.loops == cfg.loops
    tokens = torch.zeros(cfg.seeds, 3, pc.seq_len(cfg.n_nodes), dtype=torch.long)
    assert model.forward_loops(tokens).shape == (cfg.loops, cfg.seeds, 3, pc.seq_len(cfg.n_nodes), pc.VOCAB_SIZE)
    again = learnlab.run("looped-introspection", preset="smoke", out=tmp_path / "again", progress=False)
    assert again["table"] == table  # deterministic


def test_a_loop_with_no_value_in_any_seed_is_undetermined_and_noted_not_a_crash():
    missing = describe([None] * 5)
    names = (
        "task_acc",
        "floor_acc",
        "sv_acc",
        "probe_acc",
        "gap_acc",
        "gap_auroc",
        "sv_auroc",
        "flip_true",
        "flip_random",
        "probe_auroc",
        "probe_auroc_shuffled",
    )
    t = {li.arm(i): {m: missing for m in names} for i in (1, 2)}
    t[li.arm(1)]["task_acc"] = describe([1.0] * 5)  # every answer right: no probe, no direction
    assert [c.judge(t).as_dict()["verdict"] for c in li.CLAIMS] == ["undetermined"] * 4
    assert "n/a" in li.notes({"table": t})[0]


def test_an_interrupted_run_resumes_to_the_uninterrupted_numbers(tmp_path, ctrl_c):
    """Cut in the flat-flops baseline's training (after the looped model and flat-params finished): the
    resume keeps both, continues flat-flops from its checkpoint, and every number equals one whole run's."""
    kw = {"preset": "smoke", "checkpoint_every": 5, "progress": False}
    whole = learnlab.run("looped-introspection", out=tmp_path / "whole", **kw)
    ctrl_c(12, "looped-introspection · flat-flops")
    with pytest.raises(Interrupted):
        learnlab.run("looped-introspection", out=tmp_path / "cut", **kw)
    ctrl_c(None)
    resumed = learnlab.resume(tmp_path / "cut", progress=False, checkpoint_every=5)
    assert resumed["table"] == whole["table"]


def test_the_probe_heatmap_has_a_row_per_layer_in_the_block(tmp_path):
    summary = learnlab.run(
        "looped-introspection", preset="smoke", out=tmp_path / "r", progress=False,
        overrides={"block_layers": 2, "baselines": False},
    )  # fmt: skip
    for a in ("loop-1", "loop-2"):
        cells = summary["table"][a]
        assert {"probe_auroc_layer1", "probe_auroc_layer2"} <= set(cells)
        assert cells["probe_auroc_layer2"]["values"] == cells["probe_auroc"]["values"]  # the loop's output
    assert (tmp_path / "r" / "probe_heatmap.png").exists()
