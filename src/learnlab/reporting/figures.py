"""Figures every study gets: learning curves and the final table as bars beside the published numbers."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or values.shape[-1] < window:
        return values
    kernel = np.ones(window) / window
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), -1, values)


def learning_curves(metrics: pd.DataFrame) -> Figure | None:
    """Training loss and periodic evaluations over steps: mean over seeds with a ±1 std band per arm."""
    panels = [("train", "loss")] + sorted(
        {(s, m) for s, m in metrics[["split", "metric"]].itertuples(index=False) if s == "eval"}
    )
    panels = [p for p in panels if ((metrics.split == p[0]) & (metrics.metric == p[1])).any()]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (split, metric) in zip(axes[0], panels, strict=True):
        rows = metrics[(metrics.split == split) & (metrics.metric == metric)]
        for arm, group in rows.groupby("arm", sort=False):
            wide = group.pivot_table(index="seed", columns="step", values="value")
            steps = wide.columns.to_numpy()
            values = wide.to_numpy()
            if split == "train":
                window = max(1, len(steps) // 50)
                values = _smooth(values, window)
                steps = steps[window - 1 :]
            mean, std = values.mean(axis=0), values.std(axis=0)
            (line,) = ax.plot(steps, mean, label=str(arm), lw=1.4)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        ax.set(xlabel="step", ylabel=metric, title=f"{split} {metric}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def final_table(summary: dict[str, Any]) -> Figure | None:
    """Final metrics per arm with 95% CIs; published means as black diamonds. Where some metrics are
    fractions and others are not (steps, nats), only the fractions share this one axis."""
    table, reference = summary["table"], summary.get("reference", {})
    arms = list(table)
    metrics = list(dict.fromkeys(m for arm in arms for m in table[arm]))
    fractions = [m for m in metrics if all(_is_fraction(table[a].get(m)) for a in arms)]
    metrics = fractions or metrics
    if not arms or not metrics:
        return None
    fig, ax = plt.subplots(figsize=(min(12.0, 2.0 + 1.4 * len(metrics)), 4.0))
    width = 0.8 / len(arms)
    x = np.arange(len(metrics))
    labelled = False
    for i, arm in enumerate(arms):
        cells = [table[arm].get(m) for m in metrics]
        means, lo, hi = (
            np.array([np.nan if c is None or c["mean"] is None else v(c) for c in cells], dtype=float)
            for v in (lambda c: c["mean"], lambda c: c["ci95"][0], lambda c: c["ci95"][1])
        )
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, means, width, yerr=[means - lo, hi - means], capsize=2, label=arm)
        for j, m in enumerate(metrics):
            ref = reference.get(arm, {}).get(m)
            if ref:
                ax.plot(pos[j], ref["mean"], "kD", ms=4, label=None if labelled else "published")
                labelled = True
    ax.set_xticks(x, metrics)
    ax.set(ylabel="value (mean, 95% CI)", title="Final measurements (◆ published)")
    ax.legend(fontsize=7, ncol=min(len(arms) + 1, 6), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _is_fraction(cell: dict[str, Any] | None) -> bool:
    return cell is None or cell["mean"] is None or 0.0 <= cell["mean"] <= 1.0


def save(fig: Figure, path: Any) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
