"""plateau-scaling: the fit on known lengths, a smoke run through the job machinery, and Ray = local."""

import pandas as pd
import pytest

import learnlab
from learnlab.studies import plateau_scaling as ps


def test_the_fit_recovers_a_known_power_law_with_a_bootstrap_ci():
    rows = [
        {"arm": f"N-{n}", "seed": s, "step": 1, "split": "test", "metric": "plateau_length",
         "value": 0.43 * n**0.81 * (1 + 0.05 * (s - 1))}  # fmt: skip
        for n in (100, 200, 400, 800, 1600)
        for s in range(3)
    ]
    cfg = ps.Config(**ps.PRESETS["smoke"])
    fit = ps.fit(pd.DataFrame(rows), cfg)["fit"]
    assert fit["exponent"]["mean"] == pytest.approx(0.81) and fit["prefactor"]["mean"] == pytest.approx(0.43)
    lo, hi = fit["exponent"]["ci95"]
    assert lo <= 0.81 <= hi and fit["exponent"]["derived"] and fit["r2"]["mean"] == pytest.approx(1.0)
    assert ps._power_law({"fit": fit})[0]


def test_what_the_fit_leaves_out_is_named_beside_it():
    from learnlab.reporting.stats import describe

    table = {
        "N-50": {"plateau_length": describe([0, 0])},
        "N-100": {"plateau_length": describe([40, 50, 45])},
        "N-200": {"plateau_length": describe([90, None, 80])},
        "fit": {"exponent": {"bootstrap_resamples": ps.BOOTSTRAP_RESAMPLES - 7}},
    }
    assert ps._fit_caveats(table) == [
        "N-200: 1 of 3 seeds never left the plateau (left out of the fit, biasing it down)",
        "N-50: no plateau in any seed (length 0 has no logarithm: left out of the fit)",
        f"7 of {ps.BOOTSTRAP_RESAMPLES} bootstrap resamples drew only zero-length plateaus at some N and were "
        "skipped (the CI comes from the rest)",
    ]


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
