"""D3 `rare-combinations` — rare combinations of attributes are learned later.

Source: the generalization lecture deck (seeds/003), "rare is learned slower": with 1000 training images
of one combination of attributes and 10 of another, the rare one is drawn badly, needs ~10× longer to
learn, and an unseen combination worse still; stopping early discriminates against rare groups. The
measure of learning time is Park et al. (2024)'s: the number of steps until accuracy on a combination
first reaches 80%.

Method. Two attributes of `n_values` values each; a combination's label is a Latin square of the pair
(`learnlab.tasks.combinations`: neither attribute alone tells the label), and an example is a noisy
rendering of the two attribute prototypes. The n² − 1 trained combinations are dealt per seed at random
into `bins` frequency levels log-spaced from 1 to `frequency_span`, one combination (`held_out`) is never
trained on; batches draw combinations ∝ frequency, freshly rendered. One MLP per seed (an `EnsembleMLP`,
all seeds as one vectorised model) trains with Adam and cross-entropy; at `eval_points` log-spaced steps
(equal relative resolution for fast and slow combinations) every combination is scored on
`eval_per_combo` fixed renderings. Per combination, steps to 80% is the first evaluated step at which its
accuracy is ≥ 80%; one that never gets there is right-censored at the budget (known only to exceed it),
kept and counted, never dropped. Per seed and bin, the bin's steps is the median over its combinations
(censored ones count as later than every step: a bin whose median is censored has no value, and its
censored share is reported). Per seed: Spearman's ρ between the bins' frequencies and their medians
(censored medians tie above every observed one, which is all a rank needs), and the rare/common ratio,
the rarest bin's median over the commonest's (a censored rarest median enters at the budget, so that
seed's ratio is a lower bound, flagged in `ratio_censored`; a censored commonest median leaves the seed
without a ratio); the claim tests its log10 (a ratio's natural scale: the t-interval of the mean log is
that of the geometric mean), which the table also gives. Both get the Student-t 95% interval over seeds
(seeds are the independent units; the combinations inside a seed share one model). Beyond the deck, per
seed, `steps_exponent`: the least-squares slope of log steps against log frequency over the bins (only
where no bin's median is censored: dropping the slow bins would flatten it; −1 is steps ∝ 1/frequency,
the deck's 10x per 100x is −0.5), and per bin `examples_to_80`: steps times the expected examples of a
combination per step. A first crossing can be a fluke (the untrained model saying one label everywhere is
right on the combinations with that label): `reversed` counts the combinations that reached 80% and fell
below 50% later, and `settled_steps_to_80` / `settled_exponent` repeat the medians and slope counting the
first crossing after the last evaluation below 50%. Early stop: the first evaluation at which accuracy on the
training distribution (combinations weighted by frequency) reaches 80%, where the model looks trained;
there, the commonest bin's accuracy minus the rarest's (`early_gap`). The held-out combination's final
accuracy stands beside chance (1/n).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.engine.train import log_spaced, train_ensemble
from learnlab.models.mlp import EnsembleMLP
from learnlab.protocols.measurements import member_rows
from learnlab.reporting.stats import Table, above, below
from learnlab.studies.base import Claim, Study
from learnlab.tasks import combinations as cb

THRESHOLD = 0.8  # Park et al. (2024): a combination is learned when its accuracy first reaches 80%
PUBLISHED_RATIO = 10.0  # the deck: rare combinations (10 examples against 1000) need ~10x longer
PUBLISHED_SPAN = 100.0  # ... at a frequency ratio of 1000 / 10
RHO_BOUND = -0.7  # steps-to-80% falls with frequency: the 95% CI of Spearman's rho below -0.7
MIN_BINS = 10  # ... over at least this many frequency bins
OVERALL, HELD_OUT = "overall", "held-out"


class Config(StudyConfig):
    seeds: int = Field(20, ge=1, description="independent repetitions (one MLP each, all trained as one ensemble)")
    n_values: int = Field(8, ge=2, le=64, description="values per attribute: n x n combinations, n labels")
    dim: int = Field(16, gt=0, description="dimension of each attribute's prototype vector")
    noise: float = Field(0.2, ge=0, description="std of the Gaussian noise added to each prototype coordinate")
    bins: int = Field(12, ge=2, description="frequency levels, log-spaced from 1 to frequency_span")
    frequency_span: float = Field(100.0, ge=1, description="commonest over rarest combination's frequency")
    held_out: list[int] = Field(
        [0, 0], min_length=2, max_length=2, description="the combination [a, b] never trained on"
    )
    hidden: int = Field(64, gt=0, description="hidden units of the one-hidden-layer MLP")
    batch_size: int = Field(64, gt=0, description="examples per step per seed")
    lr: float = Field(3e-3, gt=0, description="Adam learning rate (constant)")
    steps: int = Field(60000, gt=0, description="training steps (the budget a censored combination exceeds)")
    eval_points: int = Field(120, ge=2, description="log-spaced evaluations from step 1 to the last (plus step 0)")
    eval_per_combo: int = Field(64, gt=0, description="fixed renderings per combination at each evaluation")

    @model_validator(mode="after")
    def _task_fits(self) -> Config:
        try:
            cb.check(self.n_values, self.bins, self.frequency_span, (self.held_out[0], self.held_out[1]))
        except ValueError as err:
            raise ValueError(str(err)) from None
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "seeds": 2,
        "n_values": 4,
        "bins": 3,
        "frequency_span": 10.0,
        "hidden": 16,
        "steps": 150,
        "eval_points": 15,
        "eval_per_combo": 16,
    },
    # 8x8 combinations in 12 bins over 100x (the deck's 10 vs 1000). At 8 seeds x 30k steps the rarest bin's
    # median reached 80% at 6k-21k steps with 15% of its combinations censored; at 60k, 5%. Training runs on one
    # thread: 10 seeds x 60k steps took 110 s of CPU (0.18 ms per seed-step), so 20 seeds ~3.7 min alone.
    "laptop": {"seeds": 20, "steps": 60000},
    "paper": {"seeds": 20, "n_values": 12, "bins": 20, "frequency_span": 1000.0, "steps": 200000, "eval_points": 200},
}


def bin_arm(i: int) -> str:
    return f"bin-{i:02d}"


# --- the protocol -----------------------------------------------------------------------------------------------


def cross_entropy(model: EnsembleMLP, data: tuple[Tensor, Tensor]) -> Tensor:
    x, y = data
    logits = model(x)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(-1)


def per_combination_accuracy(x: Tensor, y: Tensor, combos: int) -> Any:
    """evaluate(model) -> {"acc": [K, combos]}: each member's accuracy on each combination's renderings."""

    def evaluate(model: EnsembleMLP) -> dict[str, Tensor]:
        right = (model(x).argmax(-1) == y).float()
        return {"acc": right.view(right.shape[0], combos, -1).mean(-1)}

    return evaluate


def build(cfg: Config, seeds: list[int]) -> EnsembleMLP:
    model = EnsembleMLP(len(seeds), [2 * cfg.dim, cfg.hidden, cfg.n_values])
    model.reset_parameters([generator(s, "combinations-init") for s in seeds])
    return model.to(cfg.device)


def tasks_of(cfg: Config, seeds: list[int]) -> list[cb.Combinations]:
    held = (cfg.held_out[0], cfg.held_out[1])
    return [cb.make(s, cfg.n_values, cfg.dim, cfg.bins, cfg.frequency_span, held) for s in seeds]


def train(cfg: Config, ctx: RunContext) -> tuple[list[cb.Combinations], EnsembleMLP, np.ndarray, np.ndarray, Tensor]:
    """Train one MLP per seed as one ensemble; (tasks, model, eval steps [E], accuracy [E, K, n²], losses)."""
    seeds = cfg.seed_list
    tasks = tasks_of(cfg, seeds)
    sets = [cb.eval_set(t, cfg.eval_per_combo, cfg.noise, s) for t, s in zip(tasks, seeds, strict=True)]
    x = torch.stack([s[0] for s in sets]).to(cfg.device)
    y = torch.stack([s[1] for s in sets]).to(cfg.device)
    model = build(cfg, seeds)
    with ctx.progress(f"rare-combinations · {len(seeds)} seeds", cfg.steps) as update:
        log = train_ensemble(
            model,
            cb.Batches(tasks, seeds, cfg.batch_size, cfg.noise, cfg.device),
            cross_entropy,
            steps=cfg.steps,
            lr=cfg.lr,
            evaluate=per_combination_accuracy(x, y, cfg.n_values**2),
            eval_steps=log_spaced(cfg.steps, cfg.eval_points),
            on_step=update,
            checkpoint=ctx.checkpoint("mlp"),
        )
    ctx.keep_model("mlp", model, [("mlp", s) for s in seeds])
    steps = np.array([s for s, _ in log.evals])
    acc = np.stack([m["acc"].numpy() for _, m in log.evals])
    return tasks, model, steps, acc, log.losses


def steps_to(acc: np.ndarray, steps: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The first evaluated step at which accuracy [E, ...] is ≥ threshold, per [...]; inf where it never is
    (right-censored: known only to lie beyond the last evaluation)."""
    reached = acc >= threshold
    return np.where(reached.any(0), steps[reached.argmax(0)], np.inf).astype(float)


def steps_to_settled(
    acc: np.ndarray, steps: np.ndarray, threshold: float = THRESHOLD, floor: float = 0.5
) -> np.ndarray:
    """Like `steps_to`, but the first crossing after the last evaluation below `floor`: a fluke crossing that
    falls back (see `reversed_share`) does not count (inf: censored)."""
    below = acc < floor
    last_below = np.where(below.any(0), below.shape[0] - 1 - below[::-1].argmax(0), -1)
    index = np.arange(acc.shape[0]).reshape(-1, *[1] * (acc.ndim - 1))
    return steps_to(np.where(index > last_below, acc, 0.0), steps, threshold)


def median_exponent(levels: np.ndarray, medians: np.ndarray) -> float:
    """The least-squares slope of log median steps against log frequency; NaN if a median is censored."""
    fits = np.isfinite(medians).all() and np.ptp(levels) > 0
    return float(np.polyfit(np.log(levels), np.log(medians), 1)[0]) if fits else np.nan


def reversed_share(acc: np.ndarray, threshold: float = THRESHOLD, floor: float = 0.5) -> np.ndarray:
    """Per [...]: whether accuracy [E, ...] reached the threshold and later fell below `floor` (a first
    crossing that was a fluke: e.g. a rare combination whose label the untrained model says for everything)."""
    reached = np.maximum.accumulate(acc >= threshold, axis=0)
    return ((acc < floor) & reached).any(0)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ with average ranks for ties (inf ties above every finite value); NaN if y is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def seed_summary(task: cb.Combinations, first: np.ndarray, acc: np.ndarray, steps: np.ndarray, batch: int) -> dict:
    """One seed's numbers from its steps-to-80% per combination [n²] and accuracy curves [E, n²] (and the
    settled steps, `steps_to_settled`, from the curves):
    {"bins": {metric: [bins]}, "overall": {metric: value}, "held_out": {metric: value}} (NaN: none)."""
    bins, budget = task.levels.size, float(steps[-1])
    bin_of, probs = task.bin.reshape(-1), task.probabilities.reshape(-1)
    medians = np.array([np.median(first[bin_of == i]) for i in range(bins)])  # inf: the median is censored
    weighted = (acc * probs).sum(-1)  # accuracy on the training distribution, per evaluation
    early = int(np.argmax(weighted >= THRESHOLD)) if (weighted >= THRESHOLD).any() else None
    acc_bins = np.stack([acc[:, bin_of == i].mean(-1) for i in range(bins)], axis=-1)  # [E, bins]
    finite = np.where(np.isfinite(medians), medians, np.nan)
    share = np.array([probs[bin_of == i][0] for i in range(bins)])
    rare, common = medians[0], medians[-1]
    ratio = np.nan if not np.isfinite(common) else min(rare, budget) / common
    settled = steps_to_settled(acc, steps)
    settled_medians = np.array([np.median(settled[bin_of == i]) for i in range(bins)])
    held = task.held_out[0] * task.n + task.held_out[1]
    return {
        "bins": {
            "frequency": task.levels,
            "steps_to_80": finite,
            "examples_to_80": finite * batch * share,
            "settled_steps_to_80": np.where(np.isfinite(settled_medians), settled_medians, np.nan),
            "censored": np.array([np.isinf(first[bin_of == i]).mean() for i in range(bins)]),
            "acc_early": acc_bins[early] if early is not None else np.full(bins, np.nan),
            "acc_final": acc_bins[-1],
        },
        "overall": {
            "spearman_rho": spearman(task.levels, medians),
            "rare_common_ratio": ratio,
            "log10_rare_common_ratio": np.log10(ratio) if ratio > 0 else np.nan,
            "ratio_censored": float(np.isinf(rare)) if np.isfinite(ratio) else np.nan,
            "early_step": float(steps[early]) if early is not None else np.nan,
            "early_gap": float(acc_bins[early, -1] - acc_bins[early, 0]) if early is not None else np.nan,
            "final_acc": float(acc[-1, bin_of >= 0].mean()),
            "censored": float(np.isinf(first[bin_of >= 0]).mean()),
            "reversed": float(reversed_share(acc[:, bin_of >= 0]).mean()),
            "steps_exponent": median_exponent(task.levels, medians),
            "settled_exponent": median_exponent(task.levels, settled_medians),
            "frequency_span": float(task.levels[-1] / task.levels[0]),
        },
        "held_out": {"accuracy": float(acc[-1, held]), "chance": 1.0 / task.n},
    }


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """Train, then score every combination's steps to 80%, per bin and per seed (see the method)."""
    seeds = cfg.seed_list
    tasks, _, steps, acc, losses = train(cfg, ctx)
    first = steps_to(acc, steps)  # [K, n²]
    members = [("mlp", s) for s in seeds]
    frames = [member_rows(members, list(range(1, len(losses) + 1)), losses.numpy(), "train", "loss")]
    summaries = [seed_summary(t, first[k], acc[:, k], steps, cfg.batch_size) for k, t in enumerate(tasks)]
    last = [int(steps[-1])]
    for i in range(cfg.bins):
        rows = [(bin_arm(i), s) for s in seeds]
        curve = np.stack([acc[:, k, t.bin.reshape(-1) == i].mean(-1) for k, t in enumerate(tasks)], axis=-1)
        frames.append(member_rows(rows, list(steps), curve, "eval", "accuracy"))
        for metric in summaries[0]["bins"]:
            frames.append(member_rows(rows, last, [[s["bins"][metric][i] for s in summaries]], "test", metric))
    held = [t.held_out[0] * t.n + t.held_out[1] for t in tasks]
    held_rows = [(HELD_OUT, s) for s in seeds]
    frames.append(member_rows(held_rows, list(steps), acc[:, range(len(seeds)), held], "eval", "accuracy"))
    for part, arm in (("held_out", HELD_OUT), ("overall", OVERALL)):
        rows = [(arm, s) for s in seeds]
        for metric in summaries[0][part]:
            frames.append(member_rows(rows, last, [[s[part][metric] for s in summaries]], "test", metric))
    frames.append(combination_rows(tasks, seeds, first, steps_to_settled(acc, steps), acc[-1], last[0]))
    return pd.concat(frames, ignore_index=True)


def combination_rows(
    tasks: list[cb.Combinations], seeds: list[int], first: np.ndarray, settled: np.ndarray, final: np.ndarray, step: int
) -> pd.DataFrame:
    """Split "combination": per seed and combination `combo-a-b`, its frequency (0: held out), bin, steps
    to 80% (first and settled crossing; NaN where censored), whether it was censored, and its final accuracy."""
    rows = []
    for k, (task, seed) in enumerate(zip(tasks, seeds, strict=True)):
        weights, bins = task.weights.reshape(-1), task.bin.reshape(-1)
        for c in range(task.n**2):
            arm = f"combo-{c // task.n}-{c % task.n}"
            censored = not np.isfinite(first[k, c])
            late = settled[k, c] if np.isfinite(settled[k, c]) else np.nan
            values = {"frequency": weights[c], "bin": bins[c], "steps_to_80": np.nan if censored else first[k, c],
                      "settled_steps_to_80": late,
                      "censored": float(censored), "acc_final": final[k, c]}  # fmt: skip
            rows += [(arm, seed, step, "combination", m, float(v)) for m, v in values.items()]
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "split", "metric", "value"])


# --- the published claims ---------------------------------------------------------------------------------------

REFERENCE: Table = {
    OVERALL: {
        "rare_common_ratio": {"mean": PUBLISHED_RATIO},
        "log10_rare_common_ratio": {"mean": float(np.log10(PUBLISHED_RATIO))},
    }
}


def _bins(t: Table) -> int:
    return sum(a.startswith("bin-") for a in t)


def _ci(cell: dict[str, Any], digits: int = 2) -> str:
    if cell["mean"] is None:
        return "none"
    lo, hi = cell["ci95"]
    return f"{cell['mean']:.{digits}f} (95% CI {lo:.{digits}f} to {hi:.{digits}f})"


def _censoring(t: Table) -> str:
    cells = [(a, c["censored"]) for a, c in t.items() if a.startswith("bin-") and "censored" in c]
    hit = [f"{a} {100 * c['mean']:.0f}%" for a, c in cells if c["mean"]]
    return "censored combinations (never at 80%): " + (", ".join(hit) if hit else "none")


def _falls_with_frequency(t: Table) -> tuple[bool | None, str]:
    """A trend over ≥ MIN_BINS bins: each seed's Spearman ρ (bins' frequency against their median steps),
    and the t-interval of ρ over seeds wholly below RHO_BOUND."""
    rho, bins = t[OVERALL]["spearman_rho"], _bins(t)
    evidence = f"Spearman ρ {_ci(rho)} over {bins} frequency bins, {len(rho['values'])} seeds; {_censoring(t)}"
    if rho.get("missing"):
        evidence += f"; {rho['missing']} seed(s) with no ρ (every bin's median censored alike)"
    if bins < MIN_BINS:
        return None, evidence + f"; a trend needs ≥ {MIN_BINS} bins"
    return below(rho, RHO_BOUND), evidence + f"; judged: CI below {RHO_BOUND}"


def _ratio(t: Table) -> tuple[bool | None, str]:
    """The rarest bin's median steps over the commonest's, on the log scale: the t-interval of its log10
    over seeds wholly above 0 (the geometric mean's CI above 1); set beside the deck's ~10x. A censored
    rarest median makes a seed's ratio a lower bound, which "above 1" may use: the true ratio is larger."""
    overall = t[OVERALL]
    cell, log = overall["rare_common_ratio"], overall["log10_rare_common_ratio"]
    span = overall.get("frequency_span", {}).get("mean")
    evidence = f"rare/common steps-to-80% ratio: arithmetic mean {_ci(cell, 1)}"
    if log["mean"] is not None:
        lo, hi = log["ci95"]
        evidence += f", geometric mean {10 ** log['mean']:.1f} (95% CI {10**lo:.1f} to {10**hi:.1f})"
    if span is not None:
        evidence += f" at a {span:.0f}x frequency ratio"
    if (c := overall.get("ratio_censored")) and c["mean"]:
        evidence += f"; in {sum(v == 1 for v in c['values'])} seed(s) the rarest bin never reached 80%: a lower bound"
    if log.get("missing"):
        evidence += f"; {log['missing']} seed(s) without a ratio (the commonest bin never reached 80%)"
    if log["mean"] is not None:
        lo, hi = (10**v for v in log["ci95"])
        where = "inside" if lo <= PUBLISHED_RATIO <= hi else "below" if lo > PUBLISHED_RATIO else "above"
        evidence += f"; the deck's ~{PUBLISHED_RATIO:.0f}x (at {PUBLISHED_SPAN:.0f}x) is {where} the geometric CI"
    return above(log, 0.0), evidence + "; judged: the geometric mean's CI above 1"


CLAIMS = (
    Claim(
        f"Steps to 80% fall with frequency: Spearman ρ between a bin's frequency and its median steps to 80%, "
        f"95% CI over seeds below {RHO_BOUND}, over ≥ {MIN_BINS} frequency bins",
        _falls_with_frequency,
        min_seeds=5,
    ),
    Claim(
        f"Rare combinations need longer: the rarest bin's steps to 80% over the commonest's, 95% CI of the "
        "geometric mean over seeds above 1 "
        f"(the deck: ~{PUBLISHED_RATIO:.0f}x at {PUBLISHED_SPAN:.0f}x fewer examples)",
        _ratio,
        min_seeds=5,
    ),
)


# --- notes and figures ------------------------------------------------------------------------------------------


def _bin_cells(t: Table) -> list[tuple[str, dict[str, Any]]]:
    return sorted((a, c) for a, c in t.items() if a.startswith("bin-"))


def notes(summary: dict[str, Any]) -> list[str]:
    t, cfg = summary["table"], summary["config"]
    out = []

    def steps(c: dict[str, Any]) -> str:
        m = c["steps_to_80"]["mean"]
        return "censored" if m is None else f"{m:.0f}"

    per_bin = [f"{c['frequency']['mean']:.3g}x: {steps(c)}" for _, c in _bin_cells(t)]
    out.append(f"Median steps to 80% per bin (mean over seeds), by relative frequency: {', '.join(per_bin)}.")
    examples = [c["examples_to_80"]["mean"] for _, c in _bin_cells(t) if c["examples_to_80"]["mean"] is not None]
    if len(examples) >= 2:
        out.append(
            f"Examples of a combination seen before it reached 80%: {examples[0]:.0f} in the rarest bin that got "
            f"there, {examples[-1]:.0f} in the commonest; equal counts would make steps ∝ 1/frequency."
        )
    o = t.get(OVERALL, {})
    if (e := o.get("steps_exponent")) and e["mean"] is not None:
        out.append(
            f"Steps to 80% ∝ frequency^b with b = {_ci(e)} per seed ({e.get('missing', 0)} seed(s) with a censored "
            "bin median left without b); b = −1 would be learning by example count alone, the deck's 10x per 100x "
            "is b = −0.5."
        )
    if (gap := o.get("early_gap")) and gap["mean"] is not None:
        lo, hi = gap["ci95"]
        out.append(
            f"Stopping when training-distribution accuracy first reaches 80% (step {o['early_step']['mean']:.0f} "
            f"on average), the commonest bin leads the rarest by {100 * gap['mean']:+.1f} points "
            f"(95% CI {100 * lo:+.1f} to {100 * hi:+.1f})."
        )
    if (h := t.get(HELD_OUT, {}).get("accuracy")) and h["mean"] is not None:
        out.append(
            f"The held-out combination {cfg['held_out']}, never trained on: final accuracy {_ci(h, 3)} against "
            f"chance {1 / cfg['n_values']:.3f}: the label square is not inferred from the other combinations."
        )
    if (r := o.get("reversed")) and r["mean"]:
        settled = o.get("settled_exponent", {})
        tail = (
            f" Counting instead the first crossing after the last evaluation below 50% (`settled_steps_to_80`), "
            f"b = {_ci(settled)}."
            if settled.get("mean") is not None
            else ""
        )
        out.append(
            f"{100 * r['mean']:.1f}% of the trained combinations (mean over seeds) reached 80% and later fell below "
            "50%: a first crossing can be a fluke (early on, the untrained model says one label for everything, "
            "right for the combinations that have it). Park et al.'s definition counts the first crossing; the "
            "bins' medians are robust to a few such combinations, single dots in the figure are not." + tail
        )
    out.append(
        f"A combination that never reached 80% within {cfg['steps']} steps is right-censored: kept, and counted "
        "as later than every step in the ranks; a bin whose median is censored has no steps value."
    )
    return out


def _t_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% t-interval over axis 0 (rows: seeds), NaN-free columns."""
    from scipy import stats

    n = values.shape[0]
    mean = values.mean(0)
    half = stats.t.ppf(0.975, n - 1) * values.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, mean - half, mean + half


def steps_figure(summary: dict[str, Any], metrics: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    combos = metrics[metrics.split == "combination"].pivot_table(
        index=["arm", "seed"], columns="metric", values="value"
    )
    combos = combos[combos["frequency"] > 0]
    cells = _bin_cells(summary["table"])
    if combos.empty or not cells:
        return None
    budget = summary["config"]["steps"]
    fig, ax = plt.subplots(figsize=(5.6, 4))
    jitter = np.exp(np.random.default_rng(0).uniform(-0.06, 0.06, len(combos)))
    done = combos["censored"] == 0
    ax.scatter((combos["frequency"] * jitter)[done], combos["steps_to_80"][done], s=6, alpha=0.25, color="C0",
               label="one combination, one seed")  # fmt: skip
    if (~done).any():
        ax.scatter((combos["frequency"] * jitter)[~done], np.full((~done).sum(), budget), marker="^", s=12,
                   color="C3", alpha=0.5, label=f"never reached 80% (> {budget} steps)")  # fmt: skip
    freq = np.array([c["frequency"]["mean"] for _, c in cells])
    mean = np.array([np.nan if c["steps_to_80"]["mean"] is None else c["steps_to_80"]["mean"] for _, c in cells])
    ci = np.array(
        [[np.nan, np.nan] if c["steps_to_80"]["mean"] is None else c["steps_to_80"]["ci95"] for _, c in cells]
    )
    ax.plot(freq, mean, "o-", color="k", label="bin median, mean over seeds")
    ax.fill_between(freq, np.clip(ci[:, 0], 1, None), ci[:, 1], color="k", alpha=0.15, label="95% CI (t, seeds)")
    ok = np.isfinite(mean)
    if ok.any():
        anchor_f, anchor_s = freq[ok][-1], mean[ok][-1]
        grid = np.geomspace(freq.min(), freq.max(), 30)
        ax.plot(grid, anchor_s * (grid / anchor_f) ** -0.5, "--", color="grey", label="deck: 10x per 100x (slope −½)")
        ax.plot(grid, anchor_s * (grid / anchor_f) ** -1.0, ":", color="grey", label="steps ∝ 1/frequency")
    ax.set(xscale="log", yscale="log", xlabel="relative frequency of the combination",
           ylabel="steps to 80% accuracy", title="Steps to 80% against frequency")  # fmt: skip
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    caption = (
        f"Steps until a combination's accuracy first reaches 80% against its training frequency (log-log), "
        f"{len(summary['seeds'])} seeds: dots are single combinations (jittered sideways), red triangles ones "
        f"that never got there within {budget} steps (censored, drawn at the budget); black, each bin's median "
        "averaged over seeds with the 95% t-interval over seeds (bins whose median is censored in some seed "
        "average the others); grey lines through the commonest bin: the deck's 10x per 100x and steps ∝ "
        "1/frequency."
    )
    return captioned(fig, caption)


def curves_figure(summary: dict[str, Any], metrics: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    ev = metrics[(metrics.split == "eval") & (metrics.metric == "accuracy")]
    cells = dict(_bin_cells(summary["table"]))
    if ev.empty or not cells:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = plt.get_cmap("viridis")
    for j, arm in enumerate(sorted(cells)):
        wide = ev[ev.arm == arm].pivot_table(index="seed", columns="step", values="value")
        steps = np.maximum(wide.columns.to_numpy(), 0.5)
        mean, lo, hi = _t_band(wide.to_numpy())
        color = cmap(j / max(len(cells) - 1, 1))
        ax.plot(steps, mean, color=color, lw=1.2, label=f"{cells[arm]['frequency']['mean']:.3g}x")
        ax.fill_between(steps, lo, hi, color=color, alpha=0.12)
    held = ev[ev.arm == HELD_OUT].pivot_table(index="seed", columns="step", values="value")
    if not held.empty:
        ax.plot(np.maximum(held.columns.to_numpy(), 0.5), held.to_numpy().mean(0), "k--", lw=1, label="held out")
    ax.axhline(THRESHOLD, color="red", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy per frequency bin")
    ax.legend(fontsize=6, ncol=2, title="frequency", title_fontsize=7)
    fig.tight_layout()
    caption = (
        f"Accuracy on each frequency bin's combinations (fixed renderings) against training steps (log x; step 0 "
        f"drawn at 0.5), mean over {len(summary['seeds'])} seeds with the 95% t-interval over seeds as a band; "
        "colour from rare (purple) to common (yellow); dashed black: the held-out combination; dotted red: 80%."
    )
    return captioned(fig, caption)


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """Ours say more than the shared bar chart of every cell ("final": None drops it)."""
    out = {"steps_vs_frequency": steps_figure(summary, metrics), "accuracy_by_bin": curves_figure(summary, metrics)}
    return {"final": None, **{k: v for k, v in out.items() if v is not None}}


STUDY = Study(
    name="rare-combinations",
    title="rare attribute combinations learn slower: steps to 80% against frequency (D3)",
    source="seeds/003 (generalization lecture deck), 'rare is learned slower'; Park et al. (2024)",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=((OVERALL, "spearman_rho"), (OVERALL, "rare_common_ratio"), (HELD_OUT, "accuracy")),
    figures=figures,
    notes=notes,
    plain_metrics=(
        "frequency",
        "steps_to_80",
        "examples_to_80",
        "spearman_rho",
        "rare_common_ratio",
        "log10_rare_common_ratio",
        "steps_exponent",
        "settled_steps_to_80",
        "settled_exponent",
        "early_step",
        "frequency_span",
    ),
    point_metrics=("early_gap",),
)
