"""C3 `plateau-scaling` — the plateau grows with the number of individuals.

Source: Zucchet et al. (2025), seeds/002, section on the plateau. Claim: the length of the plateau
before knowledge emerges follows a power law in the number of individuals N, 0.43·N^0.81 (R² 0.998,
N = 4k…256k, 5 seeds).

Method. For each N, the knowledge-acquisition protocol (`knowledge_acquisition`) trains one transformer
per seed on biographies of N individuals and stops once every seed's plateau has ended. All N share one
cosine schedule (`schedule_steps`), so the learning rate at a step does not depend on N or on when a run
stops. The plateau is measured as everywhere in learnlab (`learnlab.metrics.detect_phases`, on the
held-out-template curves): from the first evaluation with attribute loss within 10% of the no-knowledge
baseline to the first later one where attribute accuracy reaches 5%. A straight line through
log(mean plateau length) against log N gives length = a·N^b; the 95% CI of b is a percentile bootstrap
that resamples the seeds within each N. Each N is an independent job (`--set backend=ray` runs them
as Ray tasks).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from learnlab.config import distinct_sorted
from learnlab.metrics import power_law_fit
from learnlab.reporting.stats import Table
from learnlab.studies import knowledge_acquisition as ka
from learnlab.studies.base import Claim, RunContext, Study
from learnlab.sweeps.jobs import GridConfig, Job, run_jobs

BOOTSTRAP_RESAMPLES = 2000


class Config(GridConfig, ka.BiographyConfig):
    grid_knobs = "n_values"
    n_values: list[int] = Field([100, 200, 400, 800, 1600], min_length=2, description="numbers of individuals")
    seeds: int = Field(3, ge=1)
    steps: int = Field(3000, gt=0, description="at most this many steps per N (each stops after its plateau)")
    schedule_steps: int = Field(4000, ge=0)
    stop_after_plateau: bool = True
    eval_every: int = Field(25, gt=0)
    eval_individuals: int = Field(100, gt=0)

    @field_validator("n_values")
    @classmethod
    def _distinct_positive(cls, values: list[int]) -> list[int]:
        return distinct_sorted(values, "n_values must be distinct positive numbers of individuals")

    @property
    def populations(self) -> list[int]:
        return self.n_values


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {**ka.PRESETS["smoke"], "n_values": [10, 20], "steps": 30, "eval_every": 10, "schedule_steps": 60},
    # N = 100 … 1600, 3 seeds each: 12.7 min alone on 2 cores (761 s); exponent 1.08 (95% CI 0.97-1.18),
    # R² 0.986: steeper than the published 0.81.
    "laptop": {},
    "paper": {**ka.PRESETS["paper"], "n_values": [4000, 8000, 16000, 32000, 64000], "seeds": 5, "steps": 16000,
              "schedule_steps": 16000, "eval_every": 100},  # fmt: skip
}


def arm(n: int) -> str:
    return f"N-{n}"


def job_config(cfg: Config, n: int) -> ka.BiographyConfig:
    """One N's training: the study's values for every field the protocol knows."""
    shared = {key: getattr(cfg, key) for key in ka.BiographyConfig.model_fields if key != "arms"}
    return ka.BiographyConfig(**{**shared, "n_individuals": n})


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    jobs = [Job(arm(n), functools.partial(ka.measure_as, arm(n)), job_config(cfg, n)) for n in cfg.n_values]
    frames = run_jobs(jobs, cfg, ctx, "plateau-scaling")
    return pd.concat(frames.values(), ignore_index=True)


def lengths_by_n(metrics: pd.DataFrame) -> dict[int, np.ndarray]:
    rows = metrics[(metrics.split == "test") & (metrics.metric == "plateau_length")]
    return {int(a.removeprefix("N-")): g.sort_values("seed")["value"].to_numpy() for a, g in rows.groupby("arm")}


def fit(metrics: pd.DataFrame, cfg: Config) -> Table:
    """The power law through the per-N mean plateau lengths, with a bootstrap CI on the exponent."""
    law = power_law_fit(lengths_by_n(metrics), BOOTSTRAP_RESAMPLES)
    if np.isnan(law.exponent):
        missing = {"mean": None, "std": None, "ci95": [None, None], "values": [None], "derived": True}
        return {"fit": {m: dict(missing) for m in ("exponent", "prefactor", "r2")}}
    lo, hi = np.percentile(law.exponent_boot, [2.5, 97.5])

    def cell(value: float, ci: tuple[float, float] | None = None, std: float = 0.0) -> dict[str, Any]:
        lo_hi = [float(ci[0]), float(ci[1])] if ci else [value, value]
        return {"mean": value, "std": std, "ci95": lo_hi, "values": [value], "derived": True}

    return {
        "fit": {
            "exponent": {**cell(law.exponent, (lo, hi), float(law.exponent_boot.std(ddof=1))),
                         "bootstrap_resamples": len(law.exponent_boot)},  # those with a logarithm  # fmt: skip
            "prefactor": cell(law.prefactor),
            "r2": cell(law.r2),
        }
    }


REFERENCE: Table = {"fit": {"exponent": {"mean": 0.81}, "prefactor": {"mean": 0.43}, "r2": {"mean": 0.998}}}


def _power_law(t: Table) -> tuple[bool, str]:
    e = t["fit"]["exponent"]
    if e["mean"] is None:
        return False, "fewer than two N values with a measured plateau: no fit"
    lo, hi = e["ci95"]
    return bool(lo <= 0.81 <= hi), (
        f"exponent {e['mean']:.2f} (bootstrap 95% CI {lo:.2f}–{hi:.2f}), R² {t['fit']['r2']['mean']:.3f}; "
        f"published 0.81 (R² 0.998) is {'inside' if lo <= 0.81 <= hi else 'outside'} the CI"
        + "".join(f"; {s}" for s in _fit_caveats(t))
    )


def _fit_caveats(t: Table) -> list[str]:
    """What the fit leaves out: seeds whose plateau outlasted the budget (biasing it down), N without a
    plateau, and bootstrap resamples without a logarithm."""
    cells = {arm: c["plateau_length"] for arm, c in t.items() if arm.startswith("N-")}
    unended = [
        f"{arm}: {c['missing']} of {len(c['values'])} seeds never left the plateau (left out of the fit, "
        "biasing it down)"
        for arm, c in cells.items()
        if c.get("missing")
    ]
    zero = [f"{arm}: no plateau in any seed (length 0 has no logarithm: left out of the fit)"
            for arm, c in cells.items() if c["mean"] == 0]  # fmt: skip
    resamples = t.get("fit", {}).get("exponent", {}).get("bootstrap_resamples", BOOTSTRAP_RESAMPLES)
    skipped = [] if resamples == BOOTSTRAP_RESAMPLES else [
        f"{BOOTSTRAP_RESAMPLES - resamples} of {BOOTSTRAP_RESAMPLES} bootstrap resamples drew only zero-length "
        "plateaus at some N and were skipped (the CI comes from the rest)"
    ]  # fmt: skip
    return unended + zero + skipped


def _grows(t: Table) -> tuple[bool, str]:
    e = t["fit"]["exponent"]
    if e["mean"] is None:
        return False, "no fit"
    return bool(e["ci95"][0] > 0), f"exponent {e['mean']:.2f}, CI lower bound {e['ci95'][0]:.2f}"


CLAIMS = (
    Claim("The plateau lengthens with the number of individuals (positive exponent)", _grows),
    Claim("Plateau length ≈ 0.43·N^0.81: the published exponent lies in our bootstrap CI", _power_law),
)


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    cells = [(int(a.removeprefix("N-")), c) for a, c in t.items() if a.startswith("N-")]
    per_n = ", ".join(
        f"N={n}: {c['plateau_length']['mean']:.0f}" if c["plateau_length"]["mean"] is not None else f"N={n}: none"
        for n, c in sorted(cells)
    )
    return [
        f"Plateau length in steps of {summary['config']['batch_size']} biographies (mean over seeds): {per_n}.",
        "The published fit counts steps of 128 sequences at N = 4k–256k; the exponent, not the prefactor, "
        "is what carries across scales.",
        *_fit_caveats(t),
    ]


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    data = {n: v[np.isfinite(v)] for n, v in lengths_by_n(metrics).items()}
    data = {n: v for n, v in data.items() if v.size}
    if not data:
        return {}
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for n, v in data.items():
        ax.scatter(np.full(v.size, n), v, color="C0", alpha=0.4, s=12)
    ns = np.array(sorted(data))
    ax.plot(ns, [data[n].mean() for n in ns], "o", color="C0", label="mean over seeds")
    f = summary["table"].get("fit", {})
    if f and f["exponent"]["mean"] is not None:
        grid = np.geomspace(ns.min(), ns.max(), 50)
        b, a = f["exponent"]["mean"], f["prefactor"]["mean"]
        ax.plot(grid, a * grid**b, color="C0", label=f"fit {a:.2g}·N^{b:.2f}")
        ax.plot(grid, 0.43 * grid**0.81, color="grey", ls="--", label="published 0.43·N^0.81")
    ax.set(xscale="log", yscale="log", xlabel="individuals N", ylabel="plateau length (steps)",
           title="Plateau length against N")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    return {"plateau_scaling": fig}


STUDY = Study(
    name="plateau-scaling",
    title="the plateau before knowledge grows as a power of the number of individuals (C3)",
    source="seeds/002 (Zucchet et al. 2025), plateau length vs N",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=(("fit", "exponent"), ("fit", "r2"), ("N-1600", "plateau_length")),  # the laptop's largest N
    figures=figures,
    notes=notes,
    derived=fit,
    plain_metrics=("exponent", "prefactor", "r2", "plateau_length"),
)
