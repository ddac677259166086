"""D6 calibration-robustness: the calibration error pinned to torchmetrics' reference vectors, temperature
scaling, the perturbations, the ensemble against separate trainings, the claims on hand-made tables, bad
input through the CLI, and a smoke run."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab import calibration as cal
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.reporting.stats import describe
from learnlab.studies import calibration_robustness as d6
from learnlab.tasks import digits as task

FALLS, RISES, RISES_LSTM, RISES_LM, RISES_TS = d6.CLAIMS
IDS = ["falls", "rises_digits", "rises_lstm", "rises_lm", "rises_ts"]

# --- the metric -------------------------------------------------------------------------------------------

PREDS, TARGETS = np.array([0.25, 0.25, 0.55, 0.75, 0.75]), np.array([0, 0, 1, 1, 1])


@pytest.mark.parametrize("norm, expected", [("l1", 0.2900), ("l2", 0.2918), ("max", 0.3167)])
def test_calibration_error_matches_torchmetrics_reference_vectors(norm, expected):
    # torchmetrics' binary_calibration_error docs: these preds and targets, n_bins=2
    assert cal.calibration_error(PREDS, TARGETS, n_bins=2, norm=norm) == pytest.approx(expected, abs=5e-5)


def test_calibration_error_is_zero_where_every_bin_is_calibrated_and_counts_every_prediction():
    conf = np.array([0.75] * 4 + [0.5] * 2 + [1.0])
    correct = np.array([1, 1, 1, 0, 1, 0, 1])
    assert cal.calibration_error(conf, correct, n_bins=15) == pytest.approx(0.0, abs=1e-12)
    _, acc, count = cal.reliability_bins(conf, correct, 15)
    assert count.sum() == 7 and count[-1] == 1 and acc[-1] == 1.0  # confidence 1 lands in the top bin
    assert cal.calibration_error([0.9] * 10, [0] * 10, n_bins=15) == pytest.approx(0.9)  # all wrong at 90%


@pytest.mark.parametrize("bad", [{"n_bins": 0}, {"n_bins": -3}, {"norm": "l3"}])
def test_calibration_error_refuses_bad_bins_and_norms(bad):
    with pytest.raises(ValueError, match="n_bins|norm"):
        cal.calibration_error(PREDS, TARGETS, **{"n_bins": 2, "norm": "l1", **bad})


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 20.0))
def test_temperature_keeps_every_prediction(seed, temperature):
    rng = np.random.default_rng(seed)
    logits, labels = rng.normal(0, 3, (50, 7)), rng.integers(0, 7, 50)
    _, before = cal.top_label(logits, labels)
    _, after = cal.top_label(logits, labels, temperature)
    assert np.array_equal(before, after)  # argmax invariant: accuracy exactly unchanged


def test_fitted_temperature_recovers_the_temperature_that_drew_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (20_000, 10))
    p = np.exp(cal.log_softmax(logits / 2.5))
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    fitted = cal.fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.5, rel=0.05)
    assert cal.nll(logits, labels, fitted) <= min(cal.nll(logits, labels, t) for t in (1.0, 2.0, 3.0))


def test_binary_logits_give_the_sigmoid_and_scale_with_temperature():
    z = np.array([-3.0, 0.0, 0.4, 5.0])
    p = np.exp(cal.log_softmax(cal.binary_logits(z)))[:, 1]
    assert p == pytest.approx(1 / (1 + np.exp(-z)))
    scaled = np.exp(cal.log_softmax(cal.binary_logits(z) / 2.0))[:, 1]
    assert scaled == pytest.approx(1 / (1 + np.exp(-z / 2.0)))


# --- the perturbations -----------------------------------------------------------------------------------


def test_pixel_noise_and_occlusion_at_rates_0_and_1():
    x = torch.rand(20, 64) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(d6.pixel_noise(x, 0.0, gen), x) and torch.equal(d6.occlude(x, 0.0, gen), x)
    assert (d6.pixel_noise(x, 1.0, gen) != x).all()
    assert (d6.occlude(x, 1.0, gen) == -1).all()
    quarter = d6.occlude(torch.zeros(50, 64), 0.25, gen)
    assert ((quarter == -1).sum(dim=1) == 16).all()  # a 4x4 patch covers a quarter of every image


def test_substitution_relabels_by_the_truth():
    tokens = torch.arange(20).repeat(30, 1)  # sorted rows
    gen = torch.Generator().manual_seed(0)
    same, truth = d6.substitute(tokens, 0.0, 50, gen)
    assert torch.equal(same, tokens) and (truth == 1).all()
    changed, truth = d6.substitute(tokens, 1.0, 50, gen)
    assert (changed != tokens).all() and ((changed >= 0) & (changed < 50)).all()
    assert torch.equal(truth, (changed[:, 1:] > changed[:, :-1]).all(dim=1).float())


# --- the ensemble equals separate trainings --------------------------------------------------------------


def _quiet(desc: str, total: int):
    return nullcontext(lambda n: None)


def test_mlp_ensemble_equals_separate_trainings_of_the_same_seeds():
    cfg = d6.Config(**{**d6.PRESETS["smoke"], "seeds": 2, "mlp_steps": 15})
    together = d6.train_mlps(cfg, RunContext(_quiet))
    for k, seed in enumerate(cfg.seed_list):
        alone = d6.train_mlps(cfg.model_copy(update={"seed": seed, "seeds": 1}), RunContext(_quiet))
        x = torch.rand(1, 5, 64, generator=generator(9, "x"))
        with torch.no_grad():
            assert torch.allclose(together(x.expand(2, -1, -1))[k], alone(x)[0], atol=1e-5)


# --- the claims on hand-made tables -----------------------------------------------------------------------


def table(n: int = 10, ratio: float = 4.0, ratio_spread: float = 0.5, change: float = 0.0, rise: float = 0.05,
          rise_spread: float = 0.01, drop: str | None = None) -> dict:  # fmt: skip
    """A run's table: every family with the claims' cells, per-seed values around the given means."""
    wiggle = np.linspace(-1, 1, n)
    t: dict = {}
    for family, perturbations in d6.PERTURBATIONS.items():
        if family == drop:
            continue
        cells = {"ece": describe(0.04 + 0.005 * wiggle), "ece_ts": describe(0.01 + 0.001 * wiggle),
                 "temperature": describe(2 + 0.1 * wiggle), "ece_ratio": describe(ratio + ratio_spread * wiggle),
                 "accuracy_change_ts": describe([change] + [0.0] * (n - 1))}  # fmt: skip
        for p in perturbations:
            cells[f"ece_rise_{p}"] = describe(rise + rise_spread * wiggle)
            cells[f"ece_ts_rise_{p}"] = describe(rise + rise_spread * wiggle)
        t[family] = cells
    return t


def verdict(claim, t) -> str:
    return claim.judge(t).as_dict()["verdict"]


@pytest.mark.parametrize("claim", d6.CLAIMS, ids=IDS)
def test_claim_reproduced_where_it_holds(claim):
    assert verdict(claim, table()) == "reproduced"


FALSE = [
    (FALLS, {"ratio": 1.5, "ratio_spread": 0.2}),  # a fall, but less than 2x
    (FALLS, {"ratio": 2.5, "ratio_spread": 3.0}),  # the mean above 2x, the CI not
    (FALLS, {"change": 0.002}),  # one seed's accuracy moved: not an argmax-preserving scaling
    (RISES, {"rise": -0.02}),  # perturbation lowers ECE
    (RISES, {"rise": 0.01, "rise_spread": 0.05}),  # a mean rise, the CI not above 0
    (RISES_LSTM, {"rise": -0.02}),
    (RISES_LM, {"rise": 0.01, "rise_spread": 0.05}),
    (RISES_TS, {"rise": -0.02}),
]


@pytest.mark.parametrize("claim, changed", FALSE)
def test_claim_not_reproduced_where_it_is_false(claim, changed):
    assert verdict(claim, table(**changed)) == "not reproduced"


def test_each_family_is_judged_on_its_own_perturbations():
    t = table()
    t["sortedness-lstm"]["ece_rise_substitution"] = describe(np.linspace(-0.03, -0.01, 10))
    assert verdict(RISES_LSTM, t) == "not reproduced"
    assert verdict(RISES, t) == verdict(RISES_LM, t) == verdict(RISES_TS, t) == "reproduced"
    t["biography-lm"]["ece_ts_rise_paraphrase"] = describe(np.linspace(-0.03, 0.01, 10))
    assert verdict(RISES_TS, t) == "not reproduced"  # every family's scaled ECE must rise


@pytest.mark.parametrize("claim", d6.CLAIMS, ids=IDS)
def test_claim_undetermined_below_its_seeds_or_without_its_families(claim):
    assert verdict(claim, table(n=claim.min_seeds - 1)) == "undetermined"
    assert verdict(claim, table(n=claim.min_seeds)) == "reproduced"
    assert verdict(FALLS, table(drop=d6.OVERTRAINED)) == "undetermined"
    assert verdict(RISES_LM, table(drop="biography-lm")) == "undetermined"
    assert verdict(RISES_TS, table(drop="biography-lm")) == "reproduced"  # judged on the families measured
    assert verdict(claim, {}) == "undetermined"


def test_claim_seeds_fit_the_laptop_preset():
    assert max(c.min_seeds for c in d6.CLAIMS) <= d6.Config(**d6.PRESETS["laptop"]).seeds


# --- the CLI ----------------------------------------------------------------------------------------------

RUN = ["run", "calibration-robustness", "--preset", "smoke", "--quiet"]


@pytest.mark.parametrize(
    "override, named",
    [("n_bins=0", "n_bins"), ("n_bins=-2", "n_bins"), ("arms=[resnet-110]", "model family"),
     ("pixel_noise=1.5", "pixel_noise"), ("occlusion=-0.1", "occlusion"), ("substitution=2", "substitution"),
     ("norm=l3", "norm"), ("lm_d_model=50", "lm_d_model")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, override, named):
    code, _, err = cli([*RUN, "--set", override])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("d6") / "run"
    code, _, err = cli([*RUN, "--out", str(out)])
    assert code == 0, err
    return out


def test_smoke_run_measures_every_family_before_and_after_scaling_and_under_perturbation(smoke_run):
    summary = json.loads((smoke_run / "summary.json").read_text())
    t = summary["table"]
    assert list(t) == list(d6.FAMILIES)
    for family, perturbations in d6.PERTURBATIONS.items():
        assert t[family]["accuracy_change_ts"]["values"] == [0.0, 0.0]  # exactly: T > 0 keeps every argmax
        assert all(v > 0 for v in t[family]["temperature"]["values"])
        assert all(t[family]["val_nll_ts"]["values"][i] <= t[family]["val_nll"]["values"][i] + 1e-9 for i in range(2))
        for p in perturbations:
            assert {f"accuracy_{p}", f"ece_{p}", f"ece_ts_{p}", f"ece_rise_{p}"} <= set(t[family])
    assert summary["reference"]["digits-mlp"]["ece"]["mean"] == 0.046
    bins = pd.read_parquet(smoke_run / "metrics.parquet").query("split == 'calibration' and metric == 'clean_count'")
    per_seed = bins[bins.arm == "digits-mlp"].groupby("seed").value.sum()
    test = d6.digit_sets(d6.Config(**d6.PRESETS["smoke"]))["test"][1]
    assert len(test) > len(task.split()[3]) and (per_seed == len(test)).all()  # every test digit in a bin
    for png in ("reliability.png", "ece_bars.png"):
        assert (smoke_run / png).is_file()


def test_notes_say_when_a_family_is_underconfident_or_a_perturbation_made_the_task_easier():
    t = table()
    t["biography-lm"]["temperature"] = describe(np.linspace(0.4, 0.5, 10))
    for family in t:
        t[family] |= {"accuracy": describe([0.8] * 10), "accuracy_ts": describe([0.8] * 10)}
        for p in d6.PERTURBATIONS[family]:
            t[family][f"accuracy_{p}"] = describe([0.9 if p == "substitution" else 0.6] * 10)
            t[family][f"accuracy_drop_{p}"] = describe([0.1 if p == "substitution" else -0.2] * 10)
            t[family] |= {f"ece_{p}": describe([0.1] * 10), f"ece_ts_{p}": describe([0.1] * 10)}
    readings = d6._readings(t)
    assert len(readings) == 2
    assert "sortedness-lstm substitution" in readings[0] and "biography-lm is underconfident" in readings[1]
