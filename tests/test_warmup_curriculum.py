"""warmup-curriculum: the smoke grid's names, paired gains and claims on a hand-made frame, Ray = local."""

import numpy as np
import pandas as pd
import pytest
import torch

import learnlab
from learnlab.metrics import AttributeScores
from learnlab.protocols import biography_lm as bl
from learnlab.reporting.stats import table_from_metrics
from learnlab.studies import warmup_curriculum as wc


def test_smoke_runs_uniform_and_every_warmup_and_scores_all_individuals(tmp_path):
    summary = learnlab.run("warmup-curriculum", preset="smoke", out=tmp_path / "r", progress=False)
    t = summary["table"]
    assert set(t) == {"uniform", "warmup-5-8", "warmup-5-16"}
    assert all(len(t[a]["final_acc_all"]["values"]) == 2 for a in t)
    assert {"final_acc_warmup_subset", "final_acc_rest", "gain_over_uniform"} <= set(t["warmup-5-16"])
    assert t["warmup-5-8"]["warmup_steps"]["mean"] == 5 and t["warmup-5-16"]["warmup_steps"]["mean"] == 10
    gain = np.subtract(t["warmup-5-8"]["final_acc_all"]["values"], t["uniform"]["final_acc_all"]["values"])
    assert t["warmup-5-8"]["gain_over_uniform"]["values"] == pytest.approx(gain.tolist())
    assert len(summary["claims"]) == len(wc.CLAIMS) and (tmp_path / "r" / "warmup.png").is_file()


def test_final_knowledge_is_scored_on_every_individual_and_split_at_the_warmup_subset(monkeypatch):
    cfg = bl.BiographyConfig(**{**bl.SMOKE, "warmup_individuals": 5, "warmup_epochs": 8.0})
    model = bl.build_model(cfg, bl.world_of(cfg), cfg.seed_list)
    batch, _ = bl.score_every_seen(model, cfg)
    assert batch.individuals.tolist() == list(range(cfg.n_individuals))  # all N, not a sample

    # member 0 knows the subset fully and half of the rest; member 1 knows nothing
    known = torch.where(batch.individuals < 5, 1.0, 0.5)[None, :, None].expand(2, -1, 6).clone()
    known[1] = 0
    fake = AttributeScores(torch.zeros_like(known), known, known, known)
    monkeypatch.setattr(bl, "score_every_seen", lambda model, cfg: (batch, fake))
    out = wc.final_over_everyone(model, cfg)
    assert out["final_acc_warmup_subset"].tolist() == [1.0, 0.0] and out["final_acc_rest"].tolist() == [0.5, 0.0]
    assert out["final_acc_all"] == pytest.approx([(5 + 15 * 0.5) / 20, 0.0]) and out["warmup_steps"].tolist() == [5, 5]
    assert not any(k.startswith(wc.BEYOND) for k in wc.final_over_everyone(model, cfg, subsets=(5,)))

    uniform = cfg.model_copy(update={"warmup_individuals": 0, "warmup_epochs": 0.0})
    out = wc.final_over_everyone(model, uniform, subsets=(5, 10))  # uniform: scored beyond every subset
    assert out["final_acc_beyond_5"].tolist() == [0.5, 0.0] and out["final_acc_beyond_10"].tolist() == [0.5, 0.0]
    assert "final_acc_rest" not in out


def frame(acc: dict[str, list[float]], rest: dict[str, list[float]]) -> pd.DataFrame:
    """Test rows: final_acc_all of every arm, final_acc_rest (and, alike, the subset's) of the warm-up arms."""
    rows = [
        {"arm": arm, "seed": s, "step": 1, "split": "test", "metric": metric, "value": v}
        for metric, values in (("final_acc_all", acc), ("final_acc_rest", rest), ("final_acc_warmup_subset", rest))
        for arm, per_seed in values.items()
        for s, v in enumerate(per_seed)
    ]
    rows += [{**r, "metric": "warmup_steps", "value": 100.0} for r in rows if r["metric"] == "final_acc_all"]
    # uniform's accuracy beyond the subset of 50: here its accuracy on all, minus a point
    rows += [
        {**r, "metric": "final_acc_beyond_50", "value": r["value"] - 0.01}
        for r in rows
        if r["metric"] == "final_acc_all" and r["arm"] == "uniform"
    ]
    return pd.DataFrame(rows)


def judged(acc, rest):
    metrics = frame(acc, rest)
    t = table_from_metrics(metrics)
    for arm, cells in wc.gains(metrics, wc.Config()).items():
        t[arm].update(cells)
    return t, [c.judge(t) for c in wc.CLAIMS]


UNIFORM = [0.30, 0.50, 0.40, 0.35, 0.45]  # seed noise far larger than the gains: only pairing reveals them


def shifted(*gains: float) -> list[float]:
    """Uniform's per-seed accuracy plus a per-seed gain (one gain: the same in every seed)."""
    gains = gains if len(gains) > 1 else gains * len(UNIFORM)
    return [u + g for u, g in zip(UNIFORM, gains, strict=True)]


def test_gains_are_paired_by_seed():
    acc = {"uniform": UNIFORM, "warmup-50-64": shifted(0.05), "warmup-50-128": shifted(-0.1)}
    rest = {"warmup-50-64": shifted(0.02), "warmup-50-128": shifted(-0.12)}
    t, _ = judged(acc, rest)
    assert t["warmup-50-64"]["gain_over_uniform"]["mean"] == pytest.approx(0.05)
    assert t["warmup-50-64"]["gain_over_uniform"]["ci95"] == pytest.approx([0.05, 0.05])
    assert t["warmup-50-128"]["gain_over_uniform"]["derived"] and "uniform" not in wc.gains(frame(acc, rest), None)


def test_the_bonferroni_interval_widens_with_the_number_of_arms():
    values = [0.0, 0.04, 0.02, 0.01, 0.03]
    one, four = wc.corrected(values, 1), wc.corrected(values, 4)
    assert one[0] == four[0] == pytest.approx(0.02) and one[1] > 0 and four[1] < 0 < four[2]
    assert wc.corrected([0.1, None], 2) is None


HELPS, BEYOND = wc.CLAIMS
NOISE = (0.0, 0.04, 0.02, 0.01, 0.03)  # a gain of +2 points that clears 0 at 95% but not at 1 - 0.05/4
CASES = {  # id: (claim, final_acc_all of the warm-up arms, final_acc_rest of the warm-up arms, verdict)
    "helps": (HELPS, {"warmup-50-64": shifted(0.05, 0.06, 0.04, 0.05, 0.055), "warmup-50-128": shifted(-0.1)},
              None, "reproduced"),
    "hurts": (HELPS, {"warmup-50-64": shifted(-0.02, 0.01, -0.01, 0.0, -0.03), "warmup-50-128": shifted(-0.1)},
              None, "not reproduced"),
    "best-of-four-only-uncorrected": (HELPS, {"warmup-50-64": shifted(*NOISE), "warmup-50-128": shifted(-0.1),
                                              "warmup-80-64": shifted(-0.05), "warmup-80-128": shifted(-0.2)},
                                      None, "not reproduced"),
    "beyond": (BEYOND, {"warmup-50-64": shifted(0.05)}, {"warmup-50-64": shifted(0.01, 0.03, 0.02, 0.02, 0.025)},
               "reproduced"),  # uniform beyond the subset: its accuracy minus 1 point
    "subset-only": (BEYOND, {"warmup-50-64": shifted(0.05)},
                    {"warmup-50-64": shifted(-0.05, -0.03, -0.04, -0.06, -0.02)}, "not reproduced"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_claim_verdicts_on_hand_built_tables(case):
    claim, warmups, rest, verdict = CASES[case]
    _, verdicts = judged({"uniform": UNIFORM, **warmups}, rest or {a: v for a, v in warmups.items()})
    result = verdicts[wc.CLAIMS.index(claim)].as_dict()
    assert result["verdict"] == verdict, result["evidence"]


@pytest.mark.parametrize("claim", wc.CLAIMS)
def test_claim_on_three_seeds_is_undetermined(claim):
    acc = {"uniform": UNIFORM[:3], "warmup-50-64": shifted(0.05)[:3]}
    _, verdicts = judged(acc, {"warmup-50-64": shifted(0.05)[:3]})
    assert verdicts[wc.CLAIMS.index(claim)].as_dict()["verdict"] == "undetermined"


def test_claim_evidence_names_every_arm_at_the_corrected_level():
    acc = {"uniform": UNIFORM, "warmup-50-64": shifted(0.05), "warmup-50-128": shifted(-0.1)}
    _, (helps, beyond) = judged(acc, {"warmup-50-64": shifted(0.02), "warmup-50-128": shifted(-0.12)})
    assert "each of 2 arms at the Bonferroni level" in helps.evidence and "97.50% CI" in helps.evidence
    assert "warmup-50-64 +5.0 points" in helps.evidence and "warmup-50-64 +3.0 points" in beyond.evidence


def test_config_refuses_warmups_longer_than_the_budget_and_arms():
    with pytest.raises(learnlab.LearnlabError, match="no step"):
        learnlab.run("warmup-curriculum", preset="smoke", overrides={"warmup_epochs_grid": [48.0]})
    with pytest.raises(learnlab.LearnlabError, match="grid"):
        learnlab.run("warmup-curriculum", preset="smoke", arms=["uniform"])


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    local, remote = local_and_ray("warmup-curriculum", {"warmup_epochs_grid": [8.0], "seeds": 1})
    assert local["table"] == remote["table"] and "final_acc_all" in local["table"]["warmup-5-8"]


def test_arm_names_read_back_into_their_grid_point():
    for individuals, epochs in ((40, 80.0), (8000, 1e-5), (5, 0.5)):
        assert wc.arms_grid(wc.warmup_arm(individuals, epochs)) == (individuals, epochs)
