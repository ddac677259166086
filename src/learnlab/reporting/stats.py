"""Statistics over seeds: mean, standard deviation, bootstrap 95% CI, and the comparison with claims.

Every table cell is {"mean", "std", "ci95": [lo, hi], "values": [...]} with values in seed order, so a
reader can recompute anything. The bootstrap uses a fixed random state: the same values give the same
interval, which keeps `summary.json` identical across identical runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

Cell = dict[str, Any]
Table = dict[str, dict[str, Cell]]

BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 20250101


def describe(values: list[float | None] | np.ndarray) -> Cell:
    """Mean, sample std (ddof=1), and a percentile-bootstrap 95% CI of the mean, over the finite values.

    A value that is NaN or None (a seed where the quantity does not exist, e.g. a phase never reached)
    is kept as None in "values" and counted in "missing"; with no finite value the statistics are None.
    """
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    finite = x[np.isfinite(x)]
    kept: Cell = {"values": [float(v) if np.isfinite(v) else None for v in x]}
    if finite.size < x.size:
        kept["missing"] = int(x.size - finite.size)
    if finite.size == 0:
        return {"mean": None, "std": None, "ci95": [None, None], **kept}
    mean = float(finite.mean())
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    if finite.size < 2 or np.ptp(finite) == 0:
        lo = hi = mean
    else:
        from scipy import stats  # 0.4 s to import: only when a run reaches its statistics

        res = stats.bootstrap(
            (finite,),
            np.mean,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {"mean": mean, "std": std, "ci95": [lo, hi], **kept}


def pct(cell: Cell) -> str:
    """A fraction's mean and CI in percent, for verdict evidence: '84.3% (95% CI 82.3–86.1)'."""
    lo, hi = cell["ci95"]
    return f"{100 * cell['mean']:.1f}% (95% CI {100 * lo:.1f}–{100 * hi:.1f})"


def table_from_metrics(final: pd.DataFrame) -> Table:
    """Rows (arm, seed, metric, value) -> {arm: {metric: cell}}, arms and metrics in first-seen order."""
    table: Table = {}
    for (arm, metric), group in final.groupby(["arm", "metric"], sort=False):
        values = group.sort_values("seed")["value"].to_numpy()
        table.setdefault(str(arm), {})[str(metric)] = describe(values)
    return table


def compare(table: Table, reference: Table) -> list[dict[str, Any]]:
    """For each published number: ours, the difference, and whether the published mean is inside our CI."""
    rows = []
    for arm, metrics in reference.items():
        for metric, published in metrics.items():
            ours = table.get(arm, {}).get(metric)
            if ours is None or ours["mean"] is None:
                continue
            lo, hi = ours["ci95"]
            rows.append(
                {
                    "arm": arm,
                    "metric": metric,
                    "published_mean": published["mean"],
                    "published_std": published.get("std"),  # None where the source gives no spread
                    "mean": ours["mean"],
                    "std": ours["std"],
                    "ci95": [lo, hi],
                    "difference": ours["mean"] - published["mean"],
                    "published_inside_ci": bool(lo <= published["mean"] <= hi),
                }
            )
    return rows


def finite_values(cell: Cell) -> int:
    """How many seeds the cell's statistics rest on (missing values left out)."""
    return sum(v is not None for v in cell["values"])


def difference(table: Table, metric: str, arm_a: str, arm_b: str) -> Cell:
    """Paired per-seed difference arm_a - arm_b (arms share seeds, so the pairing removes seed noise)."""
    a = np.asarray(table[arm_a][metric]["values"], dtype=float)  # None (missing) becomes NaN
    b = np.asarray(table[arm_b][metric]["values"], dtype=float)
    return describe(a - b)
