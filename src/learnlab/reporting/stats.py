"""Statistics over seeds: mean, standard deviation, a Student-t 95% CI, and the tests claims use.

Every table cell is {"mean", "std", "ci95": [lo, hi], "values": [...]} with values in seed order, so a
reader can recompute anything. The interval is the t-interval of the mean, mean ± t(0.975, n−1)·s/√n:
it keeps its 95% coverage at the 2–5 seeds studies run (a percentile bootstrap over 2–3 seeds is just
[min, max], and "excludes 0" then passes a true null 13–25% of the time; tests/test_stats.py simulates
it). A paired difference is the t-interval of the per-seed differences.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

Cell = dict[str, Any]
Table = dict[str, dict[str, Cell]]

CONFIDENCE = 0.95


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t interval of the mean of finite values (n ≥ 2; a zero spread gives [mean, mean])."""
    from scipy import stats  # 0.4 s to import: only when a run reaches its statistics

    n, mean = values.size, float(values.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return mean - half, mean + half


def describe(values: list[float | None] | np.ndarray) -> Cell:
    """Mean, sample std (ddof=1), and the t-interval 95% CI of the mean, over the finite values.

    A value that is NaN or None (a seed where the quantity does not exist, e.g. a phase never reached)
    is kept as None in "values" and counted in "missing"; with no finite value the statistics are None.
    One finite value has no interval: its CI is [mean, mean], and claims refuse to judge it
    (`Claim.min_seeds`).
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
    lo, hi = t_interval(finite) if finite.size > 1 and np.ptp(finite) > 0 else (mean, mean)
    return {"mean": mean, "std": std, "ci95": [lo, hi], **kept}


def pct(cell: Cell) -> str:
    """A fraction's mean and CI in percent, for verdict evidence: '84.3% (95% CI 82.3–86.1)'."""
    lo, hi = cell["ci95"]
    return f"{100 * cell['mean']:.1f}% (95% CI {100 * lo:.1f}–{100 * hi:.1f})"


def points(cell: Cell, label: str = "95% CI") -> str:
    """A difference of fractions in signed percentage points with its CI: '+8.2 points (95% CI +1.7 to +14.8)'."""
    lo, hi = cell["ci95"]
    return f"{100 * cell['mean']:+.1f} points ({label} {100 * lo:+.1f} to {100 * hi:+.1f})"


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


# --- the tests claims are decided by -------------------------------------------------------------------


def decidable(cell: Cell) -> bool:
    """The cell has an interval to test: a finite mean over at least 2 finite seeds (one seed's CI is
    [mean, mean], which would pass any test), or a derived cell (a fit) that carries its own CI."""
    return cell["mean"] is not None and (bool(cell.get("derived")) or finite_values(cell) >= 2)


def above(cell: Cell, bound: float = 0.0) -> bool | None:
    """The whole 95% CI lies above `bound` (a one-sided test at 2.5%); None when not `decidable`."""
    return bool(cell["ci95"][0] > bound) if decidable(cell) else None


def below(cell: Cell, bound: float = 0.0) -> bool | None:
    """The whole 95% CI lies below `bound`; None when not `decidable`."""
    return bool(cell["ci95"][1] < bound) if decidable(cell) else None


def within(cell: Cell, margin: float) -> bool | None:
    """An equivalence test for a claim of "no change": the whole 95% CI inside [−margin, +margin]
    (two one-sided tests at 2.5%). The absence of a significant change is not evidence of none: a wide
    CI around 0 fails this test. None when not `decidable`."""
    if not decidable(cell):
        return None
    lo, hi = cell["ci95"]
    return bool(-margin <= lo and hi <= margin)


# A built-in study tests a published claim; a user's study (defined outside learnlab) tests its own
# hypothesis, and its verdicts say so in neutral words.
WORDS = {
    "published": {True: "reproduced", False: "not reproduced", None: "undetermined"},
    "hypothesis": {True: "held", False: "did not hold", None: "undetermined"},
}
OUTCOME = {word: held for words in WORDS.values() for held, word in words.items()}  # "held" -> True
