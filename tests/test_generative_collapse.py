"""generative-collapse (D4): the batched EM against scikit-learn, the median interval's coverage, chains that
do not depend on what shares their batch, bad input through the CLI, every claim on a table where it holds,
one where it fails and one that cannot decide, and the smoke preset end to end."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext

import numpy as np
import pytest
from helpers import cli
from sklearn.mixture import GaussianMixture

import learnlab
from learnlab.config import build_config
from learnlab.engine.context import RunContext
from learnlab.models.gmm1d import fit_em, gaussian_mle, quantile_init
from learnlab.reporting.quantiles import median_cell, median_interval
from learnlab.reporting.stats import describe
from learnlab.studies import generative_collapse as gc

CTX = RunContext(progress=lambda desc, total: nullcontext(lambda done: None))


def smoke(**over):
    return build_config(gc.Config, gc.STUDY.name, gc.PRESETS, "smoke", over)


# --- the models ----------------------------------------------------------------------------------------


def test_batched_em_matches_scikit_learn_on_the_same_data_and_start():
    rng = np.random.default_rng(0)
    x = np.where(rng.random((12, 1000)) < 0.3, -2.0, 1.5) + rng.standard_normal((12, 1000)) * [[0.7]]
    start = quantile_init(x, 2)
    ours = fit_em(x, start, tol=1e-6, max_iter=300)
    for b in range(len(x)):
        ref = GaussianMixture(
            2, tol=1e-6, max_iter=300, weights_init=start.weights[b], means_init=start.means[b][:, None],
            precisions_init=(1 / start.variances[b])[:, None, None],
        ).fit(x[b][:, None])  # fmt: skip
        np.testing.assert_allclose(ours.weights[b], ref.weights_, atol=1e-8)
        np.testing.assert_allclose(ours.means[b], ref.means_[:, 0], atol=1e-8)
        np.testing.assert_allclose(ours.variances[b], ref.covariances_[:, 0, 0], atol=1e-8)
        ll = ours.select(np.array([b])).log_likelihood(x[b : b + 1])[0]
        assert ll == pytest.approx(ref.score(x[b][:, None]), abs=1e-8)


def test_the_mixture_moments_tails_and_samples_are_right():
    x = np.random.default_rng(1).standard_normal((3, 500)) * 2 + 1
    fit = gaussian_mle(x)
    np.testing.assert_allclose(fit.variance(), x.var(1))  # the MLE: the biased variance
    truth = gc.TRUTH["gmm"]
    assert truth.variance()[0] == pytest.approx(5.0)
    assert gc.TRUTH["gaussian"].tail_mass(0.0, 2.0)[0] == pytest.approx(gc.GAUSSIAN_TAIL)
    assert abs(gc.GAUSSIAN_TAIL - 0.0455) < 1e-4
    rng = np.random.default_rng(2)
    draws = truth.sample(rng.random((1, 200_000)), rng.standard_normal((1, 200_000)))
    sd = math.sqrt(5.0)
    assert draws.var() == pytest.approx(5.0, rel=0.02)
    assert (np.abs(draws) > 2 * sd).mean() == pytest.approx(truth.tail_mass(0.0, 2 * sd)[0], abs=0.001)


def test_the_median_interval_is_the_order_statistic_one_with_its_exact_coverage():
    assert median_interval(np.arange(5.0)) is None  # 2 · 0.5^5 = 6.25% > 5%: no 95% interval
    lo, hi, coverage = median_interval(np.arange(6.0))
    assert (lo, hi) == (0.0, 5.0) and coverage == pytest.approx(1 - 2 / 64)
    lo, hi, coverage = median_interval(np.arange(100.0))  # Bin(100, ½): x_(40) .. x_(61)
    assert (lo, hi) == (39.0, 60.0) and coverage == pytest.approx(0.9648, abs=1e-4)
    # coverage holds for a skewed distribution (simulated): the true median of Exp(1) is ln 2
    rng = np.random.default_rng(3)
    hits = [lo <= math.log(2) <= hi for lo, hi, _ in (median_interval(rng.exponential(size=15)) for _ in range(2000))]
    assert np.mean(hits) >= 0.95 - 0.015
    cell = median_cell([3.0, 1.0, 2.0, 5.0, 4.0, 6.0, 7.0])
    assert cell["mean"] == 4.0 and cell["derived"] and cell["coverage"] >= 0.95


def test_a_chain_does_not_depend_on_what_shares_its_batch():
    cfg = smoke()
    arms = list(gc.ARMS)
    for model in ("gaussian", "gmm"):
        alone = gc.chain_1d(model, cfg, [3], arms, CTX)
        batch = gc.chain_1d(model, cfg, [1, 3, 5], arms, CTX)
        batch = batch[batch.seed == 3].reset_index(drop=True)
        np.testing.assert_allclose(alone.value.to_numpy(), batch.value.to_numpy(), rtol=1e-9, atol=1e-12)


def test_the_vae_ensemble_equals_separate_trainings():
    cfg = smoke(vae_generations=1, vae_steps=10)
    together = gc.chain_vae(cfg, [0, 1], ["replace", "keep-30"], CTX)
    alone = gc.chain_vae(cfg, [1], ["keep-30"], CTX)
    together = together[(together.seed == 1) & (together.arm == "keep-30")]
    measured = [frame[frame.split != gc.GRID].reset_index(drop=True) for frame in (alone, together)]  # grid: chain 0
    np.testing.assert_allclose(measured[0].value.to_numpy(), measured[1].value.to_numpy(), atol=1e-4)
    assert set(alone[alone.split == gc.GRID].seed) == {1} and set(together[together.split == gc.GRID].seed) == set()


def test_arms_differ_as_designed_from_the_same_start():
    cfg = smoke(generations=30)
    rows = gc.chain_1d("gaussian", cfg, cfg.seed_list, list(gc.ARMS), CTX)
    var = rows[(rows.split == gc.SPLIT) & (rows.metric == "gaussian_var")].pivot_table(
        index="seed", columns=["arm", "step"], values="value"
    )
    g0 = var.xs(0, level="step", axis=1)
    assert (g0.nunique(axis=1) == 1).all()  # every arm fits generation 0 to the same original data
    assert gc.kept_share("keep-30") == 0.3 and gc.kept_share("replace") is None
    assert gc.table_generations(12) == [0, 1, 10, 12] and gc.table_generations(100) == [0, 1, 10, 100]


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--arms", "keep-150"], "keep-150"),
        (["--arms", "keep-x"], "keep-x"),
        (["--set", "generations=0"], "generations"),
        (["--set", "models=[gaussian,flow]"], "flow"),
        (["--set", "vae_chains=9"], "vae_chains"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(in_tmp, argv, named):
    code, _, err = cli(["run", "generative-collapse", "--preset", "smoke", "--quiet", "--out", "r", *argv])
    assert code == 2 and named in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


# --- claims on hand-built tables -------------------------------------------------------------------------

COLLAPSES, BOUNDED, SLOWS = gc.CLAIMS
CHAINS = 9


def _cells(arm_var: dict[str, float], tail: float, gens=(0, 1, 10, 100)) -> dict:
    """A table of one 1-D model: per arm the variance at each generation (g0 = 1, the last = the given value,
    in between linearly), per-chain values spread by ±5%."""
    wiggle = np.linspace(0.95, 1.05, CHAINS)
    table = {}
    for arm, last in arm_var.items():
        cells = {}
        for g in gens:
            v = 1 + (last - 1) * g / gens[-1]
            t = gc.GAUSSIAN_TAIL + (tail - gc.GAUSSIAN_TAIL) * g / gens[-1] if arm == "replace" else gc.GAUSSIAN_TAIL
            cells[f"gaussian_var_g{g}"] = describe(list(v * wiggle))
            cells[f"gaussian_var_median_g{g}"] = median_cell(v * wiggle)
            cells[f"gaussian_tail_median_g{g}"] = median_cell(t * wiggle)
        table[arm] = cells
    return table


HOLDS = {"replace": 0.12, "keep-10": 0.85, "keep-30": 0.95, "accumulate": 0.98}


def test_every_claim_holds_on_a_collapsing_table():
    table = _cells(HOLDS, tail=1e-6)
    for claim in gc.CLAIMS:
        verdict = claim.judge(table)
        assert verdict.held is True, verdict.evidence


@pytest.mark.parametrize(
    ("claim", "arms", "tail"),
    [
        (COLLAPSES, {**HOLDS, "replace": 0.3}, 1e-6),  # variance stays above 0.2
        (COLLAPSES, HOLDS, 0.02),  # the variance falls but the tails stay
        (BOUNDED, {**HOLDS, "accumulate": 0.8}, 1e-6),  # accumulate drifts below 0.9
        (SLOWS, {**HOLDS, "keep-10": 0.12}, 1e-6),  # keeping 10% does not help
        (SLOWS, {**HOLDS, "keep-30": 0.10}, 1e-6),  # keeping 30% is worse than replace
    ],
)
def test_each_claim_fails_where_it_is_false(claim, arms, tail):
    verdict = claim.judge(_cells(arms, tail))
    assert verdict.held is False, verdict.evidence


def test_claims_cannot_decide_without_generation_100_or_enough_chains():
    short = _cells(HOLDS, 1e-6, gens=(0, 1, 10, 50))
    assert COLLAPSES.judge(short).held is None and BOUNDED.judge(short).held is None
    few = {arm: {m: describe(c["values"][:4]) for m, c in cells.items()} for arm, cells in _cells(HOLDS, 1e-6).items()}
    assert all(claim.judge(few).held is None for claim in gc.CLAIMS)


# --- the smoke preset end to end ------------------------------------------------------------------------


def test_smoke_run_end_to_end(in_tmp):
    code, _, err = cli(["run", "generative-collapse", "--preset", "smoke", "--quiet", "--out", "r"])
    assert code == 0, err

    summary = json.loads((in_tmp / "r" / "summary.json").read_text())
    table = summary["table"]
    assert list(table) == list(gc.ARMS)
    cells = table["replace"]
    for name in ("gaussian_var_g12", "gmm_tail_g12", "gaussian_var_median_g10", "vae_accuracy_g2", "vae_diversity_g0"):
        assert name in cells, name
    assert len(cells["gaussian_var_g12"]["values"]) == 8 and len(cells["gmm_var_g12"]["values"]) == 6
    assert cells["gaussian_var_median_g10"]["coverage"] >= 0.95
    assert 0 <= cells["vae_accuracy_g2"]["mean"] <= 1
    assert len(summary["claims"]) == len(gc.CLAIMS)
    for figure in [f"{model}_generations" for model in gc.MODELS] + ["vae_samples"]:
        assert (in_tmp / "r" / f"{figure}.png").is_file(), figure
    kept = learnlab.load_run(in_tmp / "r").models["vae"]  # the last generation's VAE ensemble
    assert kept.model.k == 6 * len(gc.ARMS) and kept.members[0] == ("replace", 0)
