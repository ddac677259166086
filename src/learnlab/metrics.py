"""Metric formulas shared by studies: per-attribute language-model scores, calibration, phase detection.

Each is a small pure function on tensors or arrays, checked on hand-computed cases in tests/test_metrics.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor


@dataclass
class AttributeScores:
    """Per member and sequence, for each attribute whose value is in the sequence ([K, B, A]; NaN where
    the value is absent): `loss` = cross-entropy summed over the value's tokens; `correct` = 1.0 if every
    value token is the greedy prediction; `confidence` = max probability when predicting the value's
    first token; `first_correct` = 1.0 if that first token is the greedy prediction."""

    loss: Tensor
    correct: Tensor
    confidence: Tensor
    first_correct: Tensor


def attribute_scores(logits: Tensor, tokens: Tensor, value_attr: Tensor, n_attributes: int) -> AttributeScores:
    """Scores of next-token predictions on attribute values.

    logits [K, B, T, V] predict tokens[..., t + 1] at position t; tokens [K, B, T] or [B, T];
    value_attr [B, T] (or [K, B, T]) is the attribute index of a value token, -1 elsewhere.
    """
    k = logits.shape[0]
    tokens, value_attr = (x.expand(k, *x.shape[-2:]) for x in (tokens, value_attr))
    logp = torch.log_softmax(logits[:, :, :-1].float(), dim=-1)
    target, attr = tokens[:, :, 1:], value_attr[:, :, 1:].long()
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [K, B, T-1]
    top_logp, top = logp.max(dim=-1)
    wrong = (top != target).float()
    is_value = attr >= 0
    first = is_value & ~torch.nn.functional.pad(is_value[..., :-1], (1, 0), value=False)
    slot = attr.clamp(min=0)  # scatter index; non-value positions contribute zeros
    shape = (*nll.shape[:2], n_attributes)

    def per_attribute(values: Tensor, mask: Tensor) -> Tensor:
        return values.new_zeros(shape).scatter_add_(-1, slot, torch.where(mask, values, 0.0))

    present = per_attribute(torch.ones_like(nll), is_value) > 0
    nan = torch.full(shape, math.nan, device=logits.device)
    return AttributeScores(
        loss=torch.where(present, per_attribute(nll, is_value), nan),
        correct=torch.where(present, (per_attribute(wrong, is_value) == 0).float(), nan),
        confidence=torch.where(present, per_attribute(top_logp.exp(), first), nan),
        first_correct=torch.where(present, 1.0 - per_attribute(wrong, first), nan),
    )


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the |accuracy - mean confidence| of equal-width confidence bins, weighted by their share of
    the predictions (Guo et al. 2017). Confidences in [0, 1]; a confidence of exactly 1 is in the top bin."""
    mean_conf, accuracy, count = reliability(confidence, correct, bins)
    if count.sum() == 0:
        return math.nan
    used = count > 0
    return float(np.sum(count[used] / count.sum() * np.abs(accuracy[used] - mean_conf[used])))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[np.ndarray, ...]:
    """Per equal-width confidence bin: mean confidence, accuracy and count (NaN for empty bins)."""
    confidence, correct = np.asarray(confidence, float).ravel(), np.asarray(correct, float).ravel()
    keep = ~(np.isnan(confidence) | np.isnan(correct))
    which = np.minimum((confidence[keep] * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, confidence[keep], minlength=bins) / count
        accuracy = np.bincount(which, correct[keep], minlength=bins) / count
    return mean_conf, accuracy, count


# --- the three phases of knowledge acquisition (Zucchet et al. 2025) ------------------------------------

# The band of the no-knowledge level: |loss - baseline| <= 10% of it. Wide enough for the evaluation noise
# of a few hundred values and for a model that has not quite fitted the value distribution, narrow enough
# that a loss still falling from ~3x the baseline, or already knowing a fifth of the facts, is outside.
NEAR_BASELINE = 0.10
# A plateau's accuracy stays under 5 points above chance (what greedy guessing from the value distribution
# alone gets, `biographies.chance_accuracy`): a few facts known by luck or by the evaluation's noise at most.
PLATEAU_ACCURACY = 0.05
# A plateau holds for at least 3 evaluations: its slope is then a fit with a residual, not a line through
# two points, and a curve that merely crosses the band between two evaluations is not a plateau.
MIN_PLATEAU_EVALS = 3
# On a plateau the loss changes at most 1/5 as fast as it fell in phase 1 (least-squares slope per step
# against phase 1's mean descent rate from the first evaluation, itself an underestimate of the initial
# fall), and at most 1/5 as fast as it falls once knowledge comes (the steepest least-squares slope over
# MIN_PLATEAU_EVALS consecutive evaluations from the plateau's last one on): a slow steady descent through
# the band, or a descent that merely speeds up gradually, is not a flat stretch between two falls.
PLATEAU_FLATNESS = 0.2


@dataclass
class Phases:
    """Where one evaluation curve's phases end; a boundary that is not crossed, or a plateau that the
    detector rejects, is NaN. `reason` says what was found ("plateau: ..." or "no plateau: ...")."""

    phase1_end_step: float  # first evaluated step with loss within NEAR_BASELINE of the baseline; NaN if never
    plateau_end_step: float  # the first evaluation after an accepted plateau; NaN if none, or if it never ended
    plateau: bool = False  # an accepted plateau (it may last to the end of training)
    plateau_evals: int = 0  # evaluations in the band with accuracy < chance + PLATEAU_ACCURACY, from phase 1's end
    flatness: float = math.nan  # |the plateau's loss slope| / phase 1's descent rate, where both were measured
    flatness_after: float = math.nan  # |the plateau's loss slope| / the knowledge phase's steepest descent
    reason: str = ""


def detect_phases(
    steps: np.ndarray, loss: np.ndarray, accuracy: np.ndarray, baseline: float, chance: float = 0.0
) -> Phases:
    """Phase boundaries from one model's evaluation curve (ascending steps), its no-knowledge loss and its
    no-knowledge (chance) accuracy.

    Phase 1 (learning which values exist) ends at the first evaluation with loss within the band of the
    baseline. The plateau is the run of evaluations from there with the loss inside the band and accuracy
    below chance + PLATEAU_ACCURACY; it ends (phase 3, knowledge) at the first evaluation that breaks the run. It
    counts as a plateau only if it spans MIN_PLATEAU_EVALS evaluations and its least-squares loss slope is
    below PLATEAU_FLATNESS times phase 1's mean descent rate, which needs phase 1 to span two evaluations,
    and below PLATEAU_FLATNESS times the knowledge phase's steepest descent when it ends before training
    does (a plateau that lasts to the end is judged against phase 1 alone)."""
    steps, loss, accuracy = (np.asarray(x, float) for x in (steps, loss, accuracy))
    band = NEAR_BASELINE * baseline
    inside = np.abs(loss - baseline) <= band
    if not inside.any():
        closest = np.nanmin(np.abs(loss - baseline)) if np.isfinite(loss).any() else math.nan
        return Phases(math.nan, math.nan, reason=f"no plateau: the loss never came within {band:.2f} nats of the "
                      f"baseline {baseline:.2f} (closest: {closest:.2f} away)")  # fmt: skip
    start = int(np.flatnonzero(inside)[0])
    flat = inside & (accuracy < chance + PLATEAU_ACCURACY)
    stop = start
    while stop < len(steps) and flat[stop]:
        stop += 1
    phase1_end, count = float(steps[start]), stop - start
    end = float(steps[stop]) if stop < len(steps) else math.nan

    def rejected(why: str) -> Phases:
        return Phases(phase1_end, math.nan, plateau_evals=count, reason=f"no plateau: {why}")

    if count < MIN_PLATEAU_EVALS:
        return rejected(f"{_plateau_exit(loss, accuracy, stop, baseline, band, chance)} after {count} evaluation(s) "
                        f"from phase 1's end at step {phase1_end:.0f} (needs {MIN_PLATEAU_EVALS})")  # fmt: skip
    if start == 0:
        return rejected("the loss was in the band at the first evaluation: phase 1's descent rate is unknown")
    descent = (loss[0] - loss[start]) / (steps[start] - steps[0])
    if descent <= 0:
        return rejected("the loss rose into the band instead of falling into it")
    slope = float(np.polyfit(steps[start:stop], loss[start:stop], 1)[0])
    flatness = abs(slope) / descent
    if flatness >= PLATEAU_FLATNESS:
        return replace(rejected(f"the loss moved {slope:+.2e} nats/step in the band, not under {PLATEAU_FLATNESS:g} of "
                        f"phase 1's descent ({descent:.2e}/step)"), flatness=flatness)  # fmt: skip
    flatness_after = math.nan  # a plateau that lasts to the end is judged against phase 1 alone
    if stop < len(steps):
        after = _steepest_descent(steps[stop - 1 :], loss[stop - 1 :])
        flatness_after = abs(slope) / after if after > 0 else math.inf
        if flatness_after >= PLATEAU_FLATNESS:
            why = (f"the loss moved {slope:+.2e} nats/step in the band, not under {PLATEAU_FLATNESS:g} of the "
                   f"knowledge phase's steepest descent after it ({max(after, 0):.2e}/step)")  # fmt: skip
            return replace(rejected(why), flatness=flatness, flatness_after=flatness_after)
    until = f"until step {end:.0f}" if stop < len(steps) else "to the end of training"
    reason = f"plateau: {count} evaluations from step {phase1_end:.0f} {until}, slope {slope:+.2e} nats/step"
    return Phases(phase1_end, end, True, count, flatness, flatness_after, reason)


def _steepest_descent(steps: np.ndarray, loss: np.ndarray) -> float:
    """The fastest fall, in nats per step, of a least-squares line over MIN_PLATEAU_EVALS consecutive
    evaluations (all of them when there are fewer); negative when the loss only rose."""
    width = min(MIN_PLATEAU_EVALS, len(steps))
    return max(-np.polyfit(steps[i : i + width], loss[i : i + width], 1)[0] for i in range(len(steps) - width + 1))


def _plateau_exit(
    loss: np.ndarray, accuracy: np.ndarray, stop: int, baseline: float, band: float, chance: float
) -> str:
    """Why the run of plateau evaluations stopped at index `stop`."""
    if stop >= len(loss):
        return "training ended"
    why = []
    if not abs(loss[stop] - baseline) <= band:
        why.append(f"the loss left the baseline band ({'below' if loss[stop] < baseline - band else 'above'})")
    if accuracy[stop] >= chance + PLATEAU_ACCURACY:
        why.append(f"accuracy reached {100 * (chance + PLATEAU_ACCURACY):.3g}%")
    return " and ".join(why)


# --- power laws -----------------------------------------------------------------------------------------


@dataclass
class PowerLaw:
    prefactor: float  # a in y = a * x^b
    exponent: float  # b
    r2: float  # of the straight-line fit on log-log axes
    exponent_boot: np.ndarray  # the exponent refitted on resamples of the seeds within each group (no lack of fit)
    exponent_se: float = math.nan  # the slope's standard error, from the residuals about the line
    exponent_ci: tuple[float, float] = (math.nan, math.nan)  # its t-interval, K - 2 degrees of freedom
    groups: int = 0  # K, the x values in the fit


def power_law_fit(
    groups: dict[float, np.ndarray], n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> PowerLaw:
    """Least-squares fit of log(mean y) = log a + b log x over groups {x: per-seed values of y}.

    The interval on b is the Student-t interval of a regression slope, b ± t(K − 2)·SE, with SE from the
    residuals of the K group means about the line. Those residuals carry both the seed noise of each mean
    and the curve's lack of fit (a bend on log-log axes), so a curve that is not a power law gets a wide
    interval, as it should; two groups leave no residual and no interval (NaN). `exponent_boot` resamples
    the seeds within each group and refits: it sees seed noise only, never lack of fit, and is kept for
    comparison. Non-finite values are left out; a group with none, or with a mean of 0, is dropped (a single
    0 is a measurement and stays in the mean); a resample in which some group's mean is 0 is skipped."""
    kept = {x: v[np.isfinite(v)] for x, v in ((x, np.asarray(v, float)) for x, v in groups.items())}
    kept = {x: v for x, v in kept.items() if v.size and v.mean() > 0}
    if len(kept) < 2:
        return PowerLaw(math.nan, math.nan, math.nan, np.array([]), groups=len(kept))
    log_x = np.log(np.array(list(kept)))

    def fit(means: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        b, log_a = np.polyfit(log_x, np.log(means), 1)
        residual = np.log(means) - (log_a + b * log_x)
        total = np.log(means) - np.log(means).mean()
        r2 = 1 - (residual @ residual) / (total @ total) if total @ total > 0 else 1.0
        return float(np.exp(log_a)), float(b), float(r2), residual

    a, b, r2, residual = fit(np.array([v.mean() for v in kept.values()]))
    se, ci = _slope_interval(log_x, residual, b, confidence)
    rng = np.random.default_rng(seed)
    resampled = (np.array([rng.choice(v, v.size).mean() for v in kept.values()]) for _ in range(n_boot))
    boot = np.array([fit(means)[1] for means in resampled if (means > 0).all()])
    return PowerLaw(a, b, r2, boot, se, ci, len(kept))


def _slope_interval(
    x: np.ndarray, residual: np.ndarray, b: float, confidence: float
) -> tuple[float, tuple[float, float]]:
    """The standard error of a least-squares slope from its residuals, and its Student-t interval."""
    from scipy import stats

    dof = x.size - 2
    if dof < 1:
        return math.nan, (math.nan, math.nan)
    se = math.sqrt(float(residual @ residual) / dof / float(((x - x.mean()) ** 2).sum()))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
    return se, (b - half, b + half)
