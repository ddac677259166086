"""D3 rare-combinations: the task's frequencies and held-out pair (property tests), steps to 80% with
censoring, the ensemble against separate trainings, bad input through the CLI, the smoke run end to end,
and each claim on hand-built tables (one where it holds, one where it does not)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.engine.train import train_ensemble
from learnlab.reporting.stats import describe
from learnlab.studies import rare_combinations as d3
from learnlab.tasks import combinations as cb

FALLS, RATIO = d3.CLAIMS


@st.composite
def grids(draw):
    n = draw(st.integers(2, 9))
    bins = draw(st.integers(2, min(n * n - 1, 20)))
    span = draw(st.floats(1.0, 1e4))
    held = (draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1)))
    return draw(st.integers(0, 2**32 - 1)), n, bins, span, held


@settings(max_examples=60, deadline=None)
@given(grids())
def test_frequencies_span_the_levels_in_even_bins_and_the_held_out_pair_has_none(grid):
    seed, n, bins, span, held = grid
    task = cb.make(seed, n, 4, bins, span, held)
    w = task.weights
    assert w[held] == 0 and (np.delete(w.reshape(-1), held[0] * n + held[1]) > 0).all()
    trained = w[w > 0]
    assert trained.max() / trained.min() == pytest.approx(span)
    sizes = np.bincount(task.bin[task.bin >= 0], minlength=bins)
    assert sizes.sum() == n * n - 1 and sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    assert np.allclose(np.log(task.levels), np.linspace(0, np.log(span), bins))
    assert task.probabilities.sum() == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(grids())
def test_the_label_needs_both_attributes(grid):
    seed, n, bins, span, held = grid
    labels = cb.make(seed, n, 4, bins, span, held).labels
    every = list(range(n))  # each row and each column holds every label once: one attribute says nothing
    assert all(sorted(row) == every for row in labels) and all(sorted(col) == every for col in labels.T)


def decode(task: cb.Combinations, x: torch.Tensor) -> np.ndarray:
    """Noise-free renderings back to combination indices (prototypes are distinct unit vectors)."""
    d = task.prototypes.shape[-1]
    a = (x[:, :d].numpy() @ task.prototypes[0].T).argmax(-1)
    b = (x[:, d:].numpy() @ task.prototypes[1].T).argmax(-1)
    return a * task.n + b


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3), st.integers(0, 3))
def test_training_batches_never_show_the_held_out_pair_and_follow_the_frequencies(seed, a, b):
    task = cb.make(seed, 4, 8, 3, 100.0, (a, b))
    x, y = cb.Batches([task], [seed], 20000, noise=0.0)(0)
    combos = decode(task, x[0])
    assert (combos != a * 4 + b).all()
    assert torch.equal(y[0], cb.label(task, torch.as_tensor(combos)))
    counts = np.bincount(combos, minlength=16) / 20000
    expected = task.probabilities.reshape(-1)
    assert np.abs(counts - expected).max() < 0.02
    rare, common = (task.bin.reshape(-1) == 0), (task.bin.reshape(-1) == 2)
    assert 50 < counts[common].mean() / counts[rare].mean() < 200  # 100x, within sampling noise


@pytest.mark.parametrize(
    "args, named",
    [((4, 3, 0.5, (0, 0)), "span"), ((4, 3, 10.0, (4, 0)), "held_out"), ((4, 3, 10.0, (0, -1)), "held_out"),
     ((4, 16, 10.0, (0, 0)), "bins"), ((1, 2, 10.0, (0, 0)), "n_values")],
)  # fmt: skip
def test_check_refuses_a_bad_task_naming_it(args, named):
    with pytest.raises(ValueError, match=named):
        cb.check(*args)


def test_steps_to_80_is_the_first_crossing_and_inf_when_censored():
    steps = np.array([0, 10, 100, 1000])
    acc = np.array([[0.1, 0.1, 0.9], [0.8, 0.1, 0.5], [0.5, 0.79, 0.95], [0.9, 0.79, 0.2]])  # [E, combos]
    assert d3.steps_to(acc, steps).tolist() == [10.0, np.inf, 0.0]


def test_spearman_ties_censored_values_above_every_step():
    assert d3.spearman(np.array([1.0, 2, 3, 4]), np.array([np.inf, np.inf, 50, 5])) == pytest.approx(-0.9486833)
    assert np.isnan(d3.spearman(np.array([1.0, 2, 3]), np.array([np.inf] * 3)))


def hand_task(bins: int = 3) -> cb.Combinations:
    return cb.make(0, 4, 4, bins, 100.0, (0, 0))


def seed_numbers(first_by_bin: list[float], budget: int = 1000) -> dict:
    task = hand_task(len(first_by_bin))
    first = np.array([np.inf if b < 0 else first_by_bin[b] for b in task.bin.reshape(-1)])
    steps = np.array([0, budget])
    acc = np.zeros((2, 16))
    return d3.seed_summary(task, first, acc, steps, 64)


def test_a_censored_rare_bin_gives_a_lower_bound_ratio_flagged_and_a_censored_common_bin_none():
    s = seed_numbers([np.inf, 100, 10])
    assert s["overall"]["rare_common_ratio"] == 100.0 and s["overall"]["ratio_censored"] == 1.0
    assert np.isnan(s["bins"]["steps_to_80"][0]) and s["bins"]["censored"][0] == 1.0
    assert s["overall"]["spearman_rho"] == pytest.approx(-1.0)
    assert np.isnan(s["overall"]["steps_exponent"])  # a censored bin: no slope (dropping it would flatten it)
    s = seed_numbers([500, 100, 10])
    assert s["overall"]["rare_common_ratio"] == 50.0 and s["overall"]["ratio_censored"] == 0.0
    assert s["overall"]["log10_rare_common_ratio"] == pytest.approx(np.log10(50))
    assert s["overall"]["steps_exponent"] == pytest.approx(np.log10(10 / 500) / 2)  # levels 1, 10, 100
    s = seed_numbers([500, 100, np.inf])
    assert np.isnan(s["overall"]["rare_common_ratio"]) and np.isnan(s["overall"]["ratio_censored"])
    assert s["overall"]["spearman_rho"] == pytest.approx(0.5)


def test_ensemble_of_seeds_equals_each_seed_trained_alone():
    cfg = d3.Config(**{**d3.PRESETS["smoke"], "seeds": 3})
    seeds = [0, 1, 5]

    def trained(members: list[int]) -> d3.EnsembleMLP:
        model = d3.build(cfg, members)
        tasks = d3.tasks_of(cfg, members)
        batches = cb.Batches(tasks, members, cfg.batch_size, cfg.noise)
        train_ensemble(model, batches, d3.cross_entropy, steps=25, lr=cfg.lr)
        return model

    together = trained(seeds)
    for k, s in enumerate(seeds):
        alone = trained([s])
        for ours, theirs in zip(together.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(ours[k], theirs[0], rtol=1e-5, atol=1e-6)


# --- the command line -------------------------------------------------------------------------------------------

RUN = ["run", "rare-combinations", "--preset", "smoke", "--quiet"]


@pytest.mark.parametrize(
    "override, named",
    [("frequency_span=0.5", "frequency_span"), ("held_out=[4,0]", "held_out"), ("held_out=[0]", "held_out"),
     ("bins=16", "bins"), ("n_values=1", "n_values")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, override, named):
    code, _, err = cli([*RUN, "--set", override])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("d3") / "run"
    code, _, err = cli([*RUN, "--out", str(out)])
    assert code == 0, err
    return out


def test_smoke_run_reports_every_bin_the_held_out_pair_and_every_combination(smoke_run):
    import pandas as pd

    summary = json.loads((smoke_run / "summary.json").read_text())
    t = summary["table"]
    assert sorted(t) == ["bin-00", "bin-01", "bin-02", "held-out", "overall"]
    assert {"spearman_rho", "rare_common_ratio", "early_gap", "censored"} <= set(t["overall"])
    assert t["held-out"]["chance"]["mean"] == 0.25
    assert [t[f"bin-0{i}"]["frequency"]["mean"] for i in range(3)] == pytest.approx([1, 10**0.5, 10])
    combos = pd.read_parquet(smoke_run / "metrics.parquet").query("split == 'combination'")
    assert combos.groupby(["arm", "seed"]).ngroups == 16 * 2  # every combination of every seed, censored too
    censored = combos[combos.metric == "censored"].value.sum()
    assert combos[combos.metric == "steps_to_80"].value.isna().sum() == censored
    assert t["overall"]["censored"]["mean"] == pytest.approx(
        combos.query("metric == 'censored' and arm != 'combo-0-0'").value.mean()
    )
    wide = combos.pivot_table(index=["arm", "seed"], columns="metric", values="value")
    assert (wide.settled_steps_to_80.fillna(np.inf) >= wide.steps_to_80.fillna(np.inf)).all()
    for png in ("steps_vs_frequency.png", "accuracy_by_bin.png", "learning_curves.png"):
        assert (smoke_run / png).is_file()
    assert not (smoke_run / "final.png").exists()


# --- the claims -------------------------------------------------------------------------------------------------


def table(
    rho: float = -0.95, log_ratio: float = 1.5, seeds: int = 8, bins: int = 12, spread: float = 0.02,
    log_spread: float = 0.3,
) -> dict:  # fmt: skip
    """A run's table: `bins` bin arms and the overall cells, per-seed values around the given means (the ratio
    given by its log10)."""
    wiggle = np.linspace(-1, 1, seeds)
    t: dict = {d3.bin_arm(i): {"frequency": describe([float(i + 1)] * seeds)} for i in range(bins)}
    logs = log_ratio + log_spread * wiggle
    t[d3.OVERALL] = {
        "spearman_rho": describe(list(np.clip(rho + spread * wiggle, -1, 1))),
        "rare_common_ratio": describe(list(10**logs)),
        "log10_rare_common_ratio": describe(list(logs)),
        "frequency_span": describe([100.0] * seeds),
    }
    return t


def verdict(claim, t) -> str:
    return claim.judge(t).as_dict()["verdict"]


@pytest.mark.parametrize("claim", d3.CLAIMS, ids=lambda c: c.check.__name__)
def test_claim_reproduced_where_it_holds(claim):
    assert verdict(claim, table()) == "reproduced"


FALSE = [
    (FALLS, {"rho": -0.5}),  # a weak trend
    (FALLS, {"rho": -0.75, "spread": 0.3}),  # the mean below -0.7, the CI not
    (FALLS, {"rho": 0.9}),  # rare combinations learn first
    (RATIO, {"log_ratio": -0.1, "log_spread": 0.05}),  # rare faster than common
    (RATIO, {"log_ratio": 0.3, "log_spread": 1.5}),  # the geometric mean above 1, the CI not
]


@pytest.mark.parametrize("claim, changed", FALSE)
def test_claim_not_reproduced_where_it_is_false(claim, changed):
    assert verdict(claim, table(**changed)) == "not reproduced"


@pytest.mark.parametrize("claim", d3.CLAIMS, ids=lambda c: c.check.__name__)
def test_claim_undetermined_below_its_seeds(claim):
    assert verdict(claim, table(seeds=claim.min_seeds - 1)) == "undetermined"
    assert verdict(claim, table(seeds=claim.min_seeds)) == "reproduced"


def test_the_trend_needs_ten_bins_and_the_ratio_evidence_names_the_deck():
    assert verdict(FALLS, table(bins=9)) == "undetermined"
    evidence = RATIO.judge(table()).as_dict()["evidence"]
    assert "the deck's ~10x (at 100x) is below the geometric CI" in evidence
    assert "is inside the geometric CI" in RATIO.judge(table(log_ratio=1.0)).as_dict()["evidence"]


def test_a_ratio_without_a_commonest_bin_is_undetermined():
    t = table()
    t[d3.OVERALL]["rare_common_ratio"] = t[d3.OVERALL]["log10_rare_common_ratio"] = describe([None] * 8)
    assert verdict(RATIO, t) == "undetermined"


def test_a_first_crossing_that_falls_back_below_half_is_counted_as_reversed():
    acc = np.array([[0.9, 0.1, 0.85], [0.3, 0.5, 0.6], [0.9, 0.9, 0.95]])  # [E, combos]
    assert d3.reversed_share(acc).tolist() == [True, False, False]


def test_the_settled_crossing_skips_a_fluke_that_fell_back_below_half():
    steps = np.array([0, 10, 100, 1000])
    acc = np.array([[0.9, 0.1, 0.85], [0.3, 0.9, 0.6], [0.9, 0.79, 0.95], [0.95, 0.2, 0.9]])  # [E, combos]
    assert d3.steps_to(acc, steps).tolist() == [0.0, 10.0, 0.0]
    assert d3.steps_to_settled(acc, steps).tolist() == [100.0, np.inf, 0.0]
