"""mixture-of-experts: a one-expert MoE trains as the dense MLP through the biography protocol, seeds as one
ensemble equal separate trainings, the claims on hand-made tables (held, refuted, too few seeds), bad input
through the CLI, and a smoke run end to end (load sums to one, models kept and rebuilt)."""

import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from helpers import cli

import learnlab
from learnlab.engine.context import RunContext
from learnlab.engine.train import train_ensemble
from learnlab.models.moe import MoETransformer, moe_layers
from learnlab.protocols import biography_lm as bl
from learnlab.reporting.stats import describe
from learnlab.studies import mixture_of_experts as e3

RUN = ["run", "mixture-of-experts", "--preset", "smoke", "-q"]


def _quiet(desc: str, total: int):
    return nullcontext(lambda n: None)


def _cfg(**changes) -> e3.ArmConfig:
    cfg = e3.Config(**e3.PRESETS["smoke"])
    return e3.job_config(cfg, "moe-1", 10).model_copy(update=changes)


# --- the protocol: a one-expert MoE is the dense MLP; the aux loss only where there are experts ------------


def test_the_balancing_loss_is_switch_over_real_tokens_and_ignores_padding():
    cfg = _cfg(n_experts=4)
    enc = bl.world_of(cfg)
    moe = bl.build_model(cfg, enc, [0, 1], e3.factory(cfg))
    experts = moe_layers(moe)
    with torch.no_grad():
        for layer in experts.values():
            layer.w_router.mul_(100)  # skewed routing: padding positions would tip the balance
    tokens = enc.eval_batch(np.arange(4), "train", 0, bl.context_length(cfg, enc)).tokens
    tokens = tokens[:, : int((tokens != enc.pad_id).sum(1).min()) + 1][None].expand(2, -1, -1)  # no padding input
    base, balanced = bl.lm_loss(cfg, enc.pad_id), bl.lm_loss(cfg, enc.pad_id, experts=experts)
    total = balanced(moe, tokens)
    own = sum(m.aux_loss for m in experts.values())  # MoEMLP's own: every position, here all real
    assert torch.allclose(total - base(moe, tokens), own, atol=1e-6)
    padded = torch.cat([tokens, torch.full((2, 4, 7), enc.pad_id)], dim=-1)
    assert torch.allclose(balanced(moe, padded), total, atol=1e-5)  # padding moves neither part
    assert not torch.allclose(base(moe, padded) + sum(m.aux_loss for m in experts.values()), total, atol=1e-5)


def test_one_expert_moe_trains_exactly_as_the_dense_mlp():
    """Copy the dense model's weights into a one-expert MoE: the gate is 1, the balancing loss a constant
    (no gradient), so both train along the same path on the same biographies."""
    cfg = _cfg(steps=6)
    enc = bl.world_of(cfg)
    dense = bl.build_model(cfg, enc, [3])
    one = bl.build_model(cfg, enc, [3], e3.factory(cfg.model_copy(update={"n_experts": 1})))
    state = {k: v.unsqueeze(1) if ".mlp." in k else v for k, v in dense.state_dict().items()}
    one.load_state_dict({**one.state_dict(), **state})
    tokens = enc.eval_batch(np.arange(5), "heldout", 1, bl.context_length(cfg, enc)).tokens[None]
    before = dense(tokens).detach()
    losses = []
    for model in (dense, one):
        loss = bl.lm_loss(cfg, enc.pad_id, experts=moe_layers(model))
        losses.append(
            train_ensemble(model, bl.BiographyStream(cfg, enc, [3], [0]), loss, steps=cfg.steps, lr=cfg.lr,
                           weight_decay=cfg.weight_decay, betas=(0.9, cfg.beta2), decoupled_weight_decay=True).losses
        )  # fmt: skip
    # the balancing loss of one expert is alpha per layer, a constant: the same gradients, the same path
    assert torch.allclose(losses[1] - losses[0], torch.tensor(cfg.n_layers * cfg.balance_alpha), atol=1e-5)
    with torch.no_grad():
        a, b = dense(tokens), one(tokens)
    assert (a - b).abs().max() < 1e-3 < (a - before).abs().max() / 100  # Adam's rounding apart; it did train


@pytest.mark.parametrize("alpha", [0.0, 0.01])
def test_moe_seeds_trained_together_equal_separate_trainings(alpha):
    """Without the balancing loss, bit for bit up to rounding; with it (over real tokens only, so the batch
    width that other members' biographies set does not enter), the same losses, and weights apart by what
    the rounding of different batch widths, amplified by Adam through the routing's ties, leaves."""
    cfg = _cfg(n_experts=4, steps=5, seeds=2, eval_every=5, balance_alpha=alpha)
    ctx = RunContext(_quiet)
    together, log = bl.train(cfg, ctx, model_factory=e3.factory(cfg))
    assert isinstance(together, MoETransformer)
    enc = bl.world_of(cfg)
    tokens = enc.eval_batch(np.arange(3), "heldout", 1, bl.context_length(cfg, enc)).tokens[None]
    for k, seed in enumerate(cfg.seed_list):
        alone, own = bl.train(cfg.model_copy(update={"seed": seed, "seeds": 1}), ctx, model_factory=e3.factory(cfg))
        assert torch.allclose(log.losses[:, k], own.losses[:, 0], atol=1e-3)
        with torch.no_grad():
            gap = (together(tokens.expand(2, -1, -1))[k] - alone(tokens)[0]).abs().max()
        assert gap < (1e-4 if alpha == 0 else 0.1)


def test_expert_load_counts_real_tokens_and_sums_to_one():
    cfg = _cfg(n_experts=4, top_k=2)
    enc = bl.world_of(cfg)
    model = bl.build_model(cfg, enc, [0, 1], e3.factory(cfg))
    batch = bl.evaluation_sets(cfg, enc)["train_templates"]
    loads = e3.expert_load(model, batch.tokens, enc.pad_id, cfg)
    assert len(loads) == cfg.n_layers and all(f.shape == (2, 4) for f in loads)
    assert all(np.allclose(f.sum(1), 1.0) for f in loads)
    padded = torch.cat([batch.tokens[:4], torch.full((4, 30), enc.pad_id)], dim=1)  # padding must not count
    short, long = (e3.expert_load(model, x, enc.pad_id, cfg) for x in (batch.tokens[:4], padded))
    assert all(np.allclose(a, b) for a, b in zip(short, long, strict=True))
    dense = cfg.model_copy(update={"n_experts": 0})
    assert e3.expert_load(bl.build_model(dense, enc, [0]), batch.tokens, enc.pad_id, dense) == []


# --- claims on hand-made tables ------------------------------------------------------------------------------


def _table(facts: dict[str, list[float]]) -> dict:
    return {arm: {"facts_stored": describe(np.array(v, dtype=float))} for arm, v in facts.items()}


RISING = {
    "dense-active": [100, 110, 95, 105, 102],
    "dense-total": [300, 310, 290, 305, 300],
    "moe-1": [101, 108, 97, 104, 100],
    "moe-4": [150, 160, 140, 158, 149],
    "moe-8": [190, 200, 181, 195, 188],
}
FALLING = {**RISING, "moe-4": [90, 95, 85, 92, 90], "moe-8": [80, 85, 75, 82, 79]}
FLAT = {**RISING, "moe-4": [110, 100, 90, 108, 95], "moe-8": [95, 112, 99, 100, 104]}


def _verdicts(facts: dict[str, list[float]]) -> list[str]:
    t = _table(facts)
    t[e3.DERIVED] = e3.comparisons(t)
    return [c.judge(t).as_dict()["verdict"] for c in e3.CLAIMS]


def test_claims_hold_on_a_table_where_more_experts_store_more():
    assert _verdicts(RISING) == ["reproduced", "reproduced"]
    slope = e3.comparisons(_table(RISING))["facts_slope_log2e"]
    x = np.log2([1, 4, 8])
    per_seed = [np.polyfit(x, [RISING[f"moe-{e}"][s] for e in (1, 4, 8)], 1)[0] for s in range(5)]
    assert slope["mean"] == pytest.approx(np.mean(per_seed))


@pytest.mark.parametrize("facts", [FALLING, FLAT], ids=["falling", "flat"])
def test_claims_fail_where_experts_do_not_help(facts):
    assert _verdicts(facts) == ["not reproduced", "not reproduced"]


def test_claims_are_undetermined_below_five_seeds_or_without_moe_arms():
    four = {a: v[:4] for a, v in RISING.items()}
    assert _verdicts(four) == ["undetermined", "undetermined"]
    assert _verdicts({"dense-active": RISING["dense-active"], "moe-4": RISING["moe-4"]})[0] == "undetermined"
    assert all(c.min_seeds >= 5 for c in e3.CLAIMS) and e3.PRESETS["laptop"]["seeds"] >= 5


@pytest.mark.parametrize("dense_total", [[100, 112, 93, 106, 101], None], ids=["no-larger", "missing"])
def test_claims_are_undetermined_where_more_mlp_parameters_store_no_more_facts(dense_total):
    facts = (
        {**RISING, "dense-total": dense_total}
        if dense_total
        else {a: v for a, v in RISING.items() if a != "dense-total"}
    )
    t = _table(facts)
    t[e3.DERIVED] = e3.comparisons(t)
    verdicts = [c.judge(t).as_dict() for c in e3.CLAIMS]
    assert [v["verdict"] for v in verdicts] == ["undetermined"] * 2 and "dense-total" in verdicts[0]["evidence"]


def test_claims_are_undetermined_when_no_arm_learnt_facts():
    t = _table(RISING)
    for arm in t:
        t[arm]["acc_above_chance"] = describe(np.full(5, 0.01))
    t[e3.DERIVED] = e3.comparisons(t)
    verdicts = [c.judge(t).as_dict() for c in e3.CLAIMS]
    assert [v["verdict"] for v in verdicts] == ["undetermined"] * 2 and "learnt" in verdicts[0]["evidence"]
    t["moe-8"]["acc_above_chance"] = describe(np.full(5, 0.2))
    assert [c.judge(t).as_dict()["verdict"] for c in e3.CLAIMS] == ["reproduced"] * 2


def test_capacity_is_the_most_facts_and_saturation_the_largest_n_above_the_line():
    import pandas as pd

    cfg = e3.Config(**{**e3.PRESETS["smoke"], "n_values": [10, 20, 40]})
    rows = [("moe-4", 0, 5, "test", f"acc_n{n}", a) for n, a in ((10, 1.0), (20, 0.92), (40, 0.5))]
    rows += [("moe-4", 0, 5, "test", f"facts_n{n}", a * n * 6) for n, a in ((10, 1.0), (20, 0.92), (40, 0.5))]
    rows += [(a, 0, 5, "test", f"chance_n{n}", 0.03) for a in ("moe-4", "moe-1") for n in (10, 20, 40)]
    rows += [("moe-1", 0, 5, "test", f"acc_n{n}", 0.1) for n in (10, 20, 40)]
    rows += [("moe-1", 0, 5, "test", f"facts_n{n}", 0.1 * n * 6) for n in (10, 20, 40)]
    out = e3.capacity_rows(pd.DataFrame(rows, columns=["arm", "seed", "step", "split", "metric", "value"]), cfg)
    got = {(r.arm, r.metric): r.value for r in out.itertuples()}
    assert got[("moe-4", "facts_stored")] == 120 and got[("moe-4", "n_saturated")] == 20
    assert got[("moe-1", "facts_stored")] == pytest.approx(24) and np.isnan(got[("moe-1", "n_saturated")])
    assert got[("moe-4", "acc_above_chance")] == pytest.approx(0.97)


# --- the CLI and a whole run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--set", "experts=[0, 4]"], "experts"), (["--set", "experts=[-2]"], "experts"),
     (["--set", "top_k=2"], "top_k"), (["--set", "top_k=0"], "top_k"), (["--arms", "moe-16"], "moe-16"),
     (["--set", "focus_n=15"], "focus_n")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, argv, named):
    code, _, err = cli([*RUN, *argv])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


def test_smoke_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    code, _, err = cli([*RUN, "--out", str(out), "--arms", "dense-active,moe-1,moe-4"])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    t = summary["table"]
    assert list(t) == ["dense-active", "moe-1", "moe-4", e3.DERIVED]
    for arm in ("dense-active", "moe-1", "moe-4"):
        assert {"acc_n10", "acc_n20", "facts_stored", "n_saturated", "forgetting", "old_acc_start"} <= set(t[arm])
        assert len(t[arm]["facts_stored"]["values"]) == 2
    assert {"facts_slope_log2e", "facts_moe_minus_dense_active"} <= set(t[e3.DERIVED])
    assert {"load_max_l0", "load_max_l1"} <= set(t["moe-4"]) and "load_max_l0" not in t["dense-active"]
    assert [c["verdict"] for c in summary["claims"]] == ["undetermined"] * len(e3.CLAIMS)
    assert (out / "accuracy_vs_n.png").is_file() and (out / "expert_load.png").is_file()
    run = learnlab.load_run(out)
    load = run.metrics[(run.metrics.split == "load") & (run.metrics.arm == "moe-4")]
    assert np.allclose(load.groupby(["seed", "metric"]).value.sum(), 1.0)
    kept = run.models["moe-4-N-10/train"].model
    assert isinstance(kept, MoETransformer) and kept.blocks[0].mlp.n_experts == 4


def test_dense_total_has_the_largest_moe_total_width():
    cfg = e3.Config(**{**e3.PRESETS["smoke"], "experts": [1, 4, 8], "top_k": 1})
    assert cfg.shape("dense-total") == {"n_experts": 0, "d_mlp": 8 * cfg.d_mlp}
    assert cfg.shape("dense-active") == {"n_experts": 0, "d_mlp": cfg.d_mlp}
    assert cfg.shape("moe-8") == {"n_experts": 8, "d_mlp": cfg.d_mlp}
    assert isinstance(bl.build_model(e3.job_config(cfg, "moe-8", 10), bl.world_of(cfg), [0],
                                     e3.factory(e3.job_config(cfg, "moe-8", 10))), MoETransformer)  # fmt: skip
