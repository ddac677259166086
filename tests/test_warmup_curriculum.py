"""warmup-curriculum: the smoke grid's names, paired gains and claims on a hand-made frame, Ray = local."""

import numpy as np
import pandas as pd
import pytest
import torch

import learnlab
from learnlab.metrics import AttributeScores
from learnlab.reporting.stats import table_from_metrics
from learnlab.studies import knowledge_acquisition as ka
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
    cfg = ka.BiographyConfig(**{**ka.PRESETS["smoke"], "warmup_individuals": 5, "warmup_epochs": 8.0})
    model = ka.build_model(cfg, ka.world_of(cfg), cfg.seed_list)
    batch, _ = ka.score_every_seen(model, cfg)
    assert batch.individuals.tolist() == list(range(cfg.n_individuals))  # all N, not a sample

    # member 0 knows the subset fully and half of the rest; member 1 knows nothing
    known = torch.where(batch.individuals < 5, 1.0, 0.5)[None, :, None].expand(2, -1, 6).clone()
    known[1] = 0
    fake = AttributeScores(torch.zeros_like(known), known, known, known)
    monkeypatch.setattr(ka, "score_every_seen", lambda model, cfg: (batch, fake))
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


def test_gains_are_paired_by_seed_and_decide_the_claims():
    uniform = [0.30, 0.50, 0.40]  # seed noise far larger than the gain: only pairing reveals it
    acc = {"uniform": uniform, "warmup-50-64": [u + 0.05 for u in uniform], "warmup-50-128": [u - 0.1 for u in uniform]}
    rest = {"warmup-50-64": [u + 0.02 for u in uniform], "warmup-50-128": [u - 0.12 for u in uniform]}
    t, (helps, beyond) = judged(acc, rest)
    assert t["warmup-50-64"]["gain_over_uniform"]["mean"] == pytest.approx(0.05)
    assert t["warmup-50-64"]["gain_over_uniform"]["ci95"] == pytest.approx([0.05, 0.05])
    assert t["warmup-50-128"]["gain_over_uniform"]["derived"] and "uniform" not in wc.gains(frame(acc, rest), None)
    assert helps.held and "warmup-50-64" in helps.evidence.split("best ")[-1] and "+5.0 points" in helps.evidence
    assert beyond.held and "+3.0 points" in beyond.evidence and "same individuals" in beyond.evidence

    t, (helps, beyond) = judged({**acc, "warmup-50-64": [u - 0.01 for u in uniform]}, rest)
    assert not helps.held


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
