"""A1 `hard-negatives` — random versus hard negatives on "is this sequence sorted?".

Source: the learning-by-negation article (seeds/000), section 3.1. Claim: a network learns a concept
from what it is *not*; negatives that differ from positives in one detail (one swapped pair) teach the
rule, random negatives teach a shortcut that fails exactly where the rule matters.

Method. Tokens 0..49. Every training batch has one length L ~ U{6..12} and 32 sequences; each is a
positive (sorted distinct tokens) with probability 1/2, otherwise a negative. The `baseline` arm's
negatives are random sequences that are not non-decreasing; the `concept` arm's are positives with one
random adjacent pair swapped; the arms `hard25`/`hard50`/`hard75` draw a one-swap negative with that
probability and a random one otherwise. TinyLSTM (Embedding 50x8, LSTM 32, Linear 32->1), Adam lr 5e-3,
weight decay 1e-4, BCE, 1600 steps; arms with the same seed share the initialisation and every random
draw except the choice of negative (a paired design). Tested after training on 500 sorted sequences
against 500 negatives of each kind: `easy` (random, L=20), `hard` (one swap, L=20), `extrap` (one swap,
L=40), and beyond the source `swap2`/`swap3` (2 or 3 non-overlapping adjacent swaps) and `distant` (one
swap of two non-adjacent positions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from learnlab.config import check_arms
from learnlab.engine.context import RunContext
from learnlab.protocols import sortedness_lstm as sl
from learnlab.protocols.measurements import log_rows, member_rows
from learnlab.reporting.stats import Cell, Table, above, describe, difference, pct, points, within
from learnlab.studies.base import Claim, Study, every

ARMS = sl.HARD_SHARE  # arm: the share of one-swap (hard) negatives among the negatives
TEST_SETS = ("easy", "hard", "extrap", "swap2", "swap3", "distant")


class Config(sl.SortednessConfig):
    eval_every: int = Field(200, ge=0, description="steps between learning-curve evaluations (0: off)")
    curve_eval_size: int = Field(100, gt=0, description="sequences per class for learning curves")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 60, "seeds": 2, "eval_size": 50, "eval_every": 20, "curve_eval_size": 20},
    "laptop": {},  # the source's protocol is laptop-sized: 20 seeds x 1600 steps
    "paper": {},
}


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """Train every arm (`sortedness_lstm.train`), with learning curves; then every test set."""
    model, members, log = sl.train(cfg, cfg.arms or list(ARMS), ctx, cfg.curve_eval_size, cfg.eval_every)
    sets = sl.final_sets(cfg, members, TEST_SETS)
    model.eval()
    with torch.no_grad():
        final = {name: sl.accuracy(model, x, y).cpu() for name, (x, y) in sets.items()}

    frames = log_rows(members, log)  # the loss at every step, the curves on sl.CURVE_SETS
    frames += [member_rows(members, [cfg.steps], v.numpy()[None], "test", n) for n, v in final.items()]
    return pd.concat(frames, ignore_index=True)


# --- the published claims --------------------------------------------------------------------------

REFERENCE: Table = {  # article, section 3.1 table (mean ± std over 20 seeds), as fractions
    "baseline": {
        "easy": {"mean": 1.000, "std": 0.001},
        "hard": {"mean": 0.500, "std": 0.002},
        "extrap": {"mean": 0.503, "std": 0.007},
    },
    "concept": {
        "easy": {"mean": 0.977, "std": 0.031},
        "hard": {"mean": 0.853, "std": 0.070},
        "extrap": {"mean": 0.657, "std": 0.076},
    },
}
NEAR_PERFECT = 0.99  # the shortcut's accuracy on random negatives: 95% CI above this
CHANCE, CHANCE_MARGIN = 0.5, 0.03  # "at chance": the 95% CI within ±3 points of 50%
FAR_ABOVE = 0.20  # "far above baseline": the paired gain's 95% CI above 20 points (published: +35)
EXTRAPOLATES = 0.60  # "partly extrapolates": the 95% CI above 60% (chance 50%; published 65.7%)


def _published(arm: str, metric: str) -> str:
    ref = REFERENCE[arm][metric]
    return f"{100 * ref['mean']:.1f} ± {100 * ref['std']:.1f}%"


def _published_range(arm: str, metric: str) -> tuple[float, float]:
    """The published mean ± one published std: where a seed of the source's runs usually lands."""
    ref = REFERENCE[arm][metric]
    return ref["mean"] - ref["std"], ref["mean"] + ref["std"]


def _vs_published(cell: Cell, arm: str, metric: str) -> str:
    """Our CI beside the published mean, saying whether the mean is inside it: the report's table column
    asks that, while a verdict may test a range or a bound, and the two must not seem to disagree."""
    lo, hi = cell["ci95"]
    inside = lo <= REFERENCE[arm][metric]["mean"] <= hi
    return f"published {_published(arm, metric)} (its mean {'inside' if inside else 'outside'} our CI)"


def _shortcut(t: Table) -> tuple[bool | None, str]:
    """Near-perfect is a bound (CI above 99%); at chance is an equivalence (CI within ±3 points of 50%)."""
    easy, hard = t["baseline"]["easy"], t["baseline"]["hard"]
    at_chance = describe(np.asarray(hard["values"], dtype=float) - CHANCE)
    held = every([above(easy, NEAR_PERFECT), within(at_chance, CHANCE_MARGIN)])
    return held, (
        f"baseline easy {pct(easy)}, {_vs_published(easy, 'baseline', 'easy')}; hard {pct(hard)}, "
        f"{_vs_published(hard, 'baseline', 'hard')}; judged: easy CI above {100 * NEAR_PERFECT:.0f}%, hard CI "
        f"inside {100 * (CHANCE - CHANCE_MARGIN):.0f}–{100 * (CHANCE + CHANCE_MARGIN):.0f}%"
    )


def _rule(t: Table) -> tuple[bool | None, str]:
    """In the published range: our whole CI inside the published mean ± std (not merely the published mean
    inside a wide CI); far above baseline: the paired gain's CI above 20 points."""
    cell = t["concept"]["hard"]
    lo, hi = _published_range("concept", "hard")
    in_range = None if cell["mean"] is None else bool(lo <= cell["ci95"][0] and cell["ci95"][1] <= hi)
    gain = difference(t, "hard", "concept", "baseline")
    held = every([in_range, above(gain, FAR_ABOVE)])
    return held, (
        f"concept hard {pct(cell)}, {_vs_published(cell, 'concept', 'hard')}, range {100 * lo:.1f}–{100 * hi:.1f}%; "
        f"gain over baseline {_points(gain)}, "
        f"judged against {100 * FAR_ABOVE:.0f} points"
    )


def _extrapolates(t: Table) -> tuple[bool | None, str]:
    cell = t["concept"]["extrap"]
    return above(cell, EXTRAPOLATES), (
        f"concept extrap (L=40) {pct(cell)}, {_vs_published(cell, 'concept', 'extrap')}; chance 50%; "
        f"judged: CI above {100 * EXTRAPOLATES:.0f}%"
    )


def _easy_kept(t: Table) -> tuple[bool | None, str]:
    """The CI above the low end of the published range: no worse than the source's usual seed."""
    cell = t["concept"]["easy"]
    lo, _ = _published_range("concept", "easy")
    return above(cell, lo), (
        f"concept easy {pct(cell)}, {_vs_published(cell, 'concept', 'easy')}; judged: CI above {100 * lo:.1f}% "
        "(published mean − std)"
    )


def _points(cell: dict[str, Any]) -> str:
    return points(cell, "paired 95% CI")


# Seeds: the bounds at 99% and ±3 points sit far from the baseline's spread (0.1–0.2 points), so 5 seeds
# decide them; the concept arm's seeds spread by 3–9 points, and a CI narrow enough to fit inside a
# published range or above a bound needs about 10 (below that the test fails for want of power, which
# would read as "not reproduced").
CLAIMS = (
    Claim(
        "Random negatives teach a shortcut: near-perfect on random negatives (95% CI above 99%), chance on "
        "one-swap ones (95% CI within 50 ± 3%)",
        _shortcut,
        min_seeds=5,
    ),
    Claim(
        "Hard negatives teach the rule: one-swap accuracy in the published range (95% CI inside 85.3 ± 7.0%) "
        "and far above baseline (paired gain's 95% CI above 20 points)",
        _rule,
        min_seeds=10,
    ),
    Claim(
        "The rule learned at lengths 6-12 partly extrapolates to length 40 (95% CI above 60%)",
        _extrapolates,
        min_seeds=10,
    ),
    Claim(
        "Training on hard negatives keeps random negatives easy (95% CI above 94.6%, the low end of the "
        "published 97.7 ± 3.1%)",
        _easy_kept,
        min_seeds=10,
    ),
)


def notes(summary: dict[str, Any]) -> list[str]:
    """Findings beyond the source: multiple errors and the hard-negative share."""
    t = summary["table"]
    out = []
    for arm in (a for a in ("concept", "baseline") if a in t):
        cells = ", ".join(f"{m} {100 * t[arm][m]['mean']:.1f}%" for m in ("hard", "swap2", "swap3", "distant"))
        out.append(f"Multiple errors ({arm}, L={summary['config']['eval_len']}): {cells}.")
    shares = [a for a in ARMS if a in t]
    if len(shares) > 2:
        cells = ", ".join(f"{100 * ARMS[a]:.0f}% → {100 * t[a]['hard']['mean']:.1f}%" for a in shares)
        out.append(f"Hard-negative share of negatives → hard accuracy: {cells}.")
    return out


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """Accuracy against the share of hard negatives, with 95% CIs."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"]
    arms = [a for a in ARMS if a in t]
    if len(arms) < 2:
        return {}
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = [100 * ARMS[a] for a in arms]
    for metric in ("easy", "hard", "extrap", "distant"):
        means = np.array([t[a][metric]["mean"] for a in arms])
        ci = np.array([t[a][metric]["ci95"] for a in arms])
        ax.errorbar(x, means, yerr=[means - ci[:, 0], ci[:, 1] - means], marker="o", capsize=3, label=metric)
    ax.set(
        xlabel="hard negatives (% of negatives)",
        ylabel="test accuracy",
        ylim=(0.4, 1.02),
        title="Accuracy vs hard-negative share",
    )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    fig.tight_layout()
    cfg = summary["config"]
    caption = (
        "Test accuracy after training against the share of one-swap (hard) negatives among the training "
        "negatives (0% = baseline, 100% = concept): easy = random negatives, hard = one swap, distant = one "
        f"non-adjacent swap (L={cfg.get('eval_len', 20)}), extrap = one swap at L={cfg.get('extrap_len', 40)}; "
        f"mean over {len(summary['seeds'])} seeds; bars = 95% CI of the mean (t-interval); dotted line = chance."
    )
    return {"share_sweep": captioned(fig, caption)}


STUDY = Study(
    name="hard-negatives",
    title="random vs hard negatives on 'is this sequence sorted?' (A1)",
    source="seeds/000 (learning by negation), section 3.1",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=tuple(ARMS),
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=(("baseline", "hard"), ("concept", "hard"), ("concept", "extrap")),
    figures=figures,
    notes=notes,
)
