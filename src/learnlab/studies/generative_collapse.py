"""D4 `generative-collapse` — generative models refitted on their own samples, generation after generation.

Source: Shumailov et al., "AI models collapse when trained on recursively generated data" (Nature 2024):
fit, sample, refit on the samples, and the tails vanish while the variance shrinks; Gerstgrasser et al.
(2024): accumulating every generation's data instead of replacing it bounds the error.

Method. A chain starts from N original points and fits generation 0 to them; generation g+1 is fitted
to data built from N samples of generation g. Arms: `replace` (only those samples), `keep-P` (P% of the
N points are original ones, a fresh random subset each generation, the rest samples: keep-10 and
keep-30), `accumulate` (the original data and every generation's samples so far). Models: `gaussian`,
a 1-D Gaussian N(0, 1) fitted by maximum likelihood (N = 100); `gmm`, a 1-D mixture ½N(−2, 1) +
½N(2, 1) of 2 components fitted by EM (N = 1000: the source notebook's; `learnlab.models.gmm1d`, all
chains as one array computation, scikit-learn's EM step for step, each fit warm-started from the
generation that drew its data); `vae`, a small conditional VAE (`learnlab.models.vae`; 8-dim latent,
128 hidden) on scikit-learn's bundled 8x8 digits (the 1 257 training digits), retrained from scratch
each generation on the labelled decoder means of the previous one, all chains and arms as one
ensemble. A chain is one master seed; its arms share the original data and every random draw (paired).
Per generation, for the 1-D models: the fitted variance over the true one (`var`), the tail mass
P(|x − μ₀| > 2σ₀) under the fit (`tail`; exact, from normal CDFs; 4.6% for the Gaussian, 0.7% for the
mixture), and the mean log-likelihood of the chain's original points (`loglik`); for the VAE: the pixel
variance of 500 samples (50 per digit) over the real digits' (`var`), the share of samples farther from
the real mean than 95% of real digits (`tail`), their mean within-digit pairwise distance over the real
digits' (`diversity`), the accuracy on them of a logistic regression trained on the real training digits
(`accuracy`: the sample is scored against the digit it was conditioned on), and the ELBO of the real
test digits (`elbo`, nats per image). Chains are the units: the table's cells are means with t-intervals
over chains, and `*_median_g*` cells are medians with a distribution-free order-statistic interval
(coverage ≥ 95%, stated in the cell). The VAE samples figure reads the first chain's samples from
split `sample` rows (step = generation · 64 + pixel).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator, stream_seed
from learnlab.models.gmm1d import Mixture, fit_em, gaussian_mle, quantile_init
from learnlab.models.vae import EnsembleCVAE
from learnlab.protocols.measurements import member_rows
from learnlab.reporting.quantiles import median_cell
from learnlab.reporting.stats import Cell, Table, above, difference
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import digits

ARMS = ("replace", "keep-10", "keep-30", "accumulate")
MODELS = ("gaussian", "gmm", "vae")
KEEP = re.compile(r"keep-(\d+(?:\.\d+)?)")
TRUTH = {  # model: the true distribution, a 1-D mixture (weights, means, variances)
    "gaussian": Mixture(np.array([[1.0]]), np.array([[0.0]]), np.array([[1.0]])),
    "gmm": Mixture(np.array([[0.5, 0.5]]), np.array([[-2.0, 2.0]]), np.array([[1.0, 1.0]])),
}
SPLIT = "generation"  # rows of every generation (step = generation); the table takes chosen ones
GRID = "sample"  # the VAE samples figure's pixels (step = generation · 64 + pixel)


def kept_share(arm: str) -> float | None:
    """The share of original data an arm keeps each generation (None: replace or accumulate)."""
    match = KEEP.fullmatch(arm)
    return None if match is None else float(match.group(1)) / 100


class Config(StudyConfig):
    models: list[str] = Field(default_factory=lambda: list(MODELS), description="models to chain: gaussian, gmm, vae")
    generations: int = Field(100, ge=1, description="generations after generation 0 for the 1-D models")
    n: int = Field(100, ge=2, description="points per generation for the 1-D Gaussian")
    gmm_n: int = Field(1000, ge=4, description="points per generation for the mixture (the source: 1000)")
    gmm_chains: int = Field(50, ge=1, description="chains for the mixture: the first of the seeds")
    vae_generations: int = Field(10, ge=1, description="generations after generation 0 for the VAE")
    vae_chains: int = Field(6, ge=1, description="chains for the VAE: the first of the seeds")
    vae_steps: int = Field(600, ge=1, description="Adam steps per VAE generation (batch vae_batch)")
    vae_batch: int = Field(64, ge=1, description="VAE batch size")
    vae_lr: float = Field(3e-3, gt=0, description="VAE Adam learning rate")
    vae_hidden: int = Field(128, ge=1, description="VAE hidden width (encoder and decoder)")
    vae_latent: int = Field(8, ge=1, description="VAE latent dimensions")
    vae_samples: int = Field(50, ge=2, description="samples per digit class scored each VAE generation")

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r} (models: {', '.join(MODELS)})")
        if not models or len(set(models)) < len(models):
            raise ValueError("models must be listed once each, at least one")
        return models

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        for arm in arms:
            share = kept_share(arm)
            if share is None and arm not in ("replace", "accumulate"):
                raise ValueError(f"unknown arm {arm!r} (arms: replace, keep-P with P in 0..100, accumulate)")
            if share is not None and not 0 <= share <= 1:
                raise ValueError(f"arm {arm!r}: kept share {share:g} outside [0, 1]")
        if len(set(arms)) < len(arms):
            raise ValueError("an arm is listed twice")
        return arms

    @model_validator(mode="after")
    def _chains_within_seeds(self) -> Config:
        for key in ("gmm_chains", "vae_chains"):
            if getattr(self, key) > self.seeds:
                raise ValueError(f"{key}={getattr(self, key)} exceeds seeds={self.seeds}")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "seeds": 8,
        "generations": 12,
        "gmm_n": 200,
        "gmm_chains": 6,
        "vae_generations": 2,
        "vae_chains": 6,
        "vae_steps": 20,
        "vae_samples": 5,
        "vae_hidden": 32,
    },
    "laptop": {"seeds": 200, "gmm_chains": 30},  # see the README for its time alone on 2 cores
    "paper": {"seeds": 1000, "generations": 200, "gmm_chains": 200, "vae_generations": 20, "vae_chains": 20},
}


def table_generations(last: int) -> list[int]:
    """The generations that get table cells: 0, 1, 10, 100 where run, and the last."""
    return sorted({g for g in (0, 1, 10, 100) if g <= last} | {last})


def _chain_rngs(seeds: list[int], purpose: str) -> list[np.random.Generator]:
    return [np.random.default_rng(stream_seed(s, purpose)) for s in seeds]


def _stack(rngs: list[np.random.Generator], draw: str, shape: tuple[int, ...]) -> np.ndarray:
    """One draw per chain from its own generator, stacked on a leading chain axis."""
    return np.stack([getattr(rng, draw)(shape) for rng in rngs])


def _fit(model: str, x: np.ndarray, previous: Mixture | None) -> Mixture:
    if model == "gaussian":
        return gaussian_mle(x)
    return fit_em(x, quantile_init(x, 2) if previous is None else previous)


def chain_1d(model: str, cfg: Config, seeds: list[int], arms: list[str], ctx: RunContext) -> pd.DataFrame:
    """Every arm's chains of one 1-D model, all chains of an arm fitted as one batch per generation."""
    n = cfg.n if model == "gaussian" else cfg.gmm_n
    truth = TRUTH[model]
    mu0, sd0 = float((truth.weights * truth.means).sum()), float(np.sqrt(truth.variance()[0]))
    rngs = _chain_rngs(seeds, f"{model}-chain")
    c, a = len(seeds), len(arms)
    u, z = _stack(rngs, "random", (n,)), _stack(rngs, "standard_normal", (n,))
    original = truth.select(np.zeros(c, dtype=int)).sample(u, z)  # [C, n]
    data = {arm: original for arm in arms}
    fits: dict[str, Mixture | None] = dict.fromkeys(arms)
    values: dict[str, list[np.ndarray]] = {m: [] for m in ("var", "tail", "loglik")}  # each [A, C] per generation
    with ctx.progress(f"{model} chains", cfg.generations + 1) as update:
        for g in range(cfg.generations + 1):
            for arm in arms:
                fits[arm] = _fit(model, data[arm], fits[arm])
            values["var"].append(np.stack([fits[arm].variance() for arm in arms]) / sd0**2)
            values["tail"].append(np.stack([fits[arm].tail_mass(mu0, 2 * sd0) for arm in arms]))
            values["loglik"].append(np.stack([fits[arm].log_likelihood(original) for arm in arms]))
            update(g + 1)
            if g == cfg.generations:
                break
            u, z = _stack(rngs, "random", (a, n)), _stack(rngs, "standard_normal", (a, n))
            order = np.argsort(_stack(rngs, "random", (n,)), axis=1)  # which original points a keep arm takes
            for i, arm in enumerate(arms):
                samples = fits[arm].sample(u[:, i], z[:, i])
                share = kept_share(arm)
                if arm == "replace":
                    data[arm] = samples
                elif arm == "accumulate":
                    data[arm] = np.concatenate([data[arm], samples], axis=1)
                else:
                    m = round(share * n)
                    data[arm] = np.concatenate([np.take_along_axis(original, order[:, :m], 1), samples[:, m:]], 1)
    members = [(arm, s) for arm in arms for s in seeds]
    return _rows(model, members, {m: np.stack(v).reshape(len(v), -1) for m, v in values.items()})


def _rows(model: str, members: list[tuple[str, int]], values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-generation rows (split `generation`) and the table's rows (split test) at `table_generations`."""
    frames = []
    for metric, v in values.items():  # v: [generations + 1, members]
        name = f"{model}_{metric}"
        frames.append(member_rows(members, list(range(len(v))), v, SPLIT, name))
        for g in table_generations(len(v) - 1):
            frames.append(member_rows(members, [g], v[g : g + 1], "test", f"{name}_g{g}"))
    return pd.concat(frames, ignore_index=True)


# --- the VAE chains ----------------------------------------------------------------------------------


def _real_digits() -> tuple[torch.Tensor, ...]:
    """Training and test digits with pixels in [0, 1] (the VAE's Bernoulli likelihood)."""
    x_tr, y_tr, x_te, y_te = digits.split()
    return (x_tr + 1) / 2, y_tr, (x_te + 1) / 2, y_te


def _classifier(x: torch.Tensor, y: torch.Tensor) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000).fit(x.numpy(), y.numpy())


def _spread(x: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """Mean pairwise distance within each class, averaged over classes: x [K, M, D], y [M] -> [K]."""
    per_class = []
    for c in range(classes):
        xc = x[:, y == c]
        d = torch.cdist(xc, xc)
        m = xc.shape[1]
        per_class.append(d.sum((1, 2)) / (m * (m - 1)))
    return torch.stack(per_class, 1).mean(1)


def _train_vae(
    cfg: Config, members: list[tuple[str, int]], g: int, x: torch.Tensor, y: torch.Tensor, sizes: torch.Tensor
) -> EnsembleCVAE:
    """A fresh ensemble trained on each member's own data (x [K, Mmax, 64] padded, `sizes` [K] real rows)."""
    k = len(members)
    model = EnsembleCVAE(k, digits.N_PIXELS, digits.N_CLASSES, cfg.vae_hidden, cfg.vae_latent)
    model.reset_parameters([generator(s, f"vae-init-g{g}") for _, s in members])
    gens = [generator(s, f"vae-batches-g{g}") for _, s in members]
    picks = torch.stack([torch.rand(cfg.vae_steps, cfg.vae_batch, generator=gen) for gen in gens], 1)
    noise = torch.stack([torch.randn(cfg.vae_steps, cfg.vae_batch, cfg.vae_latent, generator=gen) for gen in gens], 1)
    rows = (picks * sizes[None, :, None]).long()  # [steps, K, B]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.vae_lr)
    for step in range(cfg.vae_steps):
        idx = rows[step]
        xb = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))
        loss = model.loss(xb, torch.gather(y, 1, idx), noise[step]).sum()  # members' losses are independent
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _pad(parts: list[torch.Tensor]) -> torch.Tensor:
    size = max(p.shape[0] for p in parts)
    return torch.stack([torch.cat([p, p.new_zeros(size - p.shape[0], *p.shape[1:])]) for p in parts])


def chain_vae(cfg: Config, seeds: list[int], arms: list[str], ctx: RunContext) -> pd.DataFrame:
    """Every arm's VAE chains as one ensemble per generation; each member scored on its samples."""
    x_tr, y_tr, x_te, y_te = _real_digits()
    clf = _classifier(x_tr, y_tr)
    members = [(arm, s) for arm in arms for s in seeds]
    k, n, classes = len(members), len(x_tr), digits.N_CLASSES
    real_mean = x_tr.mean(0)
    real_dist = (x_tr - real_mean).norm(dim=1)
    far = torch.quantile(real_dist, 0.95)
    real_var = x_tr.var(0).sum()
    labels = torch.arange(classes).repeat_interleave(cfg.vae_samples)
    real_spread = _spread(x_tr[None], y_tr, classes)[0]
    xs, ys = [x_tr] * k, [y_tr] * k
    values: dict[str, list[np.ndarray]] = {m: [] for m in ("var", "tail", "diversity", "accuracy", "elbo")}
    grids: list[pd.DataFrame] = []
    with ctx.progress("vae chains", cfg.vae_generations + 1) as update:
        for g in range(cfg.vae_generations + 1):
            sizes = torch.tensor([len(p) for p in xs], dtype=torch.float32)
            model = _train_vae(cfg, members, g, _pad(xs), _pad(ys), sizes)
            gens = [generator(s, f"vae-sample-g{g}") for _, s in members]
            with torch.no_grad():
                z = torch.stack([torch.randn(len(labels), cfg.vae_latent, generator=gen) for gen in gens])
                samples = model.sample(labels.expand(k, -1), z)
                elbo_noise = torch.stack([torch.randn(len(x_te), cfg.vae_latent, generator=gen) for gen in gens])
                elbo = -model.loss(x_te.expand(k, -1, -1), y_te.expand(k, -1), elbo_noise)
            predicted = torch.as_tensor(clf.predict(samples.reshape(-1, digits.N_PIXELS).numpy())).reshape(k, -1)
            values["accuracy"].append((predicted == labels).float().mean(1).numpy())
            values["var"].append((samples.var(1).sum(1) / real_var).numpy())
            values["tail"].append(((samples - real_mean).norm(dim=2) > far).float().mean(1).numpy())
            values["diversity"].append((_spread(samples, labels, classes) / real_spread).numpy())
            values["elbo"].append(elbo.numpy())
            grids.append(_grid_rows(members, seeds[0], g, samples, labels))
            update(g + 1)
            if g == cfg.vae_generations:
                break
            z = torch.stack([torch.randn(n, cfg.vae_latent, generator=gen) for gen in gens])
            generated = model.sample(y_tr.expand(k, -1), z)  # the real training labels: same class counts
            for j, (arm, _) in enumerate(members):
                share = kept_share(arm)
                if arm == "replace":
                    xs[j], ys[j] = generated[j], y_tr
                elif arm == "accumulate":
                    xs[j], ys[j] = torch.cat([xs[j], generated[j]]), torch.cat([ys[j], y_tr])
                else:
                    m = round(share * n)
                    keep = torch.randperm(n, generator=gens[j])
                    real = torch.zeros(n, dtype=torch.bool)
                    real[keep[:m]] = True
                    xs[j] = torch.where(real[:, None], x_tr, generated[j])
                    ys[j] = y_tr
    ctx.keep_model(
        "vae",
        model,
        members,
        kwargs={
            "k": k,
            "pixels": digits.N_PIXELS,
            "classes": classes,
            "hidden": cfg.vae_hidden,
            "latent": cfg.vae_latent,
        },
        members_kwarg="k",
    )
    frame = _rows("vae", members, {m: np.stack(v) for m, v in values.items()})
    real_acc = float((clf.predict(x_te.numpy()) == y_te.numpy()).mean())
    real = member_rows(members, [0], np.full((1, k), real_acc), "test", "vae_accuracy_real")
    return pd.concat([frame, real, *grids])


def _grid_rows(
    members: list[tuple[str, int]], seed: int, g: int, samples: torch.Tensor, y: torch.Tensor
) -> pd.DataFrame:
    """The first chain's first sample of each digit, per arm, for the samples figure: split `sample`, metric
    `vae_digit{d}`, step = generation · 64 + pixel (the long format has no pixel column)."""
    first = [j for j, (_, s) in enumerate(members) if s == seed]
    frames = []
    for d in range(digits.N_CLASSES):
        pixels = samples[first][:, int(torch.nonzero(y == d)[0])]  # [arms, 64]
        steps = [g * digits.N_PIXELS + p for p in range(digits.N_PIXELS)]
        frames.append(member_rows([members[j] for j in first], steps, pixels.T.numpy(), GRID, f"vae_digit{d}"))
    return pd.concat(frames)


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """Each chosen model's chains: the 1-D ones on all their seeds, the VAE on the first `vae_chains`."""
    arms = cfg.arms or list(ARMS)
    frames = []
    for model in cfg.models:
        if model == "vae":
            frames.append(chain_vae(cfg, cfg.seed_list[: cfg.vae_chains], arms, ctx))
        else:
            chains = cfg.seeds if model == "gaussian" else cfg.gmm_chains
            frames.append(chain_1d(model, cfg, cfg.seed_list[:chains], arms, ctx))
    return pd.concat(frames, ignore_index=True)


def medians(metrics: pd.DataFrame, cfg: Config) -> Table:
    """`{model}_{var,tail}_median_g{g}`: the median over chains with its order-statistic interval."""
    test = metrics[(metrics.split == "test") & metrics.metric.str.contains(r"_(?:var|tail)_g\d+$")]
    table: Table = {}
    for (arm, metric), group in test.groupby(["arm", "metric"], sort=False):
        name = re.sub(r"_g(\d+)$", r"_median_g\1", str(metric))
        table.setdefault(str(arm), {})[name] = median_cell(group.sort_values("seed")["value"].to_numpy())
    return table


# --- the claims ----------------------------------------------------------------------------------------

REFERENCE: Table = {  # STUDIES.md D4's quick script (not published): 1-D Gaussian, N = 100, median over chains
    "replace": {
        "gaussian_var_median_g1": {"mean": 0.945},
        "gaussian_var_median_g10": {"mean": 0.79},
        "gaussian_var_median_g100": {"mean": 0.12},
    },
    "accumulate": {"gaussian_var_median_g100": {"mean": 0.98}},
}
COLLAPSED = 0.2  # replace: the median variance's interval below this by generation 100
GAUSSIAN_TAIL = 2 * float(0.5 * math.erfc(2 / math.sqrt(2)))  # P(|z| > 2) = 4.55%
TAILS_GONE = 0.1  # tails gone: the median tail mass's interval below 10% of the original one
BOUNDED = 0.9  # accumulate: the median variance's interval above this at generation 100 and the last


def _median(cell: Cell) -> str:
    if cell["mean"] is None:
        return "no interval (too few chains)"
    lo, hi = cell["ci95"]
    return f"{cell['mean']:.3g} ({100 * cell['coverage']:.1f}% CI {lo:.3g}–{hi:.3g})"


def _below(cell: Cell, bound: float) -> bool | None:
    return None if cell["mean"] is None else bool(cell["ci95"][1] < bound)


def _last(t: Table, arm: str, model: str) -> int:
    return max(int(m.rsplit("_g", 1)[1]) for m in t[arm] if m.startswith(f"{model}_var_median_g"))


def _collapses(t: Table) -> tuple[bool | None, str]:
    """The 1-D Gaussian under replace at generation 100 (a run with fewer cannot decide)."""
    cells = t["replace"]
    var, tail = cells["gaussian_var_median_g100"], cells["gaussian_tail_median_g100"]
    gone = TAILS_GONE * GAUSSIAN_TAIL
    early = ", ".join(
        f"g{g} {_median(cells[f'gaussian_var_median_g{g}'])}" for g in (1, 10) if f"gaussian_var_median_g{g}" in cells
    )
    return every([_below(var, COLLAPSED), _below(tail, gone)]), (
        f"Gaussian (N={len(var['values'])} chains) replace median variance: {early}, g100 {_median(var)} "
        f"(anchor 0.945, 0.79, 0.12); median tail mass at g100 {_median(tail)} vs {GAUSSIAN_TAIL:.4f} originally; "
        f"judged: variance interval below {COLLAPSED}, tail interval below {gone:.4f}"
    )


def _accumulate_bounded(t: Table) -> tuple[bool | None, str]:
    """Every 1-D model run, at generation 100 (must be run) and at the last generation."""
    outcomes, parts = [], []
    for model in ("gaussian", "gmm"):
        if f"{model}_var_median_g0" not in t["accumulate"]:
            continue
        for g in sorted({100, _last(t, "accumulate", model)}):
            cell = t["accumulate"][f"{model}_var_median_g{g}"]
            outcomes.append(None if cell["mean"] is None else bool(cell["ci95"][0] > BOUNDED))
            parts.append(f"{model} g{g} {_median(cell)}")
    if not outcomes:
        raise KeyError("gaussian_var_median_g0")
    return every(outcomes), "accumulate median variance: " + "; ".join(parts) + f"; judged: interval above {BOUNDED}"


PAIRS = (("keep-10", "replace", True), ("keep-30", "replace", True), ("keep-30", "keep-10", False))  # judged?


def _real_data_slows(t: Table) -> tuple[bool | None, str]:
    """Paired by chain at the last generation: keep-10 − replace and keep-30 − replace variance, each
    t-interval above 0, for each 1-D model run; keep-30 − keep-10 reported beside (not judged: both keep
    arms settle near the original variance, so their difference is small next to the chains' spread)."""
    outcomes, parts = [], []
    for model in ("gaussian", "gmm"):
        if f"{model}_var_g0" not in t["replace"]:
            continue
        metric = f"{model}_var_g{_last(t, 'replace', model)}"
        for more, less, judged in PAIRS:
            if not judged and not {more, less} <= set(t):
                continue
            gain = difference(t, metric, more, less)
            if judged:
                outcomes.append(above(gain))
            lo, hi = gain["ci95"]
            gen = metric.rsplit("_", 1)[1]
            parts.append(
                f"{model} {gen} {more} − {less} {gain['mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"
                + ("" if judged else ", not judged")
            )
    if not outcomes:
        raise KeyError("gaussian_var_g0")
    evidence = "mean variance, paired by chain: " + "; ".join(parts)
    return every(outcomes), evidence + "; judged: keep − replace CIs above 0"


CLAIMS = (
    Claim(
        "Under replace the 1-D Gaussian collapses: by generation 100 the median fitted variance is ≤ 0.2 and the "
        "tails are gone (median tail mass under 10% of the original; order-statistic intervals)",
        _collapses,
        min_seeds=6,
    ),
    Claim(
        "Accumulating every generation's data bounds the collapse: the median fitted variance stays ≥ 0.9 "
        "(interval above 0.9 at generation 100 and at the last, for each 1-D model)",
        _accumulate_bounded,
        min_seeds=6,
    ),
    Claim(
        "Keeping a share of original data slows the decline: at the last generation keep-10 and keep-30 each keep "
        "more variance than replace (paired t-intervals over chains above 0, each 1-D model)",
        _real_data_slows,
        min_seeds=5,
    ),
)


def notes(summary: dict[str, Any]) -> list[str]:
    t, out = summary["table"], []
    for model in MODELS:
        arms = [a for a in t if any(m.startswith(f"{model}_var_median_g") for m in t[a])]
        if not arms:
            continue
        last = _last(t, arms[0], model)
        parts = [f"{a} {_median(t[a][f'{model}_var_median_g{last}'])}" for a in arms]
        out.append(f"{model}: median variance ratio at g{last}: " + "; ".join(parts) + ".")
        if model != "vae":
            ll = [f"{a} {t[a][f'{model}_loglik_g0']['mean']:.2f} → {t[a][f'{model}_loglik_g{last}']['mean']:.2f}"
                  for a in arms]  # fmt: skip
            out.append(f"{model}: mean log-likelihood of the original points, g0 → g{last}: " + "; ".join(ll) + ".")
    if "vae_accuracy_real" in t.get(next(iter(t), ""), {}):
        arms = [a for a in t if "vae_accuracy_real" in t[a]]
        last = max(int(m.rsplit("_g", 1)[1]) for m in t[arms[0]] if m.startswith("vae_accuracy_g"))
        out.append(
            f"vae: classifier accuracy on real test digits {100 * t[arms[0]]['vae_accuracy_real']['mean']:.1f}%; on "
            f"samples at g0 / g{last}: "
            + "; ".join(
                f"{a} {100 * t[a]['vae_accuracy_g0']['mean']:.1f}% / {100 * t[a][f'vae_accuracy_g{last}']['mean']:.1f}%"
                f" (diversity {t[a]['vae_diversity_g0']['mean']:.2f} / {t[a][f'vae_diversity_g{last}']['mean']:.2f})"
                for a in arms
            )
            + "."
        )
    return out


def _bands(ax: Any, data: pd.DataFrame, arm: str, color: Any) -> None:
    """Median over chains with the interquartile band."""
    wide = data.pivot_table(index="seed", columns="step", values="value")
    q = np.quantile(wide.to_numpy(), [0.25, 0.5, 0.75], axis=0)
    steps = wide.columns.to_numpy()
    ax.plot(steps, q[1], color=color, lw=1.4, label=arm)
    ax.fill_between(steps, q[0], q[2], color=color, alpha=0.15)


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """Per model: variance and tail mass (and for the VAE diversity and accuracy) per generation, per arm."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    gens = metrics[metrics.split == SPLIT]
    arms = list(dict.fromkeys(gens.arm))
    colors = dict(zip(arms, plt.get_cmap("tab10").colors, strict=False))
    out = {}
    for model in MODELS:
        panels = [m for m in ("var", "tail", "diversity", "accuracy") if (gens.metric == f"{model}_{m}").any()]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
        for ax, panel in zip(axes[0], panels, strict=True):
            data = gens[gens.metric == f"{model}_{panel}"]
            for arm, group in data.groupby("arm", sort=False):
                _bands(ax, group, str(arm), colors[arm])
            if model != "vae":
                ax.set_xscale("symlog", linthresh=1)
                ax.set_yscale("log")
            xlabel = "generation" + (" (log after 1)" if model != "vae" else "")
            ax.set(xlabel=xlabel, ylabel=panel, title=f"{model} {panel}")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        shown = (
            "variance over the true one and tail mass P(|x − μ₀| > 2σ₀) on log axes"
            if model != "vae"
            else "sample variance and diversity over the real digits', and a real-digit classifier's accuracy"
        )
        caption = (
            f"{model}: per generation, the median over chains (line) and interquartile range (band) per arm; {shown}."
        )
        out[f"{model}_generations"] = captioned(fig, caption)
    grid = metrics[metrics.split == GRID]
    if len(grid):
        out["vae_samples"] = _samples_figure(grid)
    return out


def _samples_figure(grid: pd.DataFrame) -> Any:
    """One panel per arm: a row of digits 0-9 per generation (at most 6 generations shown)."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    arms = list(dict.fromkeys(grid.arm))
    last = int(grid.step.max()) // digits.N_PIXELS
    shown = sorted({round(x) for x in np.linspace(0, last, min(6, last + 1))})
    side = int(math.isqrt(digits.N_PIXELS))
    fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms), 0.4 * len(shown) + 0.8), squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        rows = []
        for g in shown:
            steps = range(g * digits.N_PIXELS, (g + 1) * digits.N_PIXELS)
            part = grid[(grid.arm == arm) & grid.step.isin(steps)]
            images = [part[part.metric == f"vae_digit{d}"].sort_values("step").value.to_numpy() for d in range(10)]
            rows.append(np.hstack([im.reshape(side, side) for im in images]))
        ax.imshow(np.vstack(rows), cmap="gray_r", vmin=0, vmax=1)
        ax.set_yticks([side * (i + 0.5) for i in range(len(shown))], [f"g{g}" for g in shown])
        ax.set_xticks([])
        ax.set_title(arm, fontsize=9)
    fig.tight_layout()
    seed = int(grid.seed.iloc[0])
    caption = (
        f"VAE samples of chain {seed}: per arm, one decoder mean per digit 0–9 (columns), conditioned on the digit, "
        "at the generations shown (rows)."
    )
    return captioned(fig, caption)


# ratios and log-likelihoods print as numbers, not percentages (the generations any preset reports)
PLAIN = tuple(
    f"{model}_{metric}_g{g}"
    for model, metric in [(m, v) for m in MODELS for v in ("var", "var_median")]
    + [("vae", "diversity"), ("vae", "elbo"), ("gaussian", "loglik"), ("gmm", "loglik")]
    for g in range(201)
)

STUDY = Study(
    name="generative-collapse",
    title="generative models refitted on their own samples (D4)",
    source="Shumailov et al. (Nature 2024); Gerstgrasser et al. (2024); STUDIES.md D4",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=ARMS,
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=(("replace", "gaussian_var_median_g100"), ("accumulate", "gaussian_var_median_g100")),
    figures=figures,
    notes=notes,
    derived=medians,
    plain_metrics=PLAIN,
)
