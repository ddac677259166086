import pandas as pd
from matplotlib.colors import to_rgba

from learnlab.reporting import figures


def long_metrics(arms: int, evals: int) -> pd.DataFrame:
    rows = [
        {"arm": f"arm-{a}", "seed": s, "split": split, "metric": metric, "step": step, "value": a + s + step}
        for a in range(arms)
        for s in range(2)
        for split, metric in [("train", "loss")] + [("eval", f"m{i}") for i in range(evals)]
        for step in range(0, 60, 10)
    ]
    return pd.DataFrame(rows)


def test_many_panels_wrap_into_rows_and_every_arm_keeps_its_own_colour():
    fig = figures.learning_curves(long_metrics(arms=13, evals=9))
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 10 and len(fig.axes) == 12  # 3 rows of 4; the last two left blank
    colours = {line.get_label(): to_rgba(line.get_color()) for line in panels[0].get_lines()}
    assert len(colours) == 13 and len(set(colours.values())) == 13
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [f"arm-{a}" for a in range(13)]


def test_final_measurements_get_one_panel_per_metric_each_with_its_own_arms():
    cell = {"mean": 0.5, "std": 0.1, "ci95": [0.4, 0.6]}
    summary = {
        "table": {
            "a": {"acc": cell, "gain": {**cell, "mean": 0.1}},
            "b": {"acc": cell, "gain": {**cell, "mean": None}},
            "fit": {"r2": {**cell, "mean": 0.98}},
        },
        "reference": {"a": {"acc": {"mean": 0.55}}},
    }
    panels = [ax for ax in figures.final_table(summary).axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["acc", "gain", "r2"]  # steps, nats, fractions: own axes
    labels = [[t.get_text() for t in ax.get_xticklabels()] for ax in panels]
    assert labels == [["a", "b"], ["a"], ["fit"]]  # an arm without a value gets no bar
    assert [line.get_marker() for line in panels[0].get_lines()].count("D") == 1  # the published diamond
