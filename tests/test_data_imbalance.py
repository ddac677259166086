"""data-imbalance: the smoke grid's names, the argmin cells and claims on a hand-made frame, Ray = local."""

import math

import pandas as pd
import pytest

import learnlab
from learnlab.reporting.stats import table_from_metrics
from learnlab.studies import data_imbalance as di

ALPHAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_smoke_runs_the_grid_and_names_every_arm(tmp_path):
    summary = learnlab.run("data-imbalance", preset="smoke", out=tmp_path / "r", progress=False)
    t = summary["table"]
    arms = {"alpha-0", "alpha-0.6", "alpha-0-N-15", "alpha-0.6-N-15", "celebrities-2-4", "best", "best-N-15"}
    assert arms == set(t)
    assert all({"plateau_length", "final_loss", "final_acc"} <= set(t[a]) for a in arms if a.startswith(("alpha", "c")))
    assert all(len(t["alpha-0"][m]["values"]) == 2 for m in di.TEST_METRICS)
    assert {"alpha_min_plateau", "alpha_min_final_loss"} <= set(t["best"]) and t["best-N-15"]["n_individuals"][
        "mean"
    ] == 15
    assert t["best"]["alpha_min_final_loss"]["mean"] in (0.0, 0.6)
    assert len(summary["claims"]) == len(di.CLAIMS)
    assert {"alpha.png", "curves.png"} <= {p.name for p in (tmp_path / "r").iterdir()}


def frame(plateau, final_loss, n_values=(100, 200)) -> pd.DataFrame:
    """Test rows of a full grid: plateau(alpha, n, seed) and final_loss(alpha, n, seed)."""
    cfg = di.Config(n_values=list(n_values), alphas=ALPHAS)
    rows = [
        {"arm": di.alpha_arm(cfg, a, n), "seed": s, "step": 1, "split": "test", "metric": metric, "value": f(a, n, s)}
        for n in n_values
        for a in ALPHAS
        for s in range(3)
        for metric, f in (
            ("plateau_length", plateau),
            ("plateau_end_step", lambda a, n, s: 100 + plateau(a, n, s)),  # phase 1 ends at step 100
            ("final_loss", final_loss),
        )
    ]
    return pd.DataFrame(rows), cfg


def test_the_argmin_cells_pick_the_alpha_of_the_smallest_mean_with_per_seed_values():
    def plateau(a, n, s):  # shortest at 0.6 for N=100 (seed 2 prefers 0.8), at 0.8 for N=200; 1.0 never ends
        if n == 100:
            return {0.0: 220, 0.2: 180, 0.4: 150, 0.6: 190 if s == 2 else 100, 0.8: 135, 1.0: math.nan}[a]
        return math.nan if a == 1.0 else 100 + 200 * abs(a - 0.8)

    def final_loss(a, n, s):  # lowest at 0.2 for N=100, at 0.4 for N=200
        return 2.0 + abs(a - (0.2 if n == 100 else 0.4)) + 0.01 * s

    metrics, cfg = frame(plateau, final_loss)
    best = di.best_alphas(metrics, cfg)
    assert set(best) == {"best", "best-N-200"}
    cell = best["best"]["alpha_min_plateau"]
    assert cell["mean"] == 0.6 and cell["values"] == [0.6, 0.6, 0.8] and cell["derived"]
    assert cell["ci95"][0] == 0.6 and cell["ci95"][1] == 0.8
    assert best["best-N-200"]["alpha_min_plateau"]["mean"] == 0.8
    assert best["best"]["alpha_min_final_loss"]["mean"] == 0.2
    assert best["best-N-200"]["alpha_min_final_loss"]["mean"] == 0.4
    assert best["best-N-200"]["n_individuals"]["mean"] == 200

    t = table_from_metrics(metrics)
    for arm, cells in best.items():
        t.setdefault(arm, {}).update(cells)
    verdicts = [c.judge(t) for c in di.CLAIMS]
    assert [v.held for v in verdicts] == [True] * 5
    assert best["best"]["alpha_min_plateau_end"]["mean"] == 0.6
    assert "N=100" in verdicts[0].evidence and "1: never" in verdicts[0].evidence


def test_a_plateau_optimum_outside_the_published_range_is_not_reproduced():
    metrics, cfg = frame(lambda a, n, s: 100 + 100 * a + s, lambda a, n, s: 2.0 + a)
    t = table_from_metrics(metrics)
    for arm, cells in di.best_alphas(metrics, cfg).items():
        t.setdefault(arm, {}).update(cells)
    plateau, plateau_end, shortens, hurts, grows = (c.judge(t) for c in di.CLAIMS)
    assert t["best"]["alpha_min_plateau"]["mean"] == 0.0 and t["best"]["alpha_min_plateau_end"]["mean"] == 0.0
    assert [v.held for v in (plateau, plateau_end, shortens, hurts, grows)] == [False, False, False, True, False]


def test_config_refuses_arms_and_the_single_alpha_knob():
    with pytest.raises(learnlab.LearnlabError, match="alphas"):
        learnlab.run("data-imbalance", preset="smoke", arms=["alpha-0"])
    with pytest.raises(learnlab.LearnlabError, match="alpha"):
        learnlab.run("data-imbalance", preset="smoke", overrides={"alpha": 0.5})


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    grid = {"n_values": [10], "alphas": [0.0, 1.0], "celebrities": 0, "seeds": 1}
    local, remote = local_and_ray("data-imbalance", grid)
    assert local["table"] == remote["table"] and "final_loss" in local["table"]["alpha-1"]


def test_a_tie_across_the_published_range_is_undetermined_and_one_outside_it_not_reproduced():
    def plateau(a, n, s):  # N=100: 0.8 and 1.0 tie for the shortest; N=200: 0.6 and 0.8 tie
        lengths = [80, 60, 40, 20, 0, 0] if n == 100 else [80, 60, 40, 0, 0, 20]
        return lengths[ALPHAS.index(a)]

    metrics, cfg = frame(plateau, lambda a, n, s: 2.0 + a)
    best = di.best_alphas(metrics, cfg)
    assert best["best"]["alpha_min_plateau"]["ties"] == [0.8, 1.0]
    assert best["best-N-200"]["alpha_min_plateau"]["ties"] == [0.6, 0.8]
    t = table_from_metrics(metrics)
    for arm, cells in best.items():
        t.setdefault(arm, {}).update(cells)
    verdict = di.CLAIMS[0].judge(t)
    assert verdict.held is None and "tied with α=1" in verdict.evidence
    assert verdict.as_dict()["verdict"] == "undetermined"

    t["best"]["alpha_min_plateau"]["ties"] = [1.0]
    assert di.CLAIMS[0].judge(t).held is False


def test_a_shortening_seen_in_one_seed_only_is_undetermined():
    def plateau(a, n, s):  # uniform's plateau outlasts the budget in two of three seeds at N=200
        if a == 0.0 and n == 200 and s > 0:
            return math.nan
        return 100 * (1 - a) + s

    metrics, cfg = frame(plateau, lambda a, n, s: 2.0 + a)
    t = table_from_metrics(metrics)
    for arm, cells in di.best_alphas(metrics, cfg).items():
        t.setdefault(arm, {}).update(cells)
    verdict = di.CLAIMS[2].judge(t)
    assert verdict.held is None and "one seed only" in verdict.evidence
    assert "N=100: α=1 minus uniform -100 steps" in verdict.evidence


def test_every_part_must_hold_and_an_undecided_part_leaves_the_claim_undecided():
    from learnlab.studies.base import every

    assert every([True, True]) is True and every([True, None]) is None and every([None, False]) is False
