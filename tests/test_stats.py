"""Statistics on hand-checked cases."""

import math

import pandas as pd
import pytest

from learnlab.reporting.stats import compare, describe, difference, table_from_metrics


def test_describe_mean_std_and_ci():
    cell = describe([1.0, 2.0, 3.0, 4.0])
    assert cell["mean"] == 2.5
    assert cell["std"] == pytest.approx(math.sqrt(5 / 3))  # sample std, ddof=1
    lo, hi = cell["ci95"]
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert cell["values"] == [1.0, 2.0, 3.0, 4.0]
    assert describe([1.0, 2.0, 3.0, 4.0]) == cell  # the bootstrap is seeded


def test_describe_degenerate_cases():
    assert describe([0.7]) == {"mean": 0.7, "std": 0.0, "ci95": [0.7, 0.7], "values": [0.7]}
    assert describe([0.5, 0.5, 0.5])["ci95"] == [0.5, 0.5]


def test_ci_narrows_with_more_seeds():
    few = describe([0.0, 1.0] * 5)["ci95"]
    many = describe([0.0, 1.0] * 50)["ci95"]
    assert many[1] - many[0] < few[1] - few[0]


def test_compare_reports_difference_and_ci_membership():
    table = {"a": {"acc": describe([0.8, 0.9])}}
    rows = compare(table, {"a": {"acc": {"mean": 0.9, "std": 0.05}}, "b": {"acc": {"mean": 0.1, "std": 0}}})
    assert len(rows) == 1  # arm b was not measured
    assert rows[0]["difference"] == pytest.approx(-0.05)
    assert rows[0]["published_inside_ci"] is True
    rows = compare(table, {"a": {"acc": {"mean": 0.99, "std": 0.0}}})
    assert rows[0]["published_inside_ci"] is False


def test_paired_difference_and_table_from_long_rows():
    final = pd.DataFrame(
        {"arm": ["x", "x", "y", "y"], "seed": [1, 0, 0, 1], "metric": "m", "value": [0.6, 0.5, 0.7, 0.9]}
    )
    table = table_from_metrics(final)
    assert table["x"]["m"]["values"] == [0.5, 0.6]  # seed order
    assert difference(table, "m", "y", "x")["values"] == pytest.approx([0.2, 0.3])


def test_missing_values_are_kept_as_none_and_left_out_of_the_statistics():
    from learnlab.reporting.report import fmt

    cell = describe([1.0, float("nan"), 3.0, None])
    assert cell["values"] == [1.0, None, 3.0, None] and cell["missing"] == 2
    assert cell["mean"] == 2.0 and cell["std"] == pytest.approx(2**0.5)
    empty = describe([float("nan")])
    assert empty["mean"] is None and empty["ci95"] == [None, None] and fmt(empty["mean"]) == "—"


def test_numbers_print_in_their_metrics_unit():
    from learnlab.reporting.report import fmt, mean_std, metric_unit

    summary = {"plain_metrics": ["r2"], "point_metrics": ["gain"]}
    assert [metric_unit(summary, m) for m in ("r2", "gain", "acc")] == ["plain", "points", None]
    assert mean_std(0.085, 0.0877, "points") == "+8.5 pts ± 8.8 pts"
    assert fmt(-0.183, "points") == "-18.3 pts"  # a loss prints like a gain, not as a raw fraction
    assert mean_std(0.75, 0.05) == "75.0% ± 5.0%"  # the spread in the mean's unit, not guessed alone
    assert fmt(0.986, "plain") == "0.986" and fmt(1234.5) == "1234"
