"""Figures every study gets: learning curves and the final table as bars beside the published numbers."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PANELS_PER_ROW = 4
LEGEND_INSIDE = 6  # arms whose legend fits inside the first panel


def captioned(fig: Figure, text: str) -> Figure:
    """Attach the caption the report prints under the figure: what is plotted, over how many seeds, and
    what bands and bars are (±1 std, or a 95% CI)."""
    fig.learnlab_caption = text  # type: ignore[attr-defined]
    return fig


def caption_of(fig: Figure, default: str) -> str:
    return getattr(fig, "learnlab_caption", default)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or values.shape[-1] < window:
        return values
    kernel = np.ones(window) / window
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), -1, values)


def learning_curves(metrics: pd.DataFrame) -> Figure | None:
    """Training loss and periodic evaluations over steps: mean over seeds with a ±1 std band per arm,
    four panels to a row, one colour per arm (a grid's many arms included)."""
    panels = [("train", "loss")] + sorted(
        {(s, m) for s, m in metrics[["split", "metric"]].itertuples(index=False) if s == "eval"}
    )
    panels = [p for p in panels if ((metrics.split == p[0]) & (metrics.metric == p[1])).any()]
    if not panels:
        return None
    arms = list(dict.fromkeys(metrics.arm))
    colors = dict(zip(arms, _colors(len(arms)), strict=True))
    cols = min(PANELS_PER_ROW, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (split, metric) in zip(axes.flat, panels, strict=False):
        data = metrics[(metrics.split == split) & (metrics.metric == metric)]
        for arm, group in data.groupby("arm", sort=False):
            wide = group.pivot_table(index="seed", columns="step", values="value")
            steps = wide.columns.to_numpy()
            values = wide.to_numpy()
            if split == "train":
                window = max(1, len(steps) // 50)
                values = _smooth(values, window)
                steps = steps[window - 1 :]
            mean, std = values.mean(axis=0), values.std(axis=0)
            ax.plot(steps, mean, label=str(arm), lw=1.4, color=colors[arm])
            ax.fill_between(steps, mean - std, mean + std, color=colors[arm], alpha=0.15)
        ax.set(xlabel="step", ylabel=metric, title=f"{split} {metric}")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    if len(arms) <= LEGEND_INSIDE:
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
    else:  # below the panels, where it hides no curve
        lines = {label: line for ax in axes.flat for line, label in zip(*ax.get_legend_handles_labels(), strict=True)}
        legend_rows = -(-len(lines) // 6)
        fig.tight_layout(rect=(0, 0.22 * legend_rows / fig.get_figheight(), 1, 1))  # about 0.22 inch a row
        fig.legend(lines.values(), lines.keys(), loc="lower center", ncol=min(len(lines), 6), fontsize=8, frameon=False)
    return fig


def _colors(n: int) -> list[Any]:
    """Matplotlib's default cycle while it lasts (10), else n distinct colours from tab20."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    cmap = plt.get_cmap("tab20")
    return [cmap(i % 20) for i in range(n)]


FINAL_PANELS_MAX = 16  # more metrics than this: the study's own figures say it better


def final_table(summary: dict[str, Any]) -> Figure | None:
    """One small panel per final metric: a bar per arm with its 95% CI, the published mean as a black
    diamond. Each panel has its own scale, so steps, nats and fractions never share an axis. A study
    whose figures say more drops this one by returning {"final": None}."""
    table, reference = summary["table"], summary.get("reference", {})
    arms = list(table)
    metrics = [
        m
        for m in dict.fromkeys(m for arm in arms for m in table[arm])
        if any((table[a].get(m) or {}).get("mean") is not None for a in arms)
    ][:FINAL_PANELS_MAX]
    if not arms or not metrics:
        return None
    colors = dict(zip(arms, _colors(len(arms)), strict=True))
    cols = min(PANELS_PER_ROW, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.4), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        shown = [a for a in arms if (table[a].get(metric) or {}).get("mean") is not None]
        cells = [table[a][metric] for a in shown]
        means = np.array([c["mean"] for c in cells], dtype=float)
        lo = np.array([c["ci95"][0] for c in cells], dtype=float)
        hi = np.array([c["ci95"][1] for c in cells], dtype=float)
        x = np.arange(len(shown))
        err = np.clip([means - lo, hi - means], 0, None)  # a derived cell (an argmin) may sit off its CI
        ax.bar(x, means, 0.7, yerr=err, capsize=2, color=[colors[a] for a in shown])
        for i, arm in enumerate(shown):
            if ref := reference.get(arm, {}).get(metric):
                ax.plot(x[i], ref["mean"], "kD", ms=4)
        ax.set_xticks(x, shown, rotation=45 if len(shown) > 3 else 0, ha="right" if len(shown) > 3 else "center",
                      fontsize=7)  # fmt: skip
        ax.set_title(metric, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(metrics) :]:
        ax.set_axis_off()
    fig.suptitle("Final measurements: mean and 95% CI per arm (◆ published)", fontsize=9)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Any) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
