"""data-imbalance: the smoke grid's names, the argmin cells and every claim on hand-built grids, Ray = local."""

import math

import numpy as np
import pandas as pd
import pytest

import learnlab
from learnlab.reporting.stats import table_from_metrics
from learnlab.studies import data_imbalance as di

ALPHAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5]
SEEDS = 5


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


def frame(plateau, final_loss, n_values=(100, 200), alphas=ALPHAS, seeds=SEEDS):
    """Test rows of a full grid: plateau(alpha, n, seed) and final_loss(alpha, n, seed); phase 1 ends at 100."""
    cfg = di.Config(n_values=list(n_values), alphas=list(alphas))
    rows = [
        {"arm": di.alpha_arm(cfg, a, n), "seed": s, "step": 1, "split": "test", "metric": metric, "value": f(a, n, s)}
        for n in n_values
        for a in alphas
        for s in range(seeds)
        for metric, f in (
            ("plateau_length", plateau),
            ("phase1_end_step", lambda a, n, s: 100.0),
            ("plateau_end_step", lambda a, n, s: 100 + plateau(a, n, s)),
            ("final_loss", final_loss),
        )
    ]
    return pd.DataFrame(rows), cfg


def judged_table(plateau, final_loss, **grid):
    metrics, cfg = frame(plateau, final_loss, **grid)
    t = table_from_metrics(metrics)
    for arm, cells in di.best_alphas(metrics, cfg).items():
        t.setdefault(arm, {}).update(cells)
    return t


def wobble(a, n, s, size=0.01):
    """Deterministic seed noise that differs between α (so paired differences have a spread)."""
    return size * math.sin(7 * a + 3 * s + n)


def bowl(centre, steep=2.0, noise=0.01):
    """Final loss with its minimum at α = centre (or per N: centre(n))."""
    return lambda a, n, s: 2.0 + steep * (a - (centre(n) if callable(centre) else centre)) ** 2 + wobble(a, n, s, noise)


def shrinking(a, n, s):
    return 300 - 150 * a + 40 * wobble(a, n, s, 1.0)


def test_the_argmin_cells_give_the_smallest_mean_per_seed_argmins_and_a_confidence_set():
    def plateau(a, n, s):  # shortest at 0.6 (seed 2: 0.4 ties 0.8, the smaller wins); α = 1.5: none in seed 0
        if a == 1.5 and s == 0:
            return math.nan
        return 100 + 200 * abs(a - 0.6) + (60 if s == 2 and a == 0.6 else 0) + s

    metrics, cfg = frame(plateau, bowl(lambda n: 0.2 if n == 100 else 0.4))
    best = di.best_alphas(metrics, cfg)
    assert set(best) == {"best", "best-N-200"}
    cell = best["best"]["alpha_min_plateau"]
    assert cell["mean"] == 0.6 and cell["values"] == [0.6, 0.6, 0.4, 0.6, 0.6] and cell["derived"]
    assert 1.5 not in cell["confidence_set"] and 0.6 in cell["confidence_set"]  # no candidate without a length
    final = best["best"]["alpha_min_final_loss"]
    assert final["mean"] == 0.2 and final["confidence_set"] == [0.2] and final["ci95"] == [0.2, 0.2]
    assert best["best-N-200"]["alpha_min_final_loss"]["mean"] == 0.4
    assert best["best-N-200"]["n_individuals"]["mean"] == 200


def test_the_confidence_set_keeps_every_alpha_that_seeds_cannot_separate():
    noisy = [[1.0, 1.2, 0.8], [1.1, 0.9, 1.0], [3.0, 3.1, 2.9]]  # α 0 and 0.5 indistinguishable, 1 far worse
    assert di.confidence_set([0.0, 0.5, 1.0], np.array(noisy)) == [0.0, 0.5]
    tight = [[1.0, 1.01, 0.99], [1.2, 1.21, 1.19], [3.0, 3.1, 2.9]]
    assert di.confidence_set([0.0, 0.5, 1.0], np.array(tight)) == [0.0]


OPTIMUM, SHRINKS, HURTS, GROWS = di.CLAIMS
CASES = {  # id: (claim, plateau, final_loss, grid, verdict)
    "optimum-inside": (OPTIMUM, shrinking, bowl(0.7, steep=8), {}, "reproduced"),
    "optimum-at-0.2": (OPTIMUM, shrinking, bowl(0.2, steep=8), {}, "not reproduced"),
    "optimum-flat-and-noisy": (OPTIMUM, shrinking, bowl(0.7, steep=0.1, noise=0.3), {}, "undetermined"),
    "optimum-3-seeds": (OPTIMUM, shrinking, bowl(0.7, steep=8), {"seeds": 3}, "undetermined"),
    "shrinks": (SHRINKS, shrinking, bowl(0.7), {}, "reproduced"),
    "grows-instead": (SHRINKS, lambda a, n, s: 100 + 100 * a + 40 * wobble(a, n, s, 1.0), bowl(0.7), {},
                      "not reproduced"),
    "flat": (SHRINKS, lambda a, n, s: 200 + 40 * wobble(a, n, s, 1.0), bowl(0.7), {}, "not reproduced"),
    "no-plateau-ends": (SHRINKS, lambda a, n, s: math.nan if s else 300 - 100 * a, bowl(0.7), {}, "undetermined"),
    "hurts": (HURTS, shrinking, bowl(0.7), {}, "reproduced"),
    "largest-alpha-best": (HURTS, shrinking, lambda a, n, s: 3.0 - a + wobble(a, n, s), {}, "not reproduced"),
    "no-alpha-above-0.8": (HURTS, shrinking, bowl(0.7), {"alphas": [0.0, 0.4, 0.8]}, "undetermined"),
    "optimum-grows": (GROWS, shrinking, bowl(lambda n: 0.4 if n == 100 else 1.0, steep=8), {}, "reproduced"),
    "optimum-stays": (GROWS, shrinking, bowl(0.6, steep=8), {}, "not reproduced"),
    "optimum-noisy": (GROWS, shrinking, bowl(lambda n: 0.4 if n == 100 else 1.0, 0.1, 0.3), {}, "undetermined"),
    "one-n": (GROWS, shrinking, bowl(0.6, steep=8), {"n_values": (100,)}, "undetermined"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_claim_verdicts_on_hand_built_grids(case):
    claim, plateau, final_loss, grid, verdict = CASES[case]
    result = claim.judge(judged_table(plateau, final_loss, **grid)).as_dict()
    assert result["verdict"] == verdict, result["evidence"]


def test_claim_evidence_names_the_confidence_set_and_the_paired_difference():
    t = judged_table(shrinking, bowl(0.7, steep=8))
    assert "95% confidence set {0.6, 0.8}" in OPTIMUM.judge(t).evidence
    assert "α=1.5 minus α=0.8" in HURTS.judge(t).evidence and "Spearman ρ -0.8" in SHRINKS.judge(t).evidence


def test_notes_and_figures_render_an_old_run_without_the_new_cells():
    t = judged_table(shrinking, bowl(0.7))
    for cells in t.values():
        for cell in cells.values():
            cell.pop("confidence_set", None)
    summary = {"table": t, "config": {"steps": 500, "batch_size": 32, "eval_every": 20}, "seeds": [0, 1, 2]}
    assert any("shortest at α=" in line for line in di.notes(summary))
    assert OPTIMUM.judge(t).as_dict()["verdict"] == "undetermined"
    figs = di.figures(summary, pd.DataFrame(columns=["arm", "seed", "step", "split", "metric", "value"]))
    assert set(figs) == {"alpha"} and "seeds" in figs["alpha"].learnlab_caption


def test_config_refuses_arms_and_the_single_alpha_knob():
    with pytest.raises(learnlab.LearnlabError, match="alphas"):
        learnlab.run("data-imbalance", preset="smoke", arms=["alpha-0"])
    with pytest.raises(learnlab.LearnlabError, match="alpha"):
        learnlab.run("data-imbalance", preset="smoke", overrides={"alpha": 0.5})


def test_the_grid_reaches_1_5_so_the_optimum_is_not_at_its_edge():
    assert di.Config().alphas == ALPHAS
    laptop = di.PRESETS["laptop"]["alphas"]
    assert {0.0, 0.6, 0.8, 1.25, 1.5} <= set(laptop) and di.PRESETS["laptop"]["seeds"] >= 5


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    grid = {"n_values": [10], "alphas": [0.0, 1.0], "celebrities": 0, "seeds": 1}
    local, remote = local_and_ray("data-imbalance", grid)
    assert local["table"] == remote["table"] and "final_loss" in local["table"]["alpha-1"]
