"""C2 `knowledge-acquisition` (with C7, hallucinations) — how a language model learns facts.

Source: Zucchet et al. (2025), "How do language models learn facts? Dynamics, curricula and
hallucinations" (seeds/002). Claim: learning facts from biographies goes in three phases — the loss on
attribute values first falls to the no-knowledge baseline (the model learns which values exist, not who
has which), stays there on a plateau with near-zero accuracy, then knowledge emerges; as it does,
the loss on individuals never seen rises above the baseline (confident hallucinations), although the
model stays less confident on them than on seen individuals.

Method. A world of N individuals with six attributes and 25 templates per attribute, 20 of them used
for training per (individual, attribute) and 5 held out (`learnlab.tasks.biographies`); every training
sequence is a fresh biography of a uniformly drawn individual (<bos> and six shuffled sentences, one
template each). A decoder-only pre-norm transformer (`EnsembleTransformer`; one member per seed, trained
together) learns next-token prediction with AdamW (β 0.9/0.95, weight decay 0.1 on matrices) and a
cosine learning-rate decay without warm-up. Every `eval_every` steps, fixed biographies are scored on
the value tokens: of seen individuals in training templates (memory) and in held-out templates
(knowledge), and of unseen individuals (hallucination). Attribute loss is the cross-entropy summed over
a value's tokens, averaged over the six attributes; attribute accuracy counts a value only if all its
tokens are greedy-correct; confidence is the maximum probability when predicting a value's first
token. Two no-knowledge levels: the pools' baseline, the mean log-size of the six value pools (the
source's), and the empirical baseline, the mean entropy of the values the N seen individuals actually
have (the date as day + month + year), which is what a model that knows the value distribution but no
individual achieves, and is lower when N is not well above the pools. Values are drawn from the first k
of each pool (`n_days`, `n_years`, `n_cities`, `n_universities`, `n_majors`, `n_companies`), so that N
can stay well above every pool. Phases are detected on each seed's held-out-template curve against the
empirical baseline (`learnlab.metrics.detect_phases`): phase 1 ends at the first evaluation with loss
within 10% of it; the plateau is the run of evaluations from there with the loss in that band and
accuracy below chance + 5 points (`chance_accuracy`: greedy guessing of the commonest values), and
counts only if it spans at least 3 evaluations with a loss slope under 1/5 of phase 1's descent rate
and under 1/5 of the knowledge phase's steepest descent after it; it ends at the first evaluation that
leaves it (knowledge). Hallucination is
measured as the rise of the unseen individuals' loss after the plateau over its minimum before.
One world (`world_seed`) serves every seed; seeds differ in initialisation and data order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import field_validator

from learnlab.config import check_arms
from learnlab.engine.context import RunContext
from learnlab.metrics import MIN_PLATEAU_EVALS, NEAR_BASELINE, PLATEAU_FLATNESS
from learnlab.protocols import biography_lm as bl
from learnlab.reporting.stats import Table, above, describe, finite_values, pct
from learnlab.studies.base import Claim, Study

ARMS = ("default",)


class Config(bl.BiographyConfig):
    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {**bl.SMOKE},
    # N = 800 in the laptop world (`bl.LAPTOP_POOLS`), 20x every non-name pool (days 28, months 12, 40 of
    # everything else), so the value distribution is learnt before any individual; 2 layers x 64, 1500 steps
    # of 32 biographies on a 2400-step cosine (the learning rate is >= 88% of its peak until the plateau
    # ends, ~step 500); an evaluation of 100 individuals every 30 steps, so the plateau spans 6-8 of them;
    # 5 seeds (the three-phase claim is judged in every seed). Measured on single seeds: phase 1 ends at step
    # 250-300, the plateau at 450-540, held-out accuracy 64% at step 1400 and 77% at 1600. Cost alone on 2
    # cores: 0.54 s a step and 2.9 s an evaluation.
    "laptop": {
        "seeds": 5,
        **bl.LAPTOP_POOLS,
        "n_individuals": 800,
        "eval_individuals": 100,
        "steps": 1500,
        "schedule_steps": 2400,
        "eval_every": 30,
    },  # fmt: skip
    "paper": {**bl.PAPER},  # Zucchet et al.: 64k individuals, 8 layers x 512, 16k steps of 128 sequences (GPU)
}


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """The protocol (`biography_lm.measure_as`): curves, phases, final knowledge and calibration."""
    return bl.measure_as("default", cfg, ctx)


# --- the published claims ------------------------------------------------------------------------------


def _three_phases(t: Table) -> tuple[bool | None, str]:
    """Every seed shows a plateau the detector accepts (loss flat in the band of the empirical baseline,
    accuracy < chance + 5 points, >= 3 evaluations) that ends, and knowledge follows: final held-out-template accuracy
    with its CI above 50%."""
    cells = t["default"]
    p1, p2 = (_values(cells[m]) for m in ("phase1_end_step", "plateau_end_step"))
    acc = cells["final_acc_heldout_templates"]
    lacking = [i for i, end in enumerate(p2) if not np.isfinite(end)]
    evidence = (
        f"phase 1 ends (loss within {100 * NEAR_BASELINE:g}% of the empirical baseline) by step {_mean(p1)}; "
        f"an accepted plateau (flat, accuracy < chance + 5 points) ends by step {_mean(p2)} in "
        f"{len(p2) - len(lacking)} of {len(p2)} seeds; "
        f"final held-out-template accuracy {pct(acc) if acc['mean'] is not None else 'n/a'}"
    )
    if lacking:
        return False, f"no accepted plateau that ends in seed index {', '.join(map(str, lacking))}; {evidence}"
    return above(acc, 0.5), evidence


def _hallucinates(t: Table) -> tuple[bool | None, str]:
    """The unseen individuals' loss rises after the plateau above its own pre-knowledge minimum (a CI above
    0): a rise, not a distance from the pool baseline, which a value-distribution mismatch alone creates."""
    cells = t["default"]
    rise = cells["unseen_loss_rise"]
    if finite_values(rise) < 2:
        return None, f"{finite_values(rise)} seed(s) left an accepted plateau: no interval on the rise"
    return above(rise), (
        f"after the plateau, the loss on unseen individuals rises {rise['mean']:+.2f} nats (95% CI "
        f"{rise['ci95'][0]:+.2f} to {rise['ci95'][1]:+.2f}, {finite_values(rise)} seeds) above its minimum before "
        f"knowledge; final unseen loss {_nats(cells, 'final_loss_unseen_individuals')} vs the empirical baseline "
        f"{_nats(cells, 'empirical_baseline')} (pool baseline {_nats(cells, 'no_knowledge_baseline')})"
    )


def _less_confident(t: Table) -> tuple[bool | None, str]:
    """A paired test over seeds: seen minus unseen confidence, its CI above 0."""
    gap = _paired(t, "conf_seen", "conf_unseen")
    held = above(gap)
    if held is None:
        return None, "fewer than 2 seeds with both confidences"
    return held, (
        f"max-probability on the first value token: seen {pct(t['default']['conf_seen'])}, unseen "
        f"{pct(t['default']['conf_unseen'])}; paired gap {100 * gap['mean']:+.1f} points "
        f"(95% CI {100 * gap['ci95'][0]:+.1f} to {100 * gap['ci95'][1]:+.1f})"
    )


def _paired(t: Table, a: str, b: str) -> dict[str, Any]:
    cells = t["default"]
    return describe(_values(cells[a]) - _values(cells[b]))


def _values(cell: dict[str, Any]) -> np.ndarray:
    return np.asarray(cell["values"], dtype=float)  # a missing seed (None) becomes NaN


def _mean(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    return f"{finite.mean():.0f}" if finite.size else "never"


def _nats(cells: dict[str, Any], metric: str) -> str:
    mean = cells.get(metric, {}).get("mean")
    return "n/a" if mean is None else f"{mean:.2f}"


CLAIMS = (
    Claim(
        "Three phases: loss falls to the no-knowledge baseline, plateaus with near-zero accuracy, "
        "then knowledge emerges (a plateau the detector accepts in every seed; held-out-template accuracy "
        "above 50%)",
        _three_phases,
        min_seeds=5,
    ),
    Claim(
        "Hallucination: as knowledge emerges, loss on unseen individuals rises (above its own minimum "
        "before knowledge)",
        _hallucinates,
    ),
    Claim("Models stay less confident on unseen individuals than on seen ones", _less_confident),
)


def notes(summary: dict[str, Any]) -> list[str]:
    t, c = summary["table"]["default"], summary["config"]
    empirical = t.get("empirical_baseline", {}).get("mean")
    lines = [
        f"No-knowledge baselines: {t['no_knowledge_baseline']['mean']:.3f} nats from the pools' sizes (the "
        "source: ≈ 6.78 with its pools)"
        + (
            f"; {empirical:.3f} nats from the values the N={c['n_individuals']} seen individuals have (their "
            "entropy: the level phases are detected against)."
            if empirical is not None
            else "."
        ),
        f"Memory vs knowledge at the end: accuracy {100 * t['final_acc_train_templates']['mean']:.1f}% on "
        f"training templates, {100 * t['final_acc_heldout_templates']['mean']:.1f}% on held-out templates, "
        f"{100 * t['final_acc_unseen_individuals']['mean']:.1f}% on unseen individuals (N={c['n_individuals']}).",
        f"Expected calibration error of the first value token: seen {t['ece_seen']['mean']:.3f}, "
        f"unseen {t['ece_unseen']['mean']:.3f}.",
    ]
    if "plateau_detected" in t:  # runs from before the plateau detector said why have no verdicts to show
        verdicts = [f"seed {seed}: {_phase_verdict(t, i)}" for i, seed in enumerate(summary["seeds"])]
        lines.append("Phase detector (held-out templates, empirical baseline): " + "; ".join(verdicts) + ".")
    return lines


def _phase_verdict(cells: dict[str, Any], i: int) -> str:
    """Seed i's phase detection in words, from the numbers the summary keeps (`detect_phases`' reason)."""
    names = ("phase1_end_step", "plateau_end_step", "plateau_evals", "plateau_flatness", "plateau_detected")
    p1, p2, count, flat, found = (cells[m]["values"][i] for m in names)
    after = cells["plateau_flatness_after"]["values"][i] if "plateau_flatness_after" in cells else None  # newer runs
    if p1 is None:
        return f"no plateau (the loss never came within {100 * NEAR_BASELINE:g}% of the baseline)"
    if found:
        until = f"to step {p2:.0f}" if p2 is not None else "to the end of training"
        slopes = f"slope {100 * flat:.0f}% of phase 1's" + (f", {100 * after:.0f}% of knowledge's" if after else "")
        return f"plateau from step {p1:.0f} {until} ({count:.0f} evaluations, {slopes})"
    if count < MIN_PLATEAU_EVALS:
        return f"no plateau ({count:.0f} evaluation(s) in the band from step {p1:.0f}; needs {MIN_PLATEAU_EVALS})"
    if flat is None:
        return f"no plateau (in the band from step {p1:.0f}, with no phase-1 descent to compare its slope with)"
    needs = f"needs < {100 * PLATEAU_FLATNESS:g}%"
    if flat >= PLATEAU_FLATNESS or after is None:
        return f"no plateau (slope {100 * flat:.0f}% of phase 1's descent in the band; {needs})"
    return f"no plateau (slope {100 * after:.0f}% of the knowledge phase's steepest descent after it; {needs})"


# --- figures -------------------------------------------------------------------------------------------


def _curves(metrics: pd.DataFrame, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean over seeds of eval metrics: name -> (steps, values)."""
    ev = metrics[(metrics.split == "eval") & metrics.metric.isin(names)]
    mean = ev.groupby(["metric", "step"])["value"].mean()
    return {n: (mean[n].index.to_numpy(), mean[n].to_numpy()) for n in names if n in mean.index.get_level_values(0)}


def _baselines(ax: Any, t: dict[str, Any]) -> None:
    """Both no-knowledge levels as horizontal lines: the pools' and (newer runs) the seen values' entropy."""
    ax.axhline(t["no_knowledge_baseline"]["mean"], color="black", ls="--", lw=1,
               label=f"pool baseline ({t['no_knowledge_baseline']['mean']:.2f})")  # fmt: skip
    empirical = t.get("empirical_baseline", {}).get("mean")
    if empirical is not None:
        ax.axhline(empirical, color="black", ls=":", lw=1.2, label=f"empirical baseline ({empirical:.2f})")


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"].get("default")
    if t is None:
        return {}
    n_seeds = len(summary.get("seeds", [])) or len(t["no_knowledge_baseline"]["values"])
    labels = {"train_templates": "seen, training templates", "heldout_templates": "seen, held-out templates",
              "unseen": "unseen individuals"}  # fmt: skip
    curves = _curves(metrics, [f"{q}_{n}" for q in ("loss", "acc", "conf") for n in labels])
    out: dict[str, Any] = {}

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    held = metrics[(metrics.split == "eval") & (metrics.metric == "loss_heldout_templates")]
    for _, seed_curve in held.groupby("seed"):
        ax.plot(seed_curve.step, seed_curve.value, color="C1", lw=0.6, alpha=0.35)
    for n, label in labels.items():
        if f"loss_{n}" in curves:
            ax.plot(*curves[f"loss_{n}"], label=label)
            ax2.plot(*curves[f"acc_{n}"], label=label)
    _baselines(ax, t)
    for axis in (ax, ax2):
        for metric, style in (("phase1_end_step", ":"), ("plateau_end_step", "-.")):
            if t[metric]["mean"] is not None:
                axis.axvline(t[metric]["mean"], color="grey", ls=style, lw=1)
    ax.set(xlabel="step", ylabel="attribute loss (nats)",
           title="Three phases (dotted: phase 1 ends; dash-dot: plateau ends)")  # fmt: skip
    ax2.set(xlabel="step", ylabel="attribute accuracy", ylim=(-0.02, 1.02), title="Attribute accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["phases"] = captioned(
        fig,
        f"Attribute loss (left) and accuracy (right) on the three evaluation sets, mean over {n_seeds} seeds "
        "(no band); thin lines: each seed's held-out-template loss. Horizontal lines: the pools' no-knowledge "
        "baseline (dashed) and the seen values' empirical one (dotted), against which phases are detected. "
        "Vertical lines: phase 1's end and the plateau's end, means over the seeds where they exist.",
    )

    if "loss_unseen" in curves:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        ax.plot(*curves["loss_unseen"], color="C2", label="unseen individuals")
        ax.plot(*curves["loss_heldout_templates"], color="C1", label="seen (held-out templates)")
        _baselines(ax, t)
        ax.set(xlabel="step", ylabel="attribute loss (nats)", title="Hallucination: loss on never-seen individuals")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["hallucination"] = captioned(
            fig,
            f"Attribute loss on individuals never trained on and on seen ones (held-out templates), mean over "
            f"{n_seeds} seeds (no band), with both no-knowledge baselines. The claim is tested on the rise of "
            "the unseen loss after the plateau over its own minimum before it, per seed.",
        )

    cal = metrics[metrics.split == "calibration"]
    if not cal.empty:
        total = cal.groupby(["metric", "step"])["value"]
        counts = total.sum()
        edges = np.linspace(0, 1, bl.CALIBRATION_BINS + 1)
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for who, colour in (("seen", "C1"), ("unseen", "C2")):
            c = counts[f"{who}_count"].to_numpy()
            ax.stairs(c / max(c.sum(), 1), edges, color=colour, label=who, lw=1.5)
            conf = cal[cal.metric == f"{who}_confidence"].groupby("step")["value"].mean()
            acc = cal[cal.metric == f"{who}_accuracy"].groupby("step")["value"].mean()
            ax2.plot(conf.to_numpy(), acc.to_numpy(), marker="o", color=colour, label=who)
        ax.set(xlabel="max probability on the first value token", ylabel="share of predictions", title="Confidence")
        ax2.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax2.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="Reliability diagram")
        for axis in (ax, ax2):
            axis.legend(fontsize=7)
        fig.tight_layout()
        out["calibration"] = captioned(
            fig,
            f"At the end of training, first value token: the share of predictions per confidence bin (counts "
            f"summed over {n_seeds} seeds) and each bin's accuracy against its mean confidence (mean over the "
            "seeds with predictions in the bin; no band). Diagonal: perfect calibration.",
        )
    return out


STUDY = Study(
    name="knowledge-acquisition",
    title="how a language model learns facts: three phases and hallucinations (C2, C7)",
    source="seeds/002 (Zucchet et al. 2025, How do language models learn facts?)",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=ARMS,
    measure=measure,
    claims=CLAIMS,
    headline=(("default", "final_acc_heldout_templates"), ("default", "plateau_end_step")),
    figures=figures,
    notes=notes,
    plain_metrics=(  # nats and counts, not fractions, even inside [0, 1]
        "no_knowledge_baseline",
        "empirical_baseline",
        "plateau_evals",
        "plateau_flatness",
        "plateau_flatness_after",
        "final_loss_heldout_templates",
        "final_loss_unseen_individuals",
        "unseen_loss_rise",
        "unseen_loss_peak_minus_baseline",
        "unseen_loss_min_minus_baseline",
        "unseen_loss_peak_minus_empirical",
        "unseen_loss_min_minus_empirical",
    ),
)
