"""D2 emergence: the addition task (property tests), token edit distance and the curve measures on
hand-checked cases, the ensemble against separate trainings, each claim on a table where it holds and one
where it fails, bad input through the CLI, and the smoke run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st

import learnlab
from learnlab.config import build_config
from learnlab.engine.context import RunContext
from learnlab.errors import Interrupted
from learnlab.reporting.stats import describe
from learnlab.studies import emergence as d2
from learnlab.tasks import addition as ad

MULTIPLIES, NOT_WEAKEST, TRACKS, SHARPER = d2.CLAIMS


# --- the task ---------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, ad.MAX_DIGITS), st.integers(1, 40), st.data())
def test_the_answer_digits_are_the_sum_and_operands_stay_in_range(seed, digits, n, data):
    answer = data.draw(st.integers(1, digits + 1))
    p = ad.problems(np.random.default_rng(seed), n, digits, answer)
    assert p.a.shape == p.b.shape == (n, digits) and p.answer.shape == (n, answer)
    assert p.a.min() >= 0 and p.a.max() <= 9 and p.answer.min() >= 0 and p.answer.max() <= 9
    assert (ad.value(p.answer) == (ad.value(p.a) + ad.value(p.b)) % 10**answer).all()
    x = ad.encode(p.a, p.b)
    assert x.shape == (n, 20 * digits) and (x.sum(1) == 2 * digits).all()  # one hot per digit
    assert (x.reshape(n, 2, digits, 10).argmax(-1) == np.stack([p.a, p.b], 1)).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 50))
def test_the_composite_is_the_digit_sum_plus_the_carry_and_each_query_asks_its_own(seed, n):
    x, q, y = ad.skill_queries(np.random.default_rng(seed), n)
    a, b = x[:, :20].reshape(n, 2, 10).argmax(-1), x[:, 20:40].reshape(n, 2, 10).argmax(-1)
    assert (x[:, 40:].argmax(1) == q).all() and (x[:, 40:].sum(1) == 1).all()
    digit_sum, carry, tens = ad.skill_answers(a, b)
    assert (tens == (digit_sum + carry) % 10).all()
    assert (tens == (ad.value(a) + ad.value(b)) // 10 % 10).all()  # the tens digit of the real sum
    assert (y == np.choose(q, [digit_sum, carry, tens])).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 50))
def test_two_skills_answers_the_digit_sum_and_the_digit_product_of_one_input(seed, n):
    x, y = ad.two_skills(np.random.default_rng(seed), n)
    d = x.reshape(n, 2, 10).argmax(-1)
    assert x.shape == (n, 20) and (x.sum(1) == 2).all()
    assert (y[:, 0] == (d[:, 0] + d[:, 1]) % 10).all() and (y[:, 1] == d[:, 0] * d[:, 1] % 10).all()


@pytest.mark.parametrize(("digits", "answer"), [(0, None), (ad.MAX_DIGITS + 1, None), (3, 5), (3, 0)])
def test_a_bad_length_is_a_value_error_naming_it(digits, answer):
    with pytest.raises(ValueError, match="digits"):
        ad.problems(np.random.default_rng(0), 4, digits, answer)


def test_token_edit_distance_by_hand():
    def d(u: str, v: str) -> int:
        return int(ad.token_edit_distance(np.array([list(map(ord, u))]), np.array([list(map(ord, v))]))[0])

    assert d("kitten", "sitting") == 3
    assert d("123", "234") == 2  # delete 1, append 4 (Hamming would say 3)
    assert d("1234", "1234") == 0 and d("1234", "5678") == 4 and d("12", "21") == 2
    rows = ad.token_edit_distance(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[1, 2, 3], [5, 6, 7]]))
    assert rows.tolist() == [0, 2]


# --- the curve measures ------------------------------------------------------------------------------------------


def test_rise_width_is_the_x_between_ten_and_ninety_percent_of_the_range():
    x = np.arange(11.0)
    y = np.clip((x - 2) / 4, 0, 1)  # 0 until x=2, 1 from x=6: 10% at 2.4, 90% at 5.6
    assert d2.rise_width(x, y) == pytest.approx(3.2)
    assert d2.rise_width(x, 5 - 3 * y) == pytest.approx(3.2)  # a fall measures the same
    assert np.isnan(d2.rise_width(x, 0.05 * y))  # moves less than MIN_RANGE: no rise
    assert d2.rise_width(x, np.r_[0, np.ones(10)]) == pytest.approx(0.8)  # a jump: 80% of one grid interval


def test_mean_gap_uses_only_the_informative_evaluations_and_needs_three():
    observed = np.array([0.0, 0.0, 0.2, 0.5, 0.8, 1.0])
    predicted = np.array([0.01, 0.0, 0.3, 0.6, 0.9, 1.0])
    assert d2.mean_gap(observed, predicted) == pytest.approx(0.1)  # the three middle evaluations
    assert np.isnan(d2.mean_gap(observed[[0, 1, 2, 5]], predicted[[0, 1, 2, 5]]))


def test_the_composite_where_the_product_crosses_a_level_is_interpolated():
    steps = np.array([0, 10, 20])
    product = np.array([0.2, 0.4, 0.8])
    composite = np.array([0.1, 0.3, 0.7])
    assert d2.at_crossing(steps, product, composite, 0.56) == pytest.approx(0.3 + 0.4 * 0.4)
    assert np.isnan(d2.at_crossing(steps, product, composite, 0.9))


def test_the_multiplicative_summary_on_independent_skills_has_no_gap_and_beats_the_weakest_link():
    p1 = np.linspace(0.1, 1.0, 10)[:, None].repeat(3, 1)
    p2 = np.linspace(0.3, 1.0, 10)[:, None].repeat(3, 1)
    s = d2.multiplicative_summary(list(range(10)), p1, p2, p1 * p2)
    assert s["gap"] == pytest.approx(np.zeros(3)) and (s["product_advantage"] < 0).all()
    weakest = d2.multiplicative_summary(list(range(10)), p1, p2, np.minimum(p1, p2))
    assert (weakest["gap"] > 0.05).all() and (weakest["product_advantage"] > 0).all()


# --- the ensemble ------------------------------------------------------------------------------------------------


def test_ensemble_of_seeds_equals_each_seed_trained_alone():
    def curves(seed: int, seeds: int) -> dict[str, np.ndarray]:
        cfg = build_config(d2.Config, "emergence", d2.PRESETS, "smoke", {"seed": seed, "seeds": seeds})
        ctx = RunContext(progress=lambda desc, total: _no_bar())
        return d2.train_addition(cfg, ctx, "w", 16, 2, 3, 30)[1]

    together, alone = curves(3, 3), curves(4, 1)
    for metric in together:
        np.testing.assert_allclose(together[metric][:, 1], alone[metric][:, 0], atol=1e-6)


def _no_bar():
    from contextlib import nullcontext

    return nullcontext(lambda n: None)


# --- the claims ---------------------------------------------------------------------------------------------------


def cell(mean: float, seeds: int = 6, spread: float = 0.01):
    return describe(list(mean + np.linspace(-spread, spread, seeds)))


def table(gap=0.02, advantage=-0.05, gap_exact=0.03, sharpness=4.0, seeds=6):
    return {
        "joint": {"gap": cell(gap, seeds), "product_advantage": cell(advantage, seeds),
                  "composite_at_56": cell(0.55, seeds), "composite_at_81": cell(0.8, seeds)},
        "width-64": {"gap_exact": cell(gap_exact, seeds), "sharpness": cell(sharpness, seeds, 0.3)},
        "mirage": {"gap_exact": cell(gap_exact, seeds), "sharpness": cell(sharpness, seeds, 0.3)},
    }  # fmt: skip


HOLDS = table()
FAILS = table(gap=0.15, advantage=0.05, gap_exact=0.2, sharpness=1.1)


@pytest.mark.parametrize("claim", d2.CLAIMS, ids=["multiplies", "not-weakest", "tracks", "sharper"])
def test_every_claim_holds_on_a_table_made_to_hold_it_and_fails_on_one_made_to_fail_it(claim):
    assert claim.judge(HOLDS).as_dict()["verdict"] == "reproduced"
    assert claim.judge(FAILS).as_dict()["verdict"] == "not reproduced"


def test_a_ci_straddling_the_tolerance_is_not_reproduced_and_missing_evidence_is_undetermined():
    straddles = table(gap=0.045)
    straddles["joint"]["gap"] = cell(0.045, 6, 0.03)
    assert MULTIPLIES.judge(straddles).as_dict()["verdict"] == "not reproduced"
    nothing = table()
    nothing["mirage"]["sharpness"] = describe([None] * 6)  # no width where exact match emerged
    nothing["joint"]["gap"] = describe([None] * 6)  # never left 0 or 1
    assert SHARPER.judge(nothing).as_dict()["verdict"] == "undetermined"
    assert MULTIPLIES.judge(nothing).as_dict()["verdict"] == "undetermined"
    assert TRACKS.judge({"joint": HOLDS["joint"]}).as_dict()["verdict"] == "undetermined"  # mirage not run
    assert TRACKS.judge(table(seeds=3)).as_dict()["verdict"] == "undetermined"  # too few seeds


# --- the command line --------------------------------------------------------------------------------------------

RUN = ["run", "emergence", "--preset", "smoke", "--quiet"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--set", "digits=0"], "digits"), (["--set", "widths=[0, 16]"], "widths"),
     (["--set", "widths=[16, 16]"], "widths"), (["--set", "widths=[]"], "widths"), (["--set", "depth=0"], "depth"),
     (["--arms", "mirage,nope"], "nope"), (["--set", "digits=99"], "digits")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, argv, named):
    code, _, err = cli([*RUN, *argv])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("d2") / "run"
    code, _, err = cli([*RUN, "--out", str(out)])
    assert code == 0, err
    return out


def test_smoke_run_reports_every_arm_figures_models_and_the_deck(smoke_run):
    import pandas as pd

    summary = json.loads((smoke_run / "summary.json").read_text())
    t = summary["table"]
    assert list(t) == ["width-8", "width-16", "mirage", "joint", "chained"]
    names = {"token_acc", "exact", "p_pow", "edit", "edit_pred", "gap_exact", "rise_token", "sharpness"}
    assert names <= set(t["width-8"])
    assert {"gap_exact", "sharpness", "sharpness_steps", "width_rise_exact"} <= set(t["mirage"])
    assert {"p1", "p2", "composite", "gap", "product_advantage", "composite_at_56"} <= set(t["chained"])
    assert summary["reference"]["joint"]["composite_at_56"]["mean"] == 0.56
    assert [c["verdict"] for c in summary["claims"]] == ["undetermined"] * 4  # 2 seeds
    curves = pd.read_parquet(smoke_run / "metrics.parquet").query("split == 'eval' and arm == 'width-8'")
    wide = curves.pivot_table(index=["seed", "step"], columns="metric", values="value")
    np.testing.assert_allclose(wide["p_pow"], wide["token_acc"] ** 3)  # digits 2: T = 3 tokens
    np.testing.assert_allclose(wide["edit_pred"], 3 * (1 - wide["token_acc"]))
    assert (wide["exact"] <= wide[["pos_0", "pos_1", "pos_2"]].min(axis=1) + 1e-6).all()
    assert (wide["edit"] <= wide["edit_pred"] + 1e-6).all()  # Levenshtein <= Hamming, whose mean is T(1 - p)
    for png in ("mirage_exact.png", "mirage_edit.png", "multiplicative.png"):
        assert (smoke_run / png).is_file()
    run = learnlab.load_run(smoke_run)
    assert set(run.models) == {"width-8", "width-16", "joint", "chained"}
    assert run.models["width-16"].model.sizes == (40, 16, 16, 30)


def test_the_arms_select_the_parts_and_the_run_is_deterministic(tmp_path):
    kw = {"preset": "smoke", "progress": False, "arms": ["multiplicative"]}
    a = learnlab.run("emergence", out=tmp_path / "a", **kw)
    b = learnlab.run("emergence", out=tmp_path / "b", **kw)
    assert list(a["table"]) == ["joint", "chained"] and a["table"] == b["table"]
    assert [c["verdict"] for c in a["claims"]][2:] == ["undetermined"] * 2


def test_an_interrupted_run_resumes_to_the_uninterrupted_numbers(tmp_path, ctrl_c):
    """Cut in the second width's training (the first finished): the resume continues it from its checkpoint,
    and every number equals one whole run's."""
    kw = {"preset": "smoke", "checkpoint_every": 5, "progress": False, "arms": ["mirage"]}
    whole = learnlab.run("emergence", out=tmp_path / "whole", **kw)
    ctrl_c(22, "width-16")
    with pytest.raises(Interrupted):
        learnlab.run("emergence", out=tmp_path / "cut", **kw)
    ctrl_c(None)
    resumed = learnlab.resume(tmp_path / "cut", progress=False, checkpoint_every=5)
    assert resumed["table"] == whole["table"]
