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

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from learnlab.config import StudyConfig, check_arms
from learnlab.engine.rng import NumpyGenerator, generator
from learnlab.engine.stream import ChunkedStream
from learnlab.engine.train import TrainLog, train_ensemble
from learnlab.metrics import (
    MIN_PLATEAU_EVALS,
    NEAR_BASELINE,
    PLATEAU_ACCURACY,
    PLATEAU_FLATNESS,
    AttributeScores,
    attribute_scores,
    detect_phases,
    expected_calibration_error,
    reliability,
)
from learnlab.models.transformer import EnsembleTransformer
from learnlab.reporting.stats import Table, above, describe, finite_values, pct
from learnlab.studies.base import Claim, RunContext, Study, member_rows
from learnlab.tasks import biographies as bio

ARMS = ("default",)
DATA_CHUNK = 20  # training steps drawn at once per seed (part of the data stream's definition)
EVAL_CHUNK = 32  # sequences per forward pass when scoring
EVAL_SETS = {  # name: (individuals, templates)
    "train_templates": ("seen", "train"),
    "heldout_templates": ("seen", "heldout"),
    "unseen": ("unseen", "heldout"),
}
CALIBRATION_BINS = 10


class BiographyConfig(StudyConfig):
    """The world, the transformer and its training: shared by the studies built on the biographies."""

    n_individuals: int = Field(800, gt=0, description="individuals trained on (N)")
    n_unseen: int = Field(200, gt=0, description="held-out individuals, never trained on")
    world_seed: int = Field(0, ge=0)
    # the value pools: the first k values of each (defaults: the paper's); months are always all 12
    n_days: int = Field(28, ge=1, le=28, description="days of the month a birth date can fall on")
    n_years: int = Field(201, ge=1, le=201, description="birth years, from 1900")
    n_cities: int = Field(800, ge=1, le=800, description="cities (birth city and current city)")
    n_universities: int = Field(200, ge=1, le=200)
    n_majors: int = Field(100, ge=1, le=100)
    n_companies: int = Field(500, ge=1, le=500)
    vocab_size: int = Field(2048, ge=300, description="BPE vocabulary trained on the world's text")
    n_layers: int = Field(2, gt=0)
    d_model: int = Field(64, gt=0)
    n_heads: int = Field(4, gt=0)
    d_mlp: int = Field(256, gt=0)
    seq_len: int = Field(0, ge=0, description="context length; 0: the longest possible biography")
    batch_size: int = Field(32, gt=0)
    steps: int = Field(2000, gt=0)
    lr: float = Field(3e-3, gt=0, description="peak learning rate (cosine decay to 0, no warm-up)")
    weight_decay: float = Field(0.1, ge=0)
    beta2: float = Field(0.95, gt=0, lt=1)
    eval_every: int = Field(100, gt=0)
    eval_individuals: int = Field(200, gt=0, description="seen (and at most as many unseen) individuals scored")
    bf16: bool = Field(True, description="bfloat16 autocast on a GPU (ignored on a CPU)")
    # who the training biographies are about, and how long to train (the dynamics studies' knobs)
    alpha: float = Field(0.0, ge=0, description="individual i drawn with probability ∝ (i+1)^-alpha (0: uniform)")
    celebrities: int = Field(0, ge=0, description="the first n individuals are drawn celebrity_weight times as often")
    celebrity_weight: float = Field(1.0, gt=0)
    warmup_individuals: int = Field(0, ge=0, description="train first on the first n individuals only ...")
    warmup_epochs: float = Field(0.0, ge=0, description="... for this many passes over them, then on all")
    schedule_steps: int = Field(0, ge=0, description="the cosine schedule's length (0: steps)")
    stop_after_plateau: bool = Field(False, description="stop once every seed's plateau has ended")

    @model_validator(mode="after")
    def _heads_divide(self) -> BiographyConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.warmup_individuals and (self.alpha or self.celebrities):
            raise ValueError("a warm-up on a subset is uniform: set warmup_individuals or alpha/celebrities, not both")
        fewest = min(self.populations)
        for key in ("celebrities", "warmup_individuals"):
            if getattr(self, key) > fewest:
                raise ValueError(f"{key} ({getattr(self, key)}) exceeds the number of individuals ({fewest})")
        if self.schedule_steps and self.schedule_steps < self.steps:
            raise ValueError(
                f"schedule_steps ({self.schedule_steps}) is shorter than steps ({self.steps}): past its end the "
                "cosine would raise the learning rate again"
            )
        return self

    @property
    def pools(self) -> bio.Pools:
        """The value pools the world draws from."""
        return bio.Pools(**{key: getattr(self, key) for key in bio.pool_limits()})

    @property
    def populations(self) -> list[int]:
        """The numbers of individuals trained on: one here, several in a grid over N."""
        return [self.n_individuals]

    @property
    def warmup_steps(self) -> int:
        """Steps of the warm-up phase: `warmup_epochs` passes over `warmup_individuals` biographies."""
        return math.ceil(self.warmup_individuals * self.warmup_epochs / self.batch_size)


class Config(BiographyConfig):
    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)


# the laptop world: N >= 5x every non-name pool from N = 200 on (STUDIES.md C3), and pools of 40 keep chance
# accuracy (1/40) well under the plateau's 5% line; the dynamics studies share it
LAPTOP_POOLS = {"n_years": 40, "n_cities": 40, "n_universities": 40, "n_majors": 40, "n_companies": 40}
LAPTOP_WORLD = {**LAPTOP_POOLS, "n_individuals": 800, "eval_individuals": 100}

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "seeds": 2,
        "n_individuals": 20,
        "n_unseen": 10,
        "d_model": 32,
        "n_heads": 2,
        "d_mlp": 64,
        "steps": 40,
        "eval_every": 20,
        "eval_individuals": 10,
        "batch_size": 8,
    },
    # N = 800, 20x every non-name pool (days 28, months 12, 40 of everything else), so the value distribution
    # is learnt before any individual; 2 layers x 64, 1500 steps of 32 biographies on a 2400-step cosine (the
    # learning rate is >= 88% of its peak until the plateau ends, ~step 500); an evaluation of 100 individuals
    # every 30 steps, so the plateau spans 6-8 of them; 5 seeds (the three-phase claim is judged in every
    # seed). Measured on single seeds: phase 1 ends at step 250-300, the plateau at 450-540, held-out accuracy
    # 64% at step 1400 and 77% at 1600. Cost alone on 2 cores: 0.54 s a step and 2.9 s an evaluation.
    "laptop": {"seeds": 5, **LAPTOP_WORLD, "steps": 1500, "schedule_steps": 2400, "eval_every": 30},
    "paper": {  # Zucchet et al.: 64k individuals, 8 layers x 512, 16k steps of 128 sequences (GPU)
        "seeds": 1,
        "n_individuals": 64_000,
        "n_unseen": 4_000,
        "vocab_size": 32_000,
        "n_layers": 8,
        "d_model": 512,
        "n_heads": 8,
        "d_mlp": 2048,
        "seq_len": 512,
        "batch_size": 128,
        "steps": 16_000,
        "lr": 4e-4,
        "eval_every": 250,
        "eval_individuals": 1000,
    },
}


# --- the world and the data ---------------------------------------------------------------------------


@functools.cache
def encoder(
    n_individuals: int, n_unseen: int, world_seed: int, vocab_size: int, pools: bio.Pools = bio.PAPER_POOLS
) -> bio.BiographyEncoder:
    """The world and its tokenizer (cached: sweeps and studies built on this one reuse them). The tokenizer
    is trained on the full text whatever the pools, so a smaller world tokenizes its values as ever."""
    world = bio.World.generate(n_individuals, n_unseen, world_seed, pools=pools)
    return bio.BiographyEncoder(world, bio.load_tokenizer(vocab_size))


def world_of(cfg: BiographyConfig) -> bio.BiographyEncoder:
    return encoder(cfg.n_individuals, cfg.n_unseen, cfg.world_seed, cfg.vocab_size, cfg.pools)


class NoKnowledge(NamedTuple):
    """What a model that knows the value distribution but no individual scores in the configured world."""

    pool: float  # loss: the pools' mean log-size (the source's baseline)
    empirical: float  # loss: the seen values' entropy (the phase detector's baseline)
    chance: float  # accuracy: greedy guessing of the most common values (`biographies.chance_accuracy`)


def baselines(cfg: BiographyConfig) -> NoKnowledge:
    """The no-knowledge levels of the configured world."""
    world = world_of(cfg).world
    return NoKnowledge(bio.no_knowledge_baseline(cfg.pools), bio.empirical_baseline(world), bio.chance_accuracy(world))


def context_length(cfg: BiographyConfig, enc: bio.BiographyEncoder) -> int:
    return cfg.seq_len or enc.max_length


Sampler = Callable[[np.random.Generator, np.ndarray], np.ndarray]  # (rng, step of each row) -> individuals


def sampler(cfg: BiographyConfig) -> Sampler:
    """Who each training biography is about: uniform over the N individuals by default; Zipf-like
    (∝ (i+1)^-alpha) and/or with `celebrities` drawn more often; or, during a warm-up, uniform over the
    first `warmup_individuals` only."""
    n, warm_n, warm_steps = cfg.n_individuals, cfg.warmup_individuals, cfg.warmup_steps
    weights = np.arange(1, n + 1, dtype=float) ** -cfg.alpha
    weights[: cfg.celebrities] *= cfg.celebrity_weight
    cdf = np.cumsum(weights / weights.sum())
    uniform = cfg.alpha == 0 and (cfg.celebrities == 0 or cfg.celebrity_weight == 1)

    def draw(rng: np.random.Generator, steps: np.ndarray) -> np.ndarray:
        if not uniform:
            return np.minimum(np.searchsorted(cdf, rng.random(len(steps)), side="right"), n - 1)
        if warm_steps and steps[0] < warm_steps:
            return np.where(steps < warm_steps, rng.integers(0, warm_n, len(steps)), rng.integers(0, n, len(steps)))
        return rng.integers(0, n, len(steps))

    return draw


class BiographyStream(ChunkedStream):
    """Every member's training biographies: member k draws from its seed's generator."""

    def __init__(self, cfg: BiographyConfig, enc: bio.BiographyEncoder, seeds: list[int], member_seed: list[int]):
        super().__init__([NumpyGenerator(s, "data") for s in seeds], DATA_CHUNK, cfg.steps)
        self.cfg, self.enc, self.member_seed = cfg, enc, member_seed
        self.seq_len = context_length(cfg, enc)
        self.sampler = sampler(cfg)

    def individuals(self, gen: NumpyGenerator) -> np.ndarray:
        """Who the chunk's biographies are about (`sampler`)."""
        steps = np.repeat(np.arange(self.drawing, self.drawing + DATA_CHUNK), self.cfg.batch_size)
        return self.sampler(gen.rng, steps)

    def draw(self) -> dict[str, Any]:
        per_seed = [self.enc.sample(self.individuals(g), "train", g.rng, self.seq_len).tokens for g in self.gens]
        tokens = torch.stack([per_seed[s] for s in self.member_seed])  # [K, chunk * B, L]
        tokens = tokens.view(len(self.member_seed), DATA_CHUNK, self.cfg.batch_size, -1)
        lengths = (tokens != self.enc.pad_id).sum(-1).amax(dim=(0, 2))  # [chunk]: the longest biography
        return {"tokens": tokens, "widths": lengths.tolist()}

    def batch(self, data: dict[str, Any], i: int) -> Tensor:
        """Step i's tokens [K, B, width], cut after the step's longest biography (the rest is padding)."""
        return data["tokens"][:, i, :, : data["widths"][i]].to(self.cfg.device)


# --- the model and its loss ----------------------------------------------------------------------------


def build_model(cfg: BiographyConfig, enc: bio.BiographyEncoder, init_seeds: list[int]) -> EnsembleTransformer:
    model = EnsembleTransformer(
        len(init_seeds),
        enc.vocab_size,
        context_length(cfg, enc),
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        n_out=enc.vocab_size,
    )
    model.to(cfg.device).reset_parameters([generator(s, "init", cfg.device) for s in init_seeds])
    return model


def autocast(cfg: BiographyConfig) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on a GPU when asked; full precision otherwise."""
    if cfg.bf16 and cfg.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lm_loss(cfg: BiographyConfig, pad_id: int):  # type: ignore[no-untyped-def]
    """Per-member next-token cross-entropy, averaged over the tokens that are not padding."""

    def loss(model: EnsembleTransformer, tokens: Tensor) -> Tensor:
        with autocast(cfg):
            logits = model(tokens[..., :-1])
        target = tokens[..., 1:]
        ce = F.cross_entropy(logits.float().flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
        real = (target != pad_id).float()
        return (ce * real).sum(dim=(1, 2)) / real.sum(dim=(1, 2))

    return loss


def cosine(steps: int):  # type: ignore[no-untyped-def]
    """The learning-rate multiplier: cosine decay from 1 to 0 over `steps`, no warm-up."""
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * step / steps))


# --- evaluation ----------------------------------------------------------------------------------------


def evaluation_sets(cfg: BiographyConfig, enc: bio.BiographyEncoder) -> dict[str, bio.Batch]:
    """Fixed biographies to score: the same for every seed and every evaluation. The seen individuals
    scored are a uniform sample of all N (not the first ones: under Zipf sampling or a warm-up on a
    subset, the first individuals are the most trained ones)."""
    world, seq_len = enc.world, context_length(cfg, enc)
    pick = np.random.default_rng(cfg.world_seed).permutation(world.n_individuals)[: cfg.eval_individuals]
    groups = {"seen": np.sort(pick), "unseen": np.asarray(world.unseen)[: cfg.eval_individuals]}
    sets = {
        name: enc.eval_batch(groups[who], split, seed=cfg.world_seed + i, seq_len=seq_len)
        for i, (name, (who, split)) in enumerate(EVAL_SETS.items())
    }
    return {name: batch.trimmed(enc.pad_id) for name, batch in sets.items()}


@torch.no_grad()
def score(model: EnsembleTransformer, batch: bio.Batch, cfg: BiographyConfig) -> AttributeScores:
    """Attribute scores [K, B, 6] of every member on one evaluation set, a chunk of sequences at a time."""
    parts = []
    for i in range(0, len(batch.tokens), EVAL_CHUNK):
        tokens = batch.tokens[i : i + EVAL_CHUNK].to(cfg.device)
        with autocast(cfg):
            logits = model(tokens.expand(model.n_models, -1, -1))
        attr = batch.value_attr[i : i + EVAL_CHUNK].to(cfg.device)
        parts.append(attribute_scores(logits, tokens, attr, len(bio.ATTRIBUTES)))
    return AttributeScores(*(torch.cat([getattr(p, f) for p in parts], dim=1) for f in AttributeScores.__annotations__))


def score_every_seen(model: EnsembleTransformer, cfg: BiographyConfig) -> tuple[bio.Batch, AttributeScores]:
    """Every seen individual once, in held-out templates, and the members' scores on them: knowledge of
    the whole population, not of a sample (the final numbers of the studies built on this one)."""
    enc = world_of(cfg)
    batch = enc.eval_batch(np.arange(cfg.n_individuals), "heldout", cfg.world_seed + 1, context_length(cfg, enc))
    batch = batch.trimmed(enc.pad_id)
    return batch, score(model, batch, cfg)


def curve_metrics(sets: dict[str, bio.Batch], cfg: BiographyConfig):  # type: ignore[no-untyped-def]
    """The metrics tracked along training, per member: loss and accuracy on each evaluation set."""

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        out = {}
        for name, batch in sets.items():
            s = score(model, batch, cfg)
            out[f"loss_{name}"] = s.loss.nanmean(dim=(1, 2)).cpu()
            out[f"acc_{name}"] = s.correct.nanmean(dim=(1, 2)).cpu()
            out[f"conf_{name}"] = s.confidence.nanmean(dim=(1, 2)).cpu()
        return out

    return evaluate


# --- protocol ------------------------------------------------------------------------------------------


def train(
    cfg: BiographyConfig, ctx: RunContext, init_seeds: list[int] | None = None, label: str = "knowledge"
) -> tuple[EnsembleTransformer, TrainLog, dict[str, bio.Batch]]:
    """Train one transformer per seed on the biographies, scoring the evaluation sets along the way.
    Also how the dynamics studies built on this one obtain trained models and curves."""
    enc, seeds = world_of(cfg), cfg.seed_list
    model = build_model(cfg, enc, init_seeds or seeds)
    stream = BiographyStream(cfg, enc, seeds, list(range(len(seeds))))
    sets = evaluation_sets(cfg, enc)
    stop = functools.partial(plateau_ended, levels=baselines(cfg))
    with ctx.progress(f"{label} · {len(seeds)} transformers · N={cfg.n_individuals}", cfg.steps) as update:
        log = train_ensemble(
            model,
            stream,
            lm_loss(cfg, enc.pad_id),
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=(0.9, cfg.beta2),
            decoupled_weight_decay=True,
            lr_schedule=cosine(cfg.schedule_steps or cfg.steps),
            evaluate=curve_metrics(sets, cfg),
            eval_every=cfg.eval_every,
            on_step=update,
            checkpoint=ctx.checkpoint("train"),
            cpu_threads=None,  # the transformer's matmuls are large enough to use every core
            stop_when=stop if cfg.stop_after_plateau else None,
        )
    return model, log, sets


def plateau_ended(log: TrainLog, levels: NoKnowledge) -> bool:
    """Every member is past its plateau, or past where one could have been: after phase 1 (`detect_phases`
    against the empirical baseline), its accuracy has reached the plateau's line, chance + 5 points.
    Whether the detector accepted a plateau does not matter here: a member without one would otherwise
    train to its last step (at N = 200 in the laptop world, 3000 steps for a question settled by step 165)."""
    steps = np.array([s for s, _ in log.evals])
    loss = np.stack([m["loss_heldout_templates"].numpy() for _, m in log.evals])
    acc = np.stack([m["acc_heldout_templates"].numpy() for _, m in log.evals])
    return all(_past_plateau(steps, loss[:, j], acc[:, j], levels) for j in range(loss.shape[1]))


def _past_plateau(steps: np.ndarray, loss: np.ndarray, acc: np.ndarray, levels: NoKnowledge) -> bool:
    phases = detect_phases(steps, loss, acc, levels.empirical, levels.chance)
    if not math.isnan(phases.plateau_end_step):
        return True
    if math.isnan(phases.phase1_end_step):
        return False
    return bool((acc[steps >= phases.phase1_end_step] >= levels.chance + PLATEAU_ACCURACY).any())


def final_metrics(
    model: EnsembleTransformer, log: TrainLog, sets: dict[str, bio.Batch], cfg: BiographyConfig
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """The summary's per-member metrics, and per-member calibration bins for the figures."""
    levels = baselines(cfg)
    steps = np.array([s for s, _ in log.evals])
    curve = {name: np.stack([m[name].numpy() for _, m in log.evals]) for name in log.evals[0][1]}  # [E, K]
    model.eval()
    seen, unseen = score(model, sets["heldout_templates"], cfg), score(model, sets["unseen"], cfg)
    k = model.n_models
    out: dict[str, np.ndarray] = {name: np.zeros(k) for name in SUMMARY_METRICS}
    bins: dict[str, list[np.ndarray]] = {}
    for j in range(k):
        held, unseen_curve = curve["loss_heldout_templates"][:, j], curve["loss_unseen"][:, j]
        values = {
            "no_knowledge_baseline": levels.pool,
            "empirical_baseline": levels.empirical,
            "chance_accuracy": levels.chance,
            **phase_metrics(steps, held, curve["acc_heldout_templates"][:, j], unseen_curve, levels),
            "final_loss_heldout_templates": curve["loss_heldout_templates"][-1, j],
            "final_loss_unseen_individuals": curve["loss_unseen"][-1, j],
            "final_acc_train_templates": curve["acc_train_templates"][-1, j],
            "final_acc_heldout_templates": curve["acc_heldout_templates"][-1, j],
            "final_acc_unseen_individuals": curve["acc_unseen"][-1, j],
            "conf_seen": float(seen.confidence[j].nanmean()),
            "conf_unseen": float(unseen.confidence[j].nanmean()),
            "ece_seen": expected_calibration_error(
                seen.confidence[j].cpu().numpy(), seen.first_correct[j].cpu().numpy()
            ),
            "ece_unseen": expected_calibration_error(
                unseen.confidence[j].cpu().numpy(), unseen.first_correct[j].cpu().numpy()
            ),
        }
        for name, value in values.items():
            out[name][j] = value
        for who, s in (("seen", seen), ("unseen", unseen)):
            conf, acc, count = reliability(
                s.confidence[j].cpu().numpy(), s.first_correct[j].cpu().numpy(), CALIBRATION_BINS
            )
            for what, v in (("confidence", conf), ("accuracy", acc), ("count", count)):
                bins.setdefault(f"{who}_{what}", []).append(v)
    return out, bins


def phase_metrics(
    steps: np.ndarray,
    loss: np.ndarray,
    accuracy: np.ndarray,
    unseen_loss: np.ndarray,
    levels: NoKnowledge,
) -> dict[str, float]:
    """One member's phases, detected on its held-out-template curve against the empirical baseline (the
    no-knowledge level of the values it was trained on), and its unseen individuals' loss around them.

    `unseen_loss_rise` is the hallucination the source describes: the highest unseen loss once the plateau
    has ended, minus the lowest before it ended (the pre-knowledge minimum); NaN without a plateau end."""
    phases = detect_phases(steps, loss, accuracy, levels.empirical, levels.chance)
    end = phases.plateau_end_step
    after, before = steps >= end, steps < end  # both empty when there is no plateau end (NaN)
    peak = unseen_loss[after].max() if after.any() else math.nan
    rise = peak - unseen_loss[before].min() if after.any() and before.any() else math.nan
    lowest = unseen_loss.min()
    return {
        "phase1_end_step": phases.phase1_end_step,
        "plateau_end_step": end,
        "plateau_length": end - phases.phase1_end_step,
        "plateau_detected": float(phases.plateau),
        "plateau_evals": float(phases.plateau_evals),
        "plateau_flatness": phases.flatness,
        "plateau_flatness_after": phases.flatness_after,
        "unseen_loss_rise": rise,
        "unseen_loss_peak_minus_baseline": peak - levels.pool,
        "unseen_loss_min_minus_baseline": lowest - levels.pool,
        "unseen_loss_peak_minus_empirical": peak - levels.empirical,
        "unseen_loss_min_minus_empirical": lowest - levels.empirical,
    }


SUMMARY_METRICS = (
    "no_knowledge_baseline",
    "empirical_baseline",
    "chance_accuracy",
    "phase1_end_step",
    "plateau_end_step",
    "plateau_length",
    "plateau_detected",
    "plateau_evals",
    "plateau_flatness",
    "plateau_flatness_after",
    "final_loss_heldout_templates",
    "final_loss_unseen_individuals",
    "final_acc_train_templates",
    "final_acc_heldout_templates",
    "final_acc_unseen_individuals",
    "unseen_loss_rise",
    "unseen_loss_peak_minus_baseline",
    "unseen_loss_min_minus_baseline",
    "unseen_loss_peak_minus_empirical",
    "unseen_loss_min_minus_empirical",
    "conf_seen",
    "conf_unseen",
    "ece_seen",
    "ece_unseen",
)


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    return measure_as("default", cfg, ctx)


# a study's own final measurements of the trained members: {metric: [K] values}
ExtraFinals = Callable[[EnsembleTransformer, BiographyConfig], dict[str, np.ndarray]]


def measure_as(arm: str, cfg: BiographyConfig, ctx: RunContext, extra: ExtraFinals | None = None) -> pd.DataFrame:
    """The protocol's measurements for one configuration, labelled `arm` (a job of the grid studies);
    `extra` adds a study's own final metrics of the trained members (after `final_metrics`)."""
    model, log, sets = train(cfg, ctx, label=arm)
    members = [(arm, s) for s in cfg.seed_list]
    finals, bins = final_metrics(model, log, sets, cfg)
    if extra is not None:
        finals = {**finals, **extra(model, cfg)}
    steps = list(range(1, len(log.losses) + 1))  # fewer than cfg.steps if training stopped early
    frames = [member_rows(members, steps, log.losses.numpy(), "train", "loss")]
    eval_steps = [s for s, _ in log.evals]
    for name in log.evals[0][1]:
        frames.append(member_rows(members, eval_steps, np.stack([m[name].numpy() for _, m in log.evals]), "eval", name))
    frames += [member_rows(members, [steps[-1]], v[None], "test", n) for n, v in finals.items()]
    # calibration bins: split "calibration", step = bin index (0 .. CALIBRATION_BINS - 1)
    frames += [
        member_rows(members, list(range(CALIBRATION_BINS)), np.stack(v, axis=1), "calibration", n)
        for n, v in bins.items()
    ]
    return pd.concat(frames, ignore_index=True)


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
    after = cells.get("plateau_flatness_after", {"values": [None] * (i + 1)})["values"][i]  # newer runs only
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
        edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
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
