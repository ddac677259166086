"""Many 1-D Gaussian mixtures fitted at once by EM: the model-collapse chains refit thousands of them.

Why not a loop of scikit-learn's `GaussianMixture`: one fit of 1 000 points took 19 ms there (k-means
start, validation, EM steps in Python; one thread), and a chain study refits chains x arms x generations
of them; here all fits of one data size run as one array computation ([B, M] data, [B, K] parameters),
each EM step a handful of numpy operations. `benchmarks/bench_collapse.py` measures the ratio on the
same chains (16x with one thread each side on 2 CPU cores; part of it is the warm start, which needs fewer
EM steps than scikit-learn's k-means start).

The EM is scikit-learn's, step for step (`covariance_type="full"` in 1-D): E-step with the current
parameters, M-step with `nk + 10·eps` and `reg_covar` added to each variance, stop when the mean
log-likelihood changes by less than `tol`; a fit that has converged is frozen while the others go on.
`tests/test_generative_collapse.py` checks the parameters against scikit-learn's on the same data and
initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

LOG_2PI = float(np.log(2 * np.pi))
EPS = 10 * np.finfo(np.float64).eps  # scikit-learn's guard on a component's weight


@dataclass
class Mixture:
    """B 1-D mixtures of K Gaussians: weights, means and variances, each [B, K]."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def component_log_density(self, x: np.ndarray) -> np.ndarray:
        """log(w_k · N(x; m_k, v_k)) for x [B, M]: [B, K, M] (K before M: the sums over K are then
        elementwise operations on long rows, several times faster than reductions over a short last axis)."""
        w, m, v = (a[:, :, None] for a in (self.weights, self.means, self.variances))
        return (np.log(w) - 0.5 * (LOG_2PI + np.log(v))) - (x[:, None, :] - m) ** 2 / (2 * v)

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """Mean log-density of each row of x [B, M] under its own mixture: [B]."""
        return _logsumexp_k(self.component_log_density(x)).mean(axis=1)

    def variance(self) -> np.ndarray:
        """Each mixture's total variance: Σ w (v + m²) − (Σ w m)²."""
        mean = (self.weights * self.means).sum(1)
        return (self.weights * (self.variances + self.means**2)).sum(1) - mean**2

    def tail_mass(self, center: float, width: float) -> np.ndarray:
        """P(|x − center| > width) under each mixture, exactly (normal CDFs)."""
        sd = np.sqrt(self.variances)
        low = ndtr((center - width - self.means) / sd)
        high = ndtr((self.means - center - width) / sd)
        return (self.weights * (low + high)).sum(1)

    def sample(self, uniforms: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Samples from given noise (uniforms pick the component, normals place the point), both [B, M]:
        the caller draws the noise, so each chain's randomness comes from its own generator."""
        cumulative = np.cumsum(self.weights, axis=1)
        cumulative[:, -1] = 1.0  # rounding must not leave a uniform above the last component
        k = (uniforms[..., None] > cumulative[:, None, :]).sum(2)
        take = np.take_along_axis
        return take(self.means, k, 1) + np.sqrt(take(self.variances, k, 1)) * normals

    def select(self, rows: np.ndarray) -> Mixture:
        return Mixture(self.weights[rows], self.means[rows], self.variances[rows])


def _logsumexp_k(log_prob: np.ndarray) -> np.ndarray:
    """log Σ_k exp over axis 1 of [B, K, M] -> [B, M] (scipy's logsumexp is slower here by its checks)."""
    top = log_prob.max(axis=1)
    return top + np.log(np.exp(log_prob - top[:, None, :]).sum(axis=1))


def gaussian_mle(x: np.ndarray) -> Mixture:
    """The 1-component case in closed form (mean and biased variance: the MLE), x [B, M]."""
    mean = x.mean(1, keepdims=True)
    return Mixture(np.ones_like(mean), mean, x.var(1, keepdims=True))


def quantile_init(x: np.ndarray, k: int) -> Mixture:
    """A deterministic start: means at the (i + ½)/k quantiles, equal weights, the data's variance / k²."""
    q = (np.arange(k) + 0.5) / k
    means = np.quantile(x, q, axis=1).T
    var = np.repeat(x.var(1, keepdims=True) / k**2, k, axis=1)
    return Mixture(np.full_like(means, 1.0 / k), means, var)


def fit_em(x: np.ndarray, init: Mixture, *, tol: float = 1e-3, max_iter: int = 100, reg_covar: float = 1e-6) -> Mixture:
    """EM for B 1-D mixtures at once, row b of x [B, M] from init's row b (scikit-learn's defaults)."""
    params = Mixture(init.weights.copy(), init.means.copy(), init.variances.copy())
    lower = np.full(len(x), -np.inf)
    active = np.ones(len(x), dtype=bool)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        xa, cur = (x, params) if active.all() else (x[rows], params.select(rows))  # no copy while all run
        log_prob = cur.component_log_density(xa)
        norm = _logsumexp_k(log_prob)
        resp = np.exp(log_prob - norm[:, None, :])
        nk = resp.sum(2) + EPS
        means = np.einsum("bm,bkm->bk", xa, resp) / nk
        variances = np.einsum("bkm,bkm->bk", resp, (xa[:, None, :] - means[..., None]) ** 2) / nk + reg_covar
        params.weights[rows] = nk / nk.sum(1, keepdims=True)
        params.means[rows], params.variances[rows] = means, variances
        bound = norm.mean(1)
        active[rows] = np.abs(bound - lower[rows]) >= tol
        lower[rows] = bound
        if not active.any():
            break
    return params
