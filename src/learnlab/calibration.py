"""Calibration of classifiers: binned calibration error, reliability bins and temperature scaling.

The calibration error follows Guo et al. (2017) and torchmetrics' definition, so that its reference
vectors pin ours: confidences fall in `n_bins` equal-width bins [b_i, b_{i+1}) of [0, 1] (a confidence of
exactly 1 in the top bin); a bin's gap is |accuracy - mean confidence|; the `l1` error (ECE) is the gaps'
mean weighted by the bins' shares of the predictions, `l2` the square root of the weighted mean of
squared gaps, `max` the largest gap of a non-empty bin (MCE). Top-label calibration takes a classifier's
largest softmax probability as its confidence and whether that class is the label as its correctness
(`top_label`). Temperature scaling (Guo et al. 2017) divides every logit by one scalar T > 0 fitted to
minimise the negative log-likelihood of a validation set; it leaves every argmax, hence accuracy, as is.
"""

from __future__ import annotations

import math

import numpy as np

NORMS = ("l1", "l2", "max")
LOG_T_BOUNDS = (-5.0, 5.0)  # T in [0.0067, 148]: far beyond any temperature a trained classifier needs


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> tuple[np.ndarray, ...]:
    """Per equal-width bin [b_i, b_{i+1}): mean confidence, accuracy (NaN when empty) and count."""
    if n_bins <= 0:
        raise ValueError(f"n_bins must be a positive number of bins, not {n_bins}")
    confidence, correct = np.asarray(confidence, float).ravel(), np.asarray(correct, float).ravel()
    keep = ~(np.isnan(confidence) | np.isnan(correct))
    confidence, correct = confidence[keep], correct[keep]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, correct, minlength=n_bins) / count
    return mean_conf, accuracy, count


def calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, norm: str = "l1") -> float:
    """The binned calibration error under `norm` (l1: ECE, l2, max: MCE); NaN with no prediction."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    mean_conf, accuracy, count = reliability_bins(confidence, correct, n_bins)
    if count.sum() == 0:
        return math.nan
    used = count > 0
    gap, weight = np.abs(accuracy[used] - mean_conf[used]), count[used] / count.sum()
    if norm == "l1":
        return float(np.sum(weight * gap))
    if norm == "l2":
        return float(np.sqrt(np.sum(weight * gap**2)))
    return float(gap.max())


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def top_label(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Confidence (largest softmax probability of logits / T) and correctness (its class is the label) of
    logits [N, C] against labels [N]."""
    logp = log_softmax(np.asarray(logits, float) / temperature)
    return np.exp(logp.max(axis=-1)), (logp.argmax(axis=-1) == np.asarray(labels)).astype(float)


def binary_logits(logit: np.ndarray) -> np.ndarray:
    """One logit per example (sigmoid: P(class 1)) as two-class logits [0, z]: softmax gives the same
    probabilities, and dividing by T scales z alone, as temperature scaling of a sigmoid does."""
    logit = np.asarray(logit, float)
    return np.stack([np.zeros_like(logit), logit], axis=-1)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits, float) / temperature)
    return float(-np.take_along_axis(logp, np.asarray(labels, dtype=np.int64)[:, None], axis=-1).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the validation NLL of softmax(logits / T): a bounded 1-D search over log T
    (the NLL is smooth in log T and the optimum a single scalar, so Brent's method needs no gradient)."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, float), np.asarray(labels)
    best = minimize_scalar(lambda s: nll(logits, labels, math.exp(s)), bounds=LOG_T_BOUNDS, method="bounded",
                           options={"xatol": 1e-6})  # fmt: skip
    return math.exp(float(best.x))
