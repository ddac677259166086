"""E1 `super-weights` — do a handful of weights carry a small transformer?

Source: Yu et al. (2024), "The Super Weight in Large Language Models" (seeds/004). Claim: one weight of
an MLP down-projection — at (spiking input channel, spiking output channel) of an early layer — is
critical: zeroing it raises Llama-7B's perplexity by ~3 orders of magnitude and drops zero-shot accuracy
to chance, while zeroing the ~7,000 other largest-magnitude weights barely matters; scaling it up 1–2×
can help; keeping it in full precision rescues round-to-nearest quantization. Massive activations (Sun
et al. 2024) are ~10⁵× the median and grow with training.

Method. The biography transformers of the knowledge studies (`protocols/biography_lm`: trained through
the protocol, one member per seed, or loaded from a run directory with `from_run`), in arms `base` (the
config's training), `long` (`long_factor`× the steps) and `wide` (`wide_factor`× d_model and d_mlp). On
the protocol's fixed biographies of seen individuals in training templates (`evaluation_sets`), one
forward pass per member records, per layer, the max and median |activation| at the down-projection's
input (`mlp.hook_post`) and output (`hook_mlp_out`) over the real tokens (their ratio: the spike). The
output spike (token, channel j*) of each layer is traced to its inputs, x_i·W[i, j*]; candidates are
the entries with the largest such contributions across layers (`interventions/super_weight`), the top
one the super weight. Interventions, each undone exactly: zero the top-k candidates; zero k random
down-projection entries (mean over `random_draws`); zero the k largest-magnitude entries other than the
candidates; scale the super weight by each of `scales`; quantize every block matrix per tensor to each
of `bits` (symmetric round-to-nearest, `interventions/quantization`), with and without the top-k
candidates kept in full precision (left out of the scale). Each is scored as the protocol scores:
attribute accuracy and loss (`metrics.attribute_scores`), perplexity over every real token, and the
probability mass on the `frequent_tokens` most frequent tokens of those biographies (Yu et al.: the super
weight suppresses stop words). Claims are paired t-tests over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator
from torch import Tensor

from learnlab.config import check_arms
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.errors import LearnlabError
from learnlab.interventions import quantized_copy
from learnlab.interventions import super_weight as sw
from learnlab.metrics import attribute_scores
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import biography_lm as bl
from learnlab.protocols.measurements import log_rows, member_rows
from learnlab.reporting.stats import Table, above, describe
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import biographies as bio

ARMS = ("base", "long", "wide")
SPIKE_RATIO = 100.0  # a "massive" activation: at least 100x the median (Sun et al. report ~10^5)
FAR_MORE = math.log10(2)  # "far more": the CI of the log10 perplexity ratio's gap above log10 2 (2x perplexity)
MATRICES = ("attn.w_qkv", "attn.w_o", "mlp.w_in", "mlp.w_out")  # quantized per tensor, as Yu et al. (all linears)
MEASURES = ("acc", "loss", "log10_ppl_ratio", "freq_mass_moved")  # per intervention


class Config(bl.BiographyConfig):
    seeds: int = Field(5, ge=1)
    k: int = Field(1, gt=0, description="candidates zeroed (and random / largest-magnitude entries, the same k)")
    random_draws: int = Field(3, gt=0, description="random-k draws per member (their metrics averaged)")
    scales: list[float] = Field(
        [0, 0.5, 1, 1.5, 2, 3], min_length=1, description="factors the super weight is scaled by"
    )
    bits: list[int] = Field([8, 4], min_length=1, description="per-tensor round-to-nearest widths (2..8)")
    frequent_tokens: int = Field(10, gt=0, description="most frequent tokens whose probability mass is tracked")
    spike_biographies: int = Field(64, gt=0, description="biographies of the forward pass that finds spikes")
    long_factor: float = Field(3.0, gt=1, description="arm long: this many times the steps")
    wide_factor: int = Field(2, gt=1, description="arm wide: this many times d_model and d_mlp")
    from_run: str = Field("", description="a run directory of biography transformers to study instead of training")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)

    @field_validator("scales")
    @classmethod
    def _scales(cls, scales: list[float]) -> list[float]:
        if any(s < 0 for s in scales) or len(set(scales)) < len(scales):
            raise ValueError(f"scales must be distinct factors >= 0, got {scales}")
        return scales

    @field_validator("bits")
    @classmethod
    def _bits(cls, bits: list[int]) -> list[int]:
        bad = [b for b in bits if not 2 <= b <= 8]
        if bad or len(set(bits)) < len(bits):
            raise ValueError(f"bits must be distinct widths in 2..8 (INT8: 8, INT4: 4), got {bits}")
        return bits

    @field_validator("from_run")
    @classmethod
    def _run_dir(cls, path: str) -> str:
        if path and not (Path(path) / "summary.json").is_file():
            raise ValueError(f"{path!r} is not a run directory (no summary.json)")
        return path


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        **bl.SMOKE,
        "arms": ["base", "long"],
        "long_factor": 2.0,
        "random_draws": 2,
        "scales": [0, 1, 2],
        "spike_biographies": 8,
    },
    # the laptop world (pools of 40), N = 100, 2 layers x 64, batch 32, 5 seeds: base 250 steps (a one-seed trial:
    # 17% attribute accuracy on training templates, spikes ~11x at the output / ~31x at the input), long 500;
    # wide is left to the paper preset (it doubles the cost). Estimate alone on 2 cores: 750 steps of 5 members
    # at ~0.5 s (knowledge-acquisition's measured step) + ~30 s of interventions and reports: ~7 min
    "laptop": {
        "seeds": 5,
        **bl.LAPTOP_POOLS,
        "n_individuals": 100,
        "n_unseen": 50,
        "steps": 250,
        "long_factor": 2.0,
        "eval_every": 125,
        "eval_individuals": 50,
        "arms": ["base", "long"],
        "spike_biographies": 32,
    },
    # the source's scale of the biography model (8 layers x 512, seq 512) on 3 seeds: batch 32 (not 128) so the
    # estimate fits a 24 GiB machine; every arm, the wide one included
    "paper": {**bl.PAPER, "seeds": 3, "batch_size": 32, "steps": 16000, "long_factor": 2.0},
}


# --- the models ----------------------------------------------------------------------------------------


def arm_config(cfg: Config, arm: str) -> bl.BiographyConfig:
    """The protocol's config of one arm's training."""
    if arm == "long":
        steps = round(cfg.steps * cfg.long_factor)
        return bl.protocol_config(
            cfg, steps=steps, schedule_steps=max(cfg.schedule_steps, steps) if cfg.schedule_steps else 0
        )
    if arm == "wide":
        return bl.protocol_config(cfg, d_model=cfg.d_model * cfg.wide_factor, d_mlp=cfg.d_mlp * cfg.wide_factor)
    return bl.protocol_config(cfg)


Studied = tuple[EnsembleTransformer, list[tuple[str, int]], bl.BiographyConfig, int]  # model, members, world, step


def trained(cfg: Config, ctx: RunContext) -> tuple[list[Studied], list[pd.DataFrame]]:
    """One ensemble per arm, trained through the biography protocol (kept as the run's model `arm`)."""
    out, frames = [], []
    for arm in cfg.arms or ARMS:
        acfg = arm_config(cfg, arm)
        model, log = bl.train(acfg, ctx, label=arm, checkpoint=arm)
        members = [(arm, s) for s in cfg.seed_list]
        out.append((model, members, acfg, len(log.losses)))
        frames += log_rows(members, log)
    return out, frames


def loaded(cfg: Config) -> list[Studied]:
    """The transformers a finished biography run kept, with the world its config describes."""
    run = bl.trained_run(cfg.from_run)
    world = run.world
    kept = [k for k in run.models.values() if isinstance(k.model, EnsembleTransformer)]
    if not kept:
        raise LearnlabError(f"from_run {cfg.from_run!r} keeps no transformer")
    return [(k.model, list(k.members), world, world.steps) for k in kept]


# --- scoring -------------------------------------------------------------------------------------------


class Scorer:
    """The protocol's scoring of one ensemble on fixed biographies: per member, attribute accuracy and
    loss, log perplexity over real tokens, and the mass on the most frequent tokens."""

    def __init__(self, batch: bio.Batch, pad_id: int, cfg: bl.BiographyConfig, frequent: int):
        self.batch, self.pad_id, self.cfg = batch, pad_id, cfg
        targets = batch.tokens[:, 1:]
        counts = torch.bincount(targets[targets != pad_id].flatten())
        self.frequent = counts.topk(min(frequent, int((counts > 0).sum()))).indices

    @torch.no_grad()
    def __call__(self, model: EnsembleTransformer) -> dict[str, np.ndarray]:
        sums = {"nll": 0.0, "tokens": 0.0, "mass": 0.0}
        parts = []
        for i in range(0, len(self.batch.tokens), bl.EVAL_CHUNK):
            tokens = self.batch.tokens[i : i + bl.EVAL_CHUNK].to(self.cfg.device)
            with bl.autocast(self.cfg):
                logits = model(tokens.expand(model.n_models, -1, -1)).float()
            attr = self.batch.value_attr[i : i + bl.EVAL_CHUNK].to(self.cfg.device)
            parts.append(attribute_scores(logits, tokens, attr, len(bio.ATTRIBUTES)))
            logp = logits[:, :, :-1].log_softmax(-1)
            target = tokens[:, 1:]
            real = (target != self.pad_id).float()  # [B, T-1]
            nll = -logp.gather(-1, target.expand(model.n_models, -1, -1).unsqueeze(-1)).squeeze(-1)
            sums["nll"] = sums["nll"] + (nll * real).sum(dim=(1, 2))
            sums["mass"] = sums["mass"] + (logp[..., self.frequent].exp().sum(-1) * real).sum(dim=(1, 2))
            sums["tokens"] += float(real.sum())
        loss = torch.cat([p.loss for p in parts], dim=1).nanmean(dim=(1, 2))
        acc = torch.cat([p.correct for p in parts], dim=1).nanmean(dim=(1, 2))
        return {
            "acc": acc.cpu().numpy(),
            "loss": loss.cpu().numpy(),
            "log_ppl": (sums["nll"] / sums["tokens"]).cpu().numpy(),
            "freq_mass": (sums["mass"] / sums["tokens"]).cpu().numpy(),
        }


def relative(scores: dict[str, np.ndarray], intact: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An intervention's scores beside the intact model's: accuracy, loss, log10 perplexity ratio, mass moved."""
    return {
        "acc": scores["acc"],
        "loss": scores["loss"],
        "log10_ppl_ratio": (scores["log_ppl"] - intact["log_ppl"]) / math.log(10),
        "freq_mass_moved": scores["freq_mass"] - intact["freq_mass"],
    }


def scale_name(s: float) -> str:
    return f"scale_{s:g}"


def interventions(
    model: EnsembleTransformer, score: Scorer, spikes: sw.Spikes, cfg: Config, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Every intervention's scores relative to the intact model, by name."""
    intact = score(model)
    top = sw.candidates(spikes, cfg.k)
    out: dict[str, dict[str, np.ndarray]] = {}
    with sw.scaled(model, top, 0.0):
        out["zero_top"] = relative(score(model), intact)
    with sw.scaled(model, sw.largest(model, cfg.k, exclude=top), 0.0):
        out["zero_largest"] = relative(score(model), intact)
    gen = generator(seed, "super-weights random entries")
    draws = []
    for _ in range(cfg.random_draws):
        with sw.scaled(model, sw.random_entries(model, cfg.k, gen), 0.0):
            draws.append(relative(score(model), intact))
    out["zero_random"] = {m: np.mean([d[m] for d in draws], axis=0) for m in MEASURES}
    for s in cfg.scales:
        with sw.scaled(model, top[:, :1], s):
            out[scale_name(s)] = relative(score(model), intact)
    params = {f"blocks.{layer}.{m}": None for layer in range(model.n_layers) for m in MATRICES}
    for b in cfg.bits:
        out[f"int{b}"] = relative(score(quantized_copy(model, b, params)), intact)
        out[f"int{b}_keep"] = relative(score(quantized_copy(model, b, params, keep=sw.keep_masks(model, top))), intact)
    out["intact"] = {
        "acc": intact["acc"],
        "loss": intact["loss"],
        "log_ppl": intact["log_ppl"],
        "freq_mass": intact["freq_mass"],
    }
    return out


def spike_values(model: EnsembleTransformer, spikes: sw.Spikes, top: Tensor) -> dict[str, np.ndarray]:
    """Per layer max, median and ratio at the down-projection's input and output; the peak ratios; where
    the super weight is and how it compares with its matrix."""
    out: dict[str, np.ndarray] = {}
    for layer in range(model.n_layers):
        for side in ("in", "out"):
            for what in ("max", "ratio"):
                out[f"L{layer}.{side}_{what}"] = getattr(spikes, f"{side}_{what}")[:, layer].numpy()
    out["log10_peak_in_ratio"] = spikes.in_ratio.amax(dim=1).log10().numpy()
    out["log10_peak_out_ratio"] = spikes.out_ratio.amax(dim=1).log10().numpy()
    layer, row, col = top[:, 0].unbind(-1)
    weights, of_max = [], []
    for m in range(model.n_models):
        w = sw.down_projection(model, int(layer[m])).detach()[m].abs()
        weights.append(float(w[row[m], col[m]] / w.median().clamp_min(1e-12)))
        of_max.append(float(w[row[m], col[m]] / w.max().clamp_min(1e-12)))
    out["super_layer"] = layer.float().numpy()
    out["super_weight_ratio"] = np.array(weights)  # |w| over its matrix's median |w|
    out["super_weight_of_max"] = np.array(of_max)  # 1: it sets its matrix's per-tensor quantization grid
    return out


def measure_model(studied: Studied, cfg: Config) -> pd.DataFrame:
    model, members, world, step = studied
    model.eval()
    enc = bl.world_of(world)
    batch = bl.evaluation_sets(world, enc)["train_templates"]
    real = batch.tokens[: cfg.spike_biographies] != enc.pad_id
    spikes = sw.find_spikes(model, batch.tokens[: cfg.spike_biographies].to(world.device), real.to(world.device))
    spikes = sw.Spikes(**{f: getattr(spikes, f).cpu() for f in sw.Spikes.__dataclass_fields__})
    score = Scorer(batch, enc.pad_id, world, cfg.frequent_tokens)
    rows = {**spike_values(model, spikes, sw.candidates(spikes, cfg.k))}
    for name, values in interventions(model, score, spikes, cfg, members[0][1]).items():
        rows.update({f"{name}.{m}": v for m, v in values.items()})
    return pd.concat([member_rows(members, [step], v[None], "test", n) for n, v in rows.items()], ignore_index=True)


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """Train (or load) each arm's ensemble, then find its spikes and score every intervention."""
    if cfg.from_run:
        studied, frames = loaded(cfg), []
    else:
        studied, frames = trained(cfg, ctx)
    frames += [measure_model(s, cfg) for s in studied]
    return pd.concat(frames, ignore_index=True)


# --- the published claims ------------------------------------------------------------------------------


def model_arms(t: Table) -> list[str]:
    return [a for a, cells in t.items() if "zero_top.log10_ppl_ratio" in cells]


def _gap(t: Table, arm: str, a: str, b: str, metric: str = "log10_ppl_ratio") -> dict[str, Any]:
    cells = t[arm]
    return describe(
        np.asarray(cells[f"{a}.{metric}"]["values"], float) - np.asarray(cells[f"{b}.{metric}"]["values"], float)
    )


def _ci(cell: dict[str, Any]) -> str:
    lo, hi = cell["ci95"]
    return "n/a" if cell["mean"] is None else f"{cell['mean']:+.2f} (95% CI {lo:+.2f} to {hi:+.2f})"


def _per_arm(t: Table, a: str, b: str, bound: float, label: str) -> tuple[bool | None, str]:
    arms = model_arms(t)
    if not arms:
        raise KeyError("zero_top.log10_ppl_ratio")
    outcomes, parts = [], []
    for arm in arms:
        gap = _gap(t, arm, a, b)
        outcomes.append(above(gap, bound))
        acc = {x: t[arm][f"{x}.acc"]["mean"] for x in (a, b)}
        parts.append(
            f"{arm}: log10 perplexity ratio {a} {t[arm][f'{a}.log10_ppl_ratio']['mean']:+.2f} vs {b} "
            f"{t[arm][f'{b}.log10_ppl_ratio']['mean']:+.2f}, paired gap {_ci(gap)}; attribute accuracy "
            f"{100 * acc[a]:.1f}% vs {100 * acc[b]:.1f}% (intact {100 * t[arm]['intact.acc']['mean']:.1f}%)"
        )
    return every(outcomes), f"{label}; " + "; ".join(parts)


def _zero_vs_random(t: Table) -> tuple[bool | None, str]:
    return _per_arm(t, "zero_top", "zero_random", FAR_MORE, "gap's CI must lie above log10 2 in every arm")


def _zero_vs_largest(t: Table) -> tuple[bool | None, str]:
    return _per_arm(t, "zero_top", "zero_largest", 0.0, "gap's CI must lie above 0 in every arm")


def _int4_rescued(t: Table) -> tuple[bool | None, str]:
    return _per_arm(t, "int4", "int4_keep", 0.0, "INT4 minus INT4 with the candidates kept; CI above 0 in every arm")


def _spikes_grow(t: Table) -> tuple[bool | None, str]:
    gap = describe(
        np.asarray(t["long"]["log10_peak_out_ratio"]["values"], float)
        - np.asarray(t["base"]["log10_peak_out_ratio"]["values"], float)
    )
    return above(gap), (
        f"log10 peak max/median |output| of the down-projection: base {t['base']['log10_peak_out_ratio']['mean']:.2f}, "
        f"long {t['long']['log10_peak_out_ratio']['mean']:.2f}; paired gap {_ci(gap)}"
    )


def _massive(t: Table) -> tuple[bool | None, str]:
    arms = [a for a in t if "log10_peak_out_ratio" in t[a]]
    if not arms:
        raise KeyError("log10_peak_out_ratio")
    bound = math.log10(SPIKE_RATIO)
    outcomes = [above(t[a]["log10_peak_out_ratio"], bound) for a in arms]
    parts = [f"{a}: {_ci(t[a]['log10_peak_out_ratio'])}" for a in arms]
    return every(outcomes), f"log10 of the peak max/median ratio (needs CI above {bound:g}); " + "; ".join(parts)


CLAIMS = (
    Claim(
        f"Massive activations: the down-projection output's max |activation| is ≥ {SPIKE_RATIO:g}× its median "
        "in some layer (Sun et al.: ~10⁵×), in every arm",
        _massive,
    ),
    Claim(
        "Zeroing the top-k candidate super weights hurts far more than zeroing k random down-projection "
        "weights: perplexity at least 2× higher (paired CI of the log10 ratio gap above log10 2), every arm",
        _zero_vs_random,
    ),
    Claim(
        "Zeroing the super weight hurts more than zeroing the largest-magnitude weights other than it (Yu et "
        "al., Table 1: pruning the other ~7,000 outliers barely matters; here the same k), every arm",
        _zero_vs_largest,
    ),
    Claim(
        "Keeping the candidates in full precision rescues per-tensor INT4 round-to-nearest quantization "
        "(lower perplexity than plain INT4: paired CI above 0), every arm",
        _int4_rescued,
    ),
    Claim(
        "Spikes grow with training: the longer-trained arm's peak ratio exceeds the base arm's (paired CI)",
        _spikes_grow,
    ),
)

# Llama-7B (Yu et al. 2024; Sun et al. 2024): perplexity up ~3 orders of magnitude when the super weight is
# zeroed; massive activations ~10^5x the median. ("cold" 81.4% -> 9.0% is a probability: see the notes.)
_ANCHORS: dict[str, dict[str, float]] = {
    "zero_top.log10_ppl_ratio": {"mean": 3.0},
    "log10_peak_out_ratio": {"mean": 5.0},
}
REFERENCE: Table = {arm: dict(_ANCHORS) for arm in ARMS}


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    lines = []
    for arm in [a for a in t if "log10_peak_out_ratio" in t[a]]:
        cells = t[arm]
        layers = sorted({int(m[1:].split(".")[0]) for m in cells if m.startswith("L") and m.endswith("out_ratio")})
        ratios = ", ".join(
            f"L{layer} in {cells[f'L{layer}.in_ratio']['mean']:.0f}× / out {cells[f'L{layer}.out_ratio']['mean']:.0f}×"
            for layer in layers
        )
        peak = 10 ** cells["log10_peak_out_ratio"]["mean"]
        has = "a massive activation" if peak >= SPIKE_RATIO else f"no massive activation (peak below {SPIKE_RATIO:g}×)"
        lines.append(
            f"{arm}: max/median |activation| at the down-projection (input / output), seeds' mean: {ratios}; {has}. "
            f"The top candidate sits in layer {cells['super_layer']['mean']:.1f} (mean), |w| "
            f"{cells['super_weight_ratio']['mean']:.0f}× its matrix's median and "
            f"{100 * cells.get('super_weight_of_max', {}).get('mean', float('nan')):.0f}% of its largest (only at 100% "
            "does keeping it change the per-tensor grid)."
        )
    lines.append(
        "Yu et al.'s 'Summer is hot. Winter is' → 'cold' 81.4% becoming 'the' 9.0% is a token probability on "
        "Llama-7B; our nearest measure is the attribute accuracy after zeroing the super weight and the mass "
        "moved to the most frequent tokens (freq_mass_moved)."
    )
    return lines


# --- figures -------------------------------------------------------------------------------------------


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"]
    arms = [a for a in t if "log10_peak_out_ratio" in t[a]]
    if not arms:
        return {}
    out: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, arm in enumerate(arms):
        layers = sorted({int(m[1:].split(".")[0]) for m in t[arm] if m.startswith("L") and m.endswith("out_ratio")})
        for side, style in (("in", "--"), ("out", "-")):
            ax.plot(
                layers,
                [t[arm][f"L{layer}.{side}_ratio"]["mean"] for layer in layers],
                style,
                marker="o",
                color=f"C{i}",
                label=f"{arm}, {side}put",
            )
    ax.set_xticks(layers)
    ax.axhline(SPIKE_RATIO, color="grey", ls=":", lw=1, label=f"{SPIKE_RATIO:g}×")
    ax.set(yscale="log", xlabel="layer", ylabel="max / median |activation|", title="Down-projection spikes")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["spike_ratios"] = captioned(
        fig,
        "Max over median |activation| at each layer's MLP down-projection input "
        "(dashed) and output (solid), mean over seeds per arm (no band); dotted: "
        f"{SPIKE_RATIO:g}× (Sun et al.'s massive activations are ~10⁵×).",
    )

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, arm in enumerate(arms):
        names = [m for m in t[arm] if m.startswith("scale_") and m.endswith(".acc")]
        scales = sorted(float(m.removeprefix("scale_").removesuffix(".acc")) for m in names)
        cells = [t[arm][f"{scale_name(s)}.acc"] for s in scales]
        ax.plot(scales, [c["mean"] for c in cells], marker="o", color=f"C{i}", label=arm)
        ax.fill_between(scales, [c["ci95"][0] for c in cells], [c["ci95"][1] for c in cells], color=f"C{i}", alpha=0.2)
    ax.set(xlabel="super weight scaled by", ylabel="attribute accuracy", title="Scaling the super weight")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["scale"] = captioned(
        fig,
        "Attribute accuracy (seen individuals, training templates) with the top candidate "
        "multiplied by each factor (1: intact), mean over seeds with its 95% t-interval.",
    )

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    kinds = ("zero_top", "zero_random", "zero_largest")
    width = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        cells = [t[a][f"{kind}.log10_ppl_ratio"] for a in arms]
        means = [c["mean"] for c in cells]
        err = np.array([[m - c["ci95"][0], c["ci95"][1] - m] for m, c in zip(means, cells, strict=True)]).T
        ax.bar(np.arange(len(arms)) + j * width, means, width, yerr=err, label=kind.replace("_", " "), color=f"C{j}")
    ax.set_xticks(np.arange(len(arms)) + width, arms)
    ax.set(ylabel="log10 perplexity ratio (zeroed / intact)", title=f"Zeroing k={summary['config']['k']} weights")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["zeroing"] = captioned(
        fig,
        "The log10 perplexity ratio after zeroing the top-k candidates, k random "
        "down-projection entries and the k largest-magnitude other entries, mean over seeds "
        "with 95% t-intervals (Yu et al.: ~3 for Llama-7B's super weight).",
    )
    return out


_CONDITIONS = (
    "zero_top",
    "zero_random",
    "zero_largest",
    *(scale_name(s) for s in (0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3)),
    *(f"int{b}{keep}" for b in range(2, 9) for keep in ("", "_keep")),
)
PLAIN = (  # nats, ratios and indices, not fractions (names of up to 16 layers and the usual scales)
    "log10_peak_in_ratio",
    "log10_peak_out_ratio",
    "super_layer",
    "super_weight_ratio",
    "intact.loss",
    "intact.log_ppl",
    *(f"L{layer}.{side}_{what}" for layer in range(16) for side in ("in", "out") for what in ("max", "ratio")),
    *(f"{c}.{m}" for c in _CONDITIONS for m in ("loss", "log10_ppl_ratio")),
)

STUDY = Study(
    name="super-weights",
    title="super weights: a handful of weights a small transformer cannot lose (E1)",
    source="seeds/004 (Yu et al. 2024, The Super Weight in Large Language Models; Sun et al. 2024)",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=ARMS,
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=(("base", "log10_peak_out_ratio"), ("base", "zero_top.log10_ppl_ratio"), ("base", "zero_top.acc")),
    figures=figures,
    notes=notes,
    plain_metrics=PLAIN,
    point_metrics=tuple(f"{c}.freq_mass_moved" for c in _CONDITIONS),
)
