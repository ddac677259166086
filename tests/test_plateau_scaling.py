"""plateau-scaling: both fits on known lengths, the claims on hand-built tables, a smoke run, and Ray = local."""

import math

import numpy as np
import pandas as pd
import pytest

import learnlab
from learnlab.reporting.stats import describe
from learnlab.studies import plateau_scaling as ps

NS = (100, 200, 400, 800, 1600)
SEED_NOISE = (0.9, 0.95, 1.0, 1.05, 1.1)


def law(b: float, a: float = 0.43) -> dict[int, list[float]]:
    """Per-seed lengths a·N^b, with a ±2% wiggle of each N's mean (residuals about the line) and seed noise."""
    return {n: [a * n**b * (1 + 0.02 * (-1) ** i) * e for e in SEED_NOISE] for i, n in enumerate(NS)}


def rows(from_phase1: dict[int, list[float]], from_step0: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"arm": f"N-{n}", "seed": s, "step": 1, "split": "test", "metric": metric, "value": v}
        for metric, lengths in (("plateau_length", from_phase1), ("plateau_end_step", from_step0))
        for n, values in lengths.items()
        for s, v in enumerate(values)
    )


def table(from_phase1: dict[int, list[float]], from_step0: dict[int, list[float]] | None = None):
    """A run's table: per-N cells and both derived fits (from step 0: phase 1's end at step 50 by default)."""
    from_step0 = from_step0 or {n: [50 + x for x in v] for n, v in from_phase1.items()}
    metrics = rows(from_phase1, from_step0)
    t = {
        f"N-{n}": {"plateau_length": describe(from_phase1[n]), "plateau_end_step": describe(from_step0[n])}
        for n in from_phase1
    }
    return {**t, **ps.fit(metrics, ps.Config(**ps.PRESETS["smoke"]))}


def test_both_fits_recover_a_known_power_law_with_a_t_interval():
    t = table(law(0.81), law(0.81, a=1.0))
    for name in ps.FITS:
        e = t[name]["exponent"]
        assert e["mean"] == pytest.approx(0.81, abs=0.02) and e["derived"] and e["n_fitted"] == 5
        assert e["ci95"][0] < 0.81 < e["ci95"][1] and e["std"] > 0 and t[name]["r2"]["mean"] > 0.99
    assert t["fit"]["prefactor"]["mean"] == pytest.approx(0.43, rel=0.1)
    assert t["fit-from-step-0"]["prefactor"]["mean"] == pytest.approx(1.0, rel=0.1)


def test_a_kinked_curve_gets_a_wider_exponent_ci_than_a_clean_one():
    clean = table(law(1.0))["fit"]["exponent"]
    kinked = {n: [x if n <= 400 else x * (400 / n) ** 0.9 for x in v] for n, v in law(1.0).items()}
    bent = table(kinked)["fit"]["exponent"]
    assert np.ptp(bent["ci95"]) > 5 * np.ptp(clean["ci95"])


def test_an_n_with_an_unended_seed_is_left_out_whole_and_named():
    lengths = law(0.81)
    lengths[1600] = [*lengths[1600][:4], math.nan]  # one seed never left the plateau
    t = table(lengths)
    assert t["fit"]["exponent"]["n_fitted"] == 4 and t["fit"]["exponent"]["left_out"] == ["N-1600"]
    assert ps._fit_caveats(t) == [
        "N-1600: 1 of 5 seeds without a plateau end (never left the plateau, or none detected): N left out of the "
        "fits (its shorter plateaus alone would bias the fit down)"
    ]
    zero = {"N-50": {"plateau_length": describe([0, 0])}}
    assert ps._fit_caveats(zero) == ["N-50: no plateau in any seed (length 0 has no logarithm: left out of the fit)"]


def only_two_n(lengths: dict[int, list[float]]) -> dict[int, list[float]]:
    """Every N but two has a seed that never left the plateau."""
    return {n: v if n <= 200 else [*v[:4], math.nan] for n, v in lengths.items()}


GROWS, PHASE1, STEP0 = ps.CLAIMS
CASES = [  # claim, phase-1 lengths, step-0 lengths (None: phase 1 ends at step 50), verdict
    (GROWS, law(0.81), None, "reproduced"),
    (GROWS, law(0.0, a=300.0), None, "not reproduced"),  # flat: the CI of the exponent straddles 0
    (GROWS, only_two_n(law(0.81)), None, "undetermined"),  # a line through two N is not a trend
    (GROWS, {n: v[:2] for n, v in law(0.81).items()}, None, "undetermined"),  # two seeds per N
    (PHASE1, law(0.81), None, "reproduced"),
    (PHASE1, law(1.2), None, "not reproduced"),
    (PHASE1, {n: [x * (1 + 0.4 * (-1) ** (n // 100)) for x in v] for n, v in law(0.81).items()}, None,
     "undetermined"),  # 0.81 inside a CI far wider than ±0.15
    (PHASE1, only_two_n(law(0.81)), None, "undetermined"),
    (STEP0, law(1.2), law(0.81), "reproduced"),
    (STEP0, law(0.81), law(1.2), "not reproduced"),
]  # fmt: skip


@pytest.mark.parametrize(("claim", "phase1", "step0", "verdict"), CASES)
def test_claim_verdicts_on_hand_built_tables(claim, phase1, step0, verdict):
    assert claim.judge(table(phase1, step0)).as_dict()["verdict"] == verdict


def test_claim_on_an_old_run_without_the_step_0_fit_is_undetermined():
    t = table(law(0.81))
    del t["fit-from-step-0"]
    assert STEP0.judge(t).as_dict()["verdict"] == "undetermined"
    assert GROWS.judge(t).as_dict()["verdict"] == "reproduced"


def test_smoke_runs_every_n_as_a_job_and_writes_one_summary(tmp_path):
    summary = learnlab.run("plateau-scaling", preset="smoke", out=tmp_path / "r", progress=False)
    assert {"N-10", "N-20", "fit"} <= set(summary["table"])
    assert {"exponent", "prefactor", "r2"} <= set(summary["table"]["fit"])
    assert summary["plain_metrics"] and not (tmp_path / "r" / "jobs").exists()
    assert "0.81" in (tmp_path / "r" / "report.md").read_text()


def test_arms_are_refused_with_the_reason():
    with pytest.raises(learnlab.LearnlabError, match="n_values"):
        learnlab.run("plateau-scaling", preset="smoke", arms=["N-10"])


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    local, remote = local_and_ray("plateau-scaling", {"n_values": [10, 15], "seeds": 1})
    assert local["table"] == remote["table"] and "plateau_length" in local["table"]["N-10"]
