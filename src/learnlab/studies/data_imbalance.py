"""C4 `data-imbalance` — how often each individual is seen shapes when and how well facts are learnt.

Source: Zucchet et al. (2025), seeds/002, section 4.1. Claims: sampling individual i with probability
∝ i^(−α) trades a shorter plateau (frequent individuals let the model build its recall circuit early)
against slower learning of the rare ones afterwards; the α that minimises the plateau is about 0.6–0.8
whatever the number of individuals N; the α that minimises the final loss grows with N (and with
shorter budgets); too much imbalance hurts. A variant makes a subset of "celebrities" more frequent.

Method. For every N in `n_values` and every α in `alphas`, the knowledge-acquisition protocol
(`knowledge_acquisition`) trains one transformer per seed for the same number of steps (one cosine
schedule), on biographies whose individual is drawn ∝ (i+1)^(−α) (α = 0: uniform). One more training,
at the first N, draws the first `celebrities` individuals `celebrity_weight` times as often as the others
(α = 0). Every training is a job (`--set backend=ray` runs them as Ray tasks); every job trains the same
seeds, so seeds are paired across arms (same initialisation, same data generator). The plateau is
measured as everywhere in learnlab (`learnlab.metrics.detect_phases`) on the held-out-template curves of
a uniform sample of `eval_individuals` seen individuals: from the first evaluation with attribute loss
within 10% of the no-knowledge baseline to the first later one with attribute accuracy ≥ 5%; a plateau
that never ends counts as longer than any that does. The final attribute loss and accuracy are scored
after the last step on every one of the N individuals once, in held-out templates (knowledge of the whole
population, each individual weighted alike however often it was trained on). For each N the derived cells
give the α with the smallest seed-mean plateau length, plateau end step (the plateau's end counted from
step 0, which also charges a slower phase 1) and final loss (ties: the smaller α); their "values" are
each seed's own argmin, and their 95% interval is a percentile bootstrap that resamples seeds (the same
seeds in every α). Names: arms `alpha-<α>` and `celebrities-<n>-<w>` are the first (smallest) N, arms
`alpha-<α>-N-<N>` the others; the derived arm `best` is the first N, `best-N-<N>` the others, each with
`alpha_min_plateau`, `alpha_min_plateau_end`, `alpha_min_final_loss` and its `n_individuals`.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from learnlab.config import distinct_sorted
from learnlab.models.transformer import EnsembleTransformer
from learnlab.reporting.stats import Table, difference, finite_values
from learnlab.studies import knowledge_acquisition as ka
from learnlab.studies.base import Claim, RunContext, Study, every
from learnlab.sweeps.jobs import GridConfig, Job, run_jobs
from learnlab.tasks import biographies as bio

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
PUBLISHED_PLATEAU_OPTIMUM = (0.6, 0.8)
# the per-job results kept in the table (the learning curves keep every evaluation metric)
TEST_METRICS = ("plateau_length", "phase1_end_step", "plateau_end_step", "final_loss", "final_acc")
ALPHA_ARM = re.compile(r"^alpha-(?P<alpha>.+?)(?:-N-(?P<n>\d+))?$")


class Config(GridConfig, ka.BiographyConfig):
    grid_knobs = "alphas, n_values and celebrities"
    alphas: list[float] = Field([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], min_length=2, description="Zipf exponents")
    n_values: list[int] = Field([100, 200], min_length=1, description="numbers of individuals")
    celebrities: int = Field(10, ge=0, description="celebrity arm at the first N: this many individuals ... (0: none)")
    celebrity_weight: float = Field(10.0, gt=0, description="... drawn this many times as often as the others")
    seeds: int = Field(2, ge=1)
    steps: int = Field(500, gt=0, description="training steps of every job (one budget for every α and N)")
    eval_every: int = Field(20, gt=0)
    eval_individuals: int = Field(64, gt=0)

    @field_validator("alphas")
    @classmethod
    def _distinct_alphas(cls, values: list[float]) -> list[float]:
        return distinct_sorted(values, "alphas must be distinct non-negative exponents", allow_zero=True)

    @field_validator("n_values")
    @classmethod
    def _distinct_n(cls, values: list[int]) -> list[int]:
        return distinct_sorted(values, "n_values must be distinct positive numbers of individuals")

    @model_validator(mode="after")
    def _grid_knobs_only(self) -> Config:
        if self.alpha or self.warmup_individuals:
            raise ValueError("data-imbalance sweeps alphas: leave alpha and warmup_individuals at 0")
        return self

    @property
    def populations(self) -> list[int]:
        return self.n_values


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        **ka.PRESETS["smoke"],
        "alphas": [0.0, 0.6],
        "n_values": [10, 15],
        "celebrities": 2,
        "celebrity_weight": 4.0,
        "steps": 30,
        "eval_every": 10,
    },
    # N = 100 and 200, six α, and celebrities (10 individuals drawn 10x as often) at N = 100: 13 trainings of
    # 500 steps of 32, 2 seeds each, the laptop model of knowledge-acquisition: 16.1 minutes (964 s) alone on 2
    # cores.
    # Shorter budgets leave uniform training inside its plateau at N = 200 (400 steps: one seed never left
    # it); a 32-wide model is 1.7x cheaper per step but had not left the plateau at N = 200 after 600 steps.
    "laptop": {},
    # the paper's model and budget (16k steps of 128), two N; its celebrity sizes are not given: ours
    "paper": {
        **ka.PRESETS["paper"],
        "n_values": [16_000, 64_000],
        "seeds": 2,
        "eval_every": 100,
        "celebrities": 1000,
        "celebrity_weight": 10.0,
    },
}


# --- the grid as jobs -----------------------------------------------------------------------------------


def suffix(cfg: Config, n: int) -> str:
    """'' for the first N, '-N-<n>' for the others (the arm names of the first N are the short ones)."""
    return "" if n == cfg.n_values[0] else f"-N-{n}"


def alpha_arm(cfg: Config, alpha: float, n: int) -> str:
    return f"alpha-{alpha:g}{suffix(cfg, n)}"


def celebrity_arm(cfg: Config) -> str:
    return f"celebrities-{cfg.celebrities}-{cfg.celebrity_weight:g}"


def best_arm(cfg: Config, n: int) -> str:
    return f"best{suffix(cfg, n)}"


def job_config(cfg: Config, n: int, **data: Any) -> ka.BiographyConfig:
    """One training: the study's values for every field the protocol knows, then the grid point's."""
    shared = {key: getattr(cfg, key) for key in ka.BiographyConfig.model_fields if key != "arms"}
    return ka.BiographyConfig(**{**shared, "n_individuals": n, "celebrities": 0, "celebrity_weight": 1.0, **data})


def final_over_everyone(model: EnsembleTransformer, cfg: ka.BiographyConfig) -> dict[str, np.ndarray]:
    """Final attribute loss and accuracy over all N individuals alike (held-out templates)."""
    _, s = ka.score_every_seen(model, cfg)
    return {
        "final_loss": s.loss.nanmean(dim=(1, 2)).cpu().numpy(),
        "final_acc": s.correct.nanmean(dim=(1, 2)).cpu().numpy(),
    }


def jobs(cfg: Config) -> list[Job]:
    def job(arm: str, n: int, **data: Any) -> Job:
        fn = functools.partial(ka.measure_as, arm, extra=final_over_everyone)
        return Job(arm, fn, job_config(cfg, n, **data))

    grid = [job(alpha_arm(cfg, a, n), n, alpha=a) for n in cfg.n_values for a in cfg.alphas]
    if cfg.celebrities:
        n = cfg.n_values[0]
        grid.append(job(celebrity_arm(cfg), n, celebrities=cfg.celebrities, celebrity_weight=cfg.celebrity_weight))
    return grid


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    frames = run_jobs(jobs(cfg), cfg, ctx, "data-imbalance")
    metrics = pd.concat(frames.values(), ignore_index=True)
    keep = (metrics.split.isin(("train", "eval"))) | ((metrics.split == "test") & metrics.metric.isin(TEST_METRICS))
    return metrics[keep].reset_index(drop=True)


# --- the α that minimises the plateau and the final loss ---------------------------------------------------


def per_seed(metrics: pd.DataFrame, metric: str, arms: list[str]) -> np.ndarray:
    """[arms, seeds] of a test metric; a missing value (a plateau that never ended) is +inf."""
    rows = metrics[(metrics.split == "test") & (metrics.metric == metric)]
    table = rows.pivot_table(index="arm", columns="seed", values="value", dropna=False).reindex(arms)
    return np.nan_to_num(table.to_numpy(dtype=float), nan=math.inf)


def argmin_cell(alphas: list[float], values: np.ndarray) -> dict[str, Any]:
    """The α with the smallest seed-mean (ties: the smaller α), each seed's own argmin, and a percentile
    bootstrap interval that resamples seeds jointly across α (the arms share their seeds)."""
    alphas_ = np.asarray(alphas, dtype=float)
    seeds = values.shape[1]
    finite = np.isfinite(values).any(axis=0)  # a seed with no plateau end at any α has no argmin
    if not finite.any():
        return {"mean": None, "std": None, "ci95": [None, None], "values": [None] * seeds, "derived": True}
    means = values[:, finite].mean(axis=1)
    best = float(alphas_[np.argmin(means)])
    ties = [float(a) for a in alphas_[means == means.min()]]  # plateau ends are coarse: one evaluation apart
    own = [float(alphas_[np.argmin(values[:, s])]) if finite[s] else None for s in range(seeds)]
    kept = values[:, finite]
    picks = np.random.default_rng(BOOTSTRAP_SEED).integers(0, kept.shape[1], (BOOTSTRAP_RESAMPLES, kept.shape[1]))
    boot = alphas_[np.argmin(kept[:, picks].mean(axis=2), axis=0)]  # [resamples]
    finite_own = [a for a in own if a is not None]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    std = float(np.std(finite_own, ddof=1)) if len(finite_own) > 1 else 0.0
    return {
        "mean": best,
        "std": std,
        "ci95": [float(lo), float(hi)],
        "values": own,
        "derived": True,
        "ties": ties,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
    }


def best_alphas(metrics: pd.DataFrame, cfg: Config) -> Table:
    """For each N: the α minimising the plateau length and the final loss."""
    out: Table = {}
    for n in cfg.n_values:
        arms = [alpha_arm(cfg, a, n) for a in cfg.alphas]
        out[best_arm(cfg, n)] = {
            "alpha_min_plateau": argmin_cell(cfg.alphas, per_seed(metrics, "plateau_length", arms)),
            "alpha_min_plateau_end": argmin_cell(cfg.alphas, per_seed(metrics, "plateau_end_step", arms)),
            "alpha_min_final_loss": argmin_cell(cfg.alphas, per_seed(metrics, "final_loss", arms)),
            "n_individuals": {
                "mean": float(n),
                "std": 0.0,
                "ci95": [float(n), float(n)],
                "values": [float(n)],
                "derived": True,
            },
        }
    return out


# --- the published claims ------------------------------------------------------------------------------


def grid_of(t: Table) -> dict[str, tuple[int, dict[float, str]]]:
    """best arm -> (its N, {α: arm}) read back from the arm names."""
    out: dict[str, tuple[int, dict[float, str]]] = {}
    for best, cells in t.items():
        if best != "best" and not best.startswith("best-N-"):
            continue
        tail = best.removeprefix("best")
        arms = {}
        for arm in t:
            m = ALPHA_ARM.match(arm)
            if m and (f"-N-{m['n']}" if m["n"] else "") == tail:
                arms[float(m["alpha"])] = arm
        out[best] = (int(cells["n_individuals"]["mean"]), dict(sorted(arms.items())))
    if not out:
        raise KeyError("best")
    return out


def _by_alpha(t: Table, arms: dict[float, str], metric: str, digits: int = 0) -> str:
    def one(a: float) -> str:
        m = t[arms[a]][metric]["mean"]
        return f"{a:g}: {'never' if m is None else f'{m:.{digits}f}'}"

    return ", ".join(one(a) for a in arms)


def _interval(cell: dict[str, Any]) -> str:
    lo, hi = cell["ci95"]
    seeds = ", ".join("—" if v is None else f"{v:g}" for v in cell["values"])
    return f"α={cell['mean']:g} (per seed {seeds}; bootstrap 95% {lo:g}–{hi:g})"


def _published_optimum(argmin: str, metric: str, t: Table) -> tuple[bool | None, str]:
    """Whether the α minimising `metric` (the derived cell `argmin`) lies in 0.6–0.8 at every N. Where
    several α tie for the minimum (plateau ends are one evaluation apart), all of them must lie inside;
    a tie across the range's edge leaves that N undecided (held None: undetermined)."""
    lo, hi = PUBLISHED_PLATEAU_OPTIMUM
    decided, parts = [], []
    for best, (n, arms) in grid_of(t).items():
        cell = t[best][argmin]
        if cell["mean"] is None:
            decided.append(False)
            parts.append(f"N={n}: no plateau ended at any α")
            continue
        ties = cell.get("ties", [cell["mean"]])
        inside = [lo - 1e-9 <= a <= hi + 1e-9 for a in ties]
        decided.append(True if all(inside) else False if not any(inside) else None)
        tied = f", tied with α={', '.join(f'{a:g}' for a in ties if a != cell['mean'])}" if len(ties) > 1 else ""
        parts.append(f"N={n}: {metric} by α {_by_alpha(t, arms, metric)} → smallest at {_interval(cell)}{tied}")
    held = False if False in decided else None if None in decided else True
    return held, "; ".join(parts) + f"; published {lo:g}–{hi:g}"


def _imbalance_shortens(t: Table) -> tuple[bool | None, str]:
    outcomes, parts = [], []
    for best, (n, arms) in grid_of(t).items():
        a = t[best]["alpha_min_plateau"]["mean"]
        if a is None or a == min(arms) or min(arms) != 0:
            outcomes.append(False)
            parts.append(f"N={n}: the shortest plateau is {'uniform' if a == 0 else 'not measured'}")
            continue
        d = difference(t, "plateau_length", arms[a], arms[0.0])
        if d["mean"] is None:
            outcomes.append(False)
            parts.append(f"N={n}: α={a:g} vs uniform not comparable (a plateau never ended)")
        elif finite_values(d) < 2:
            outcomes.append(None)
            parts.append(f"N={n}: α={a:g} vs uniform comparable in one seed only (no confidence interval)")
        else:
            outcomes.append(bool(d["ci95"][1] < 0))
            parts.append(
                f"N={n}: α={a:g} minus uniform {d['mean']:+.0f} steps "
                f"(95% CI {d['ci95'][0]:+.0f} to {d['ci95'][1]:+.0f})"
            )
    return every(outcomes), "; ".join(parts)


def _too_much_hurts(t: Table) -> tuple[bool, str]:
    held, parts = True, []
    for best, (n, arms) in grid_of(t).items():
        a, top = t[best]["alpha_min_final_loss"]["mean"], max(arms)
        if a == top:
            held = False
            parts.append(f"N={n}: final loss by α {_by_alpha(t, arms, 'final_loss', 3)} → lowest at the largest α")
            continue
        d = difference(t, "final_loss", arms[top], arms[a])
        held &= d["ci95"][0] > 0
        parts.append(
            f"N={n}: final loss by α {_by_alpha(t, arms, 'final_loss', 3)} → lowest at "
            f"{_interval(t[best]['alpha_min_final_loss'])}; α={top:g} is {d['mean']:+.3f} nats above it "
            f"(95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"
        )
    return held, "; ".join(parts)


def _final_optimum_grows(t: Table) -> tuple[bool, str]:
    grid = sorted((n, t[best]["alpha_min_final_loss"]["mean"]) for best, (n, _) in grid_of(t).items())
    if len(grid) < 2:
        raise KeyError("a second N")
    (_, a0), (_, a1) = grid[0], grid[-1]
    each = ", ".join(f"N={n}: α={a:g}" for n, a in grid)
    return bool(a1 > a0), f"α minimising the final loss: {each} ({'grows' if a1 > a0 else 'does not grow'} with N)"


CLAIMS = (
    Claim(
        "The α minimising the plateau length (phase 1's end to 5% accuracy) is 0.6–0.8 at every N",
        functools.partial(_published_optimum, "alpha_min_plateau", "plateau_length"),
    ),
    Claim(
        "The α minimising the step at which the plateau ends (5% accuracy, counted from step 0) is 0.6–0.8 at every N",
        functools.partial(_published_optimum, "alpha_min_plateau_end", "plateau_end_step"),
    ),
    Claim(
        "Some imbalance shortens the plateau: at every N the best α's plateau is shorter than uniform's "
        "(paired over seeds)",
        _imbalance_shortens,
    ),
    Claim(
        "Too much imbalance hurts: at every N the largest α's final loss is above the best α's (paired)",
        _too_much_hurts,
    ),
    Claim("The α minimising the final loss grows with N", _final_optimum_grows),
)

REFERENCE: Table = {"best": {"alpha_min_plateau": {"mean": 0.7}}}  # published 0.6–0.8


def _phase1_ends(t: Table) -> list[str]:
    """Per N, when phase 1 ends at the smallest and at the largest α."""
    try:
        grid = sorted(grid_of(t).values())
    except KeyError:
        return []
    out = []
    for n, arms in grid:
        ends = {a: t[arms[a]]["phase1_end_step"]["mean"] for a in (min(arms), max(arms))}
        if None not in ends.values():
            out.append(f"N={n}: " + ", ".join(f"step {e:.0f} at α={a:g}" for a, e in ends.items()))
    return out


def notes(summary: dict[str, Any]) -> list[str]:
    t, c = summary["table"], summary["config"]
    out = [
        f"Budget: {c['steps']} steps of {c['batch_size']} biographies for every α and N; the published "
        "α_opt comes from 16k steps of 128 at N in the tens of thousands. The seed article states α_opt ≈ "
        "0.6–0.8 as the best balance between leaving the plateau early and learning the rare individuals "
        "afterwards; learnlab's catalogue (STUDIES.md C4) reads it as the plateau-minimising α, which the "
        "first two claims test with the plateau measured from phase 1's end and from step 0.",
        "Under imbalance the plateau ends when 5% of a uniform sample's attributes are recalled, which the "
        "most frequent individuals alone can supply: a shorter plateau at large α is partly knowledge of a few.",
        f"Plateau ends are read at evaluations {c['eval_every']} steps apart, so lengths move in steps of "
        f"{c['eval_every']}; α that tie for the shortest plateau are named in the verdicts.",
    ]
    phase1 = _phase1_ends(t)
    if phase1:
        out.append(
            "Phase 1 (loss within 10% of the baseline, on a uniform sample) ends at "
            + "; ".join(phase1)
            + ". Where it ends later under imbalance, a plateau counted from phase 1's end also shrinks because "
            "phase 1 is slower; the plateau's end counted from step 0 (plateau_end_step) does not hide that."
        )
    celeb = next((a for a in t if a.startswith("celebrities-")), None)
    if celeb and "alpha-0" in t:
        n, w = celeb.removeprefix("celebrities-").split("-")
        parts = []
        for metric, unit in (("plateau_length", "steps"), ("final_loss", "nats")):
            d = difference(t, metric, celeb, "alpha-0")
            if d["mean"] is not None:
                parts.append(f"{metric} {d['mean']:+.3g} {unit} (95% CI {d['ci95'][0]:+.3g} to {d['ci95'][1]:+.3g})")
        out.append(
            f"Celebrities ({n} individuals drawn {w}× as often, first N) minus uniform, paired by seed: "
            + ("; ".join(parts) or "not comparable (a plateau never ended)")
            + "."
        )
    return out


# --- figures -------------------------------------------------------------------------------------------


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    t = summary["table"]
    try:
        grid = grid_of(t)
    except KeyError:
        return {}
    out: dict[str, Any] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = (("plateau_length", "plateau length (steps)"), ("final_loss", "final attribute loss (nats), all"))
    for (metric, label), ax in zip(panels, axes, strict=True):
        for k, (n, arms) in enumerate(sorted(grid.values())):
            xs = np.array(list(arms))
            for a, arm in arms.items():
                v = np.array([np.nan if x is None else x for x in t[arm][metric]["values"]], dtype=float)
                ax.scatter(np.full(v.size, a), v, color=f"C{k}", alpha=0.35, s=12)
            means = [np.nan if t[arm][metric]["mean"] is None else t[arm][metric]["mean"] for arm in arms.values()]
            ax.plot(xs, means, "o-", color=f"C{k}", label=f"N={n}")
        celeb = next((a for a in t if a.startswith("celebrities-")), None)
        if celeb and t[celeb][metric]["mean"] is not None:
            ax.axhline(t[celeb][metric]["mean"], color="C0", ls=":", lw=1, label=f"{celeb} (N={min(grid.values())[0]})")
        ax.axvspan(*PUBLISHED_PLATEAU_OPTIMUM, color="grey", alpha=0.12, lw=0)
        ax.set(xlabel="α (individual i drawn ∝ i^-α)", ylabel=label)
        ax.legend(fontsize=7)
    axes[0].set_title("Plateau length (grey: published α_opt 0.6–0.8)")
    axes[1].set_title("Final loss at a fixed budget")
    fig.tight_layout()
    out["alpha"] = fig

    n0, arms = max(grid.values())  # the largest N: the longest plateau
    ev = metrics[(metrics.split == "eval") & metrics.metric.isin(["loss_heldout_templates", "acc_heldout_templates"])]
    mean = ev[ev.arm.isin(list(arms.values()))].groupby(["arm", "metric", "step"])["value"].mean()
    if not mean.empty:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(arms)))
        for colour, (a, arm) in zip(colours, arms.items(), strict=True):
            for axis, metric in ((ax, "loss_heldout_templates"), (ax2, "acc_heldout_templates")):
                if (arm, metric) in mean.index.droplevel(2):
                    curve = mean[arm][metric]
                    axis.plot(curve.index, curve.to_numpy(), color=colour, label=f"α={a:g}")
        baseline = bio.no_knowledge_baseline()
        ax.axhline(baseline, color="black", ls="--", lw=1, label="no-knowledge baseline")
        ax.set(xlabel="step", ylabel="attribute loss (nats)", title=f"Held-out templates, N={n0}")
        ax2.set(xlabel="step", ylabel="attribute accuracy", ylim=(-0.02, 1.02), title="Accuracy (uniform sample)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["curves"] = fig
    return out


STUDY = Study(
    name="data-imbalance",
    title="Zipf-distributed individuals: the plateau against the final loss, and celebrities (C4)",
    source="seeds/002 (Zucchet et al. 2025), section 4.1",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=(("best", "alpha_min_plateau"), ("best", "alpha_min_final_loss")),
    figures=figures,
    notes=notes,
    derived=best_alphas,
    plain_metrics=(
        "alpha_min_plateau",
        "alpha_min_plateau_end",
        "alpha_min_final_loss",
        "n_individuals",
        "plateau_length",
        "final_loss",
    ),
)
