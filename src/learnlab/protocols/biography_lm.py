"""A transformer learning facts from biographies: the protocol of the knowledge studies (C2–C8).

The world: N individuals with six attributes and 25 templates per attribute, 20 of them used for
training per (individual, attribute) and 5 held out (`learnlab.tasks.biographies`); every training
sequence is a fresh biography (<bos> and six shuffled sentences, one template each) of an individual
drawn by the config's sampling knobs (uniform by default). The model: a decoder-only pre-norm
transformer (`EnsembleTransformer`, one member per seed, trained together) learning next-token
prediction with AdamW (β 0.9/β2, weight decay on matrices) under a cosine learning-rate decay without
warm-up. The measurements: fixed biographies scored on their value tokens along training (attribute
loss, accuracy, first-token confidence: `learnlab.metrics.attribute_scores`), the no-knowledge levels
of the world (`NoKnowledge`), the phases of each member's held-out-template curve
(`learnlab.metrics.detect_phases`) and the final metrics of knowledge-acquisition (`measure_as`, which
the grid studies run as their jobs). Studies build on these pieces: a study's own knobs live in its
config, the protocol's in `BiographyConfig`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.rng import NumpyGenerator, generator
from learnlab.engine.stream import ChunkedStream
from learnlab.engine.train import Snapshots, TrainLog, train_ensemble, warmup_cosine
from learnlab.metrics import (
    PLATEAU_ACCURACY,
    AttributeScores,
    Phases,
    attribute_scores,
    detect_phases,
    expected_calibration_error,
    reliability,
)
from learnlab.models.moe import MoEMLP, moe_layers
from learnlab.models.transformer import EnsembleTransformer, Hooks
from learnlab.protocols.measurements import curves, log_rows, member_rows
from learnlab.tasks import biographies as bio

DATA_CHUNK = 20  # training steps drawn at once per seed (part of the data stream's definition)
EVAL_CHUNK = 32  # sequences per forward pass when scoring
EVAL_SETS = {  # name: (individuals, templates)
    "train_templates": ("seen", "train"),
    "heldout_templates": ("seen", "heldout"),
    "unseen": ("unseen", "heldout"),
}
CALIBRATION_BINS = 10


# --- the config ----------------------------------------------------------------------------------------


class BiographyConfig(StudyConfig):
    """The world, the transformer and its training: shared by the studies built on the biographies.

    The sampling knobs (who the training biographies are about: `alpha`, `celebrities`,
    `celebrity_weight`, `warmup_individuals`, `warmup_epochs`) stay flat keys, as `--set alpha=0.6` and
    every saved config.yaml name them (and data-imbalance's grid redefines `celebrities`); the code
    takes them together as `sampling`."""

    # the world
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
    # the model
    n_layers: int = Field(2, gt=0)
    d_model: int = Field(64, gt=0)
    n_heads: int = Field(4, gt=0)
    d_mlp: int = Field(256, gt=0)
    seq_len: int = Field(0, ge=0, description="context length; 0: the longest possible biography")
    # the optimiser and the evaluations
    batch_size: int = Field(32, gt=0)
    steps: int = Field(2000, gt=0)
    lr: float = Field(3e-3, gt=0, description="peak learning rate (cosine decay to 0, no warm-up)")
    weight_decay: float = Field(0.1, ge=0)
    beta2: float = Field(0.95, gt=0, lt=1)
    eval_every: int = Field(100, gt=0)
    eval_individuals: int = Field(200, gt=0, description="seen (and at most as many unseen) individuals scored")
    bf16: bool = Field(True, description="bfloat16 autocast on a GPU (ignored on a CPU)")
    # sampling: who the training biographies are about (`Sampling`), and how long to train
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

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.n_individuals, self.alpha, self.celebrities, self.celebrity_weight,
                        self.warmup_individuals, self.warmup_steps)  # fmt: skip


def protocol_config(cfg: StudyConfig, **changes: Any) -> BiographyConfig:
    """The protocol's own fields of a study's config (what one of its trainings needs), then `changes`."""
    shared = {key: getattr(cfg, key) for key in BiographyConfig.model_fields if key != "arms"}
    return BiographyConfig(**{**shared, **changes})


class TrainedRun(NamedTuple):
    """A finished biography run opened for studies that probe, trace or edit its models (E1, E2)."""

    study: str
    world: BiographyConfig  # its config's protocol fields: the world, the model and its training
    models: dict[str, Any]  # name: learnlab.store.models.KeptEnsemble


def trained_run(run_dir: str, **changes: Any) -> TrainedRun:
    """The world and the kept models of a finished run of any biography study; a run of another study, or
    not a finished run, is a LearnlabError naming it. `changes` (e.g. device) go into the world."""
    from pathlib import Path

    from learnlab.config import config_from_yaml
    from learnlab.errors import LearnlabError
    from learnlab.store.models import read_run_models
    from learnlab.store.rundir import read_summary

    path = Path(run_dir)
    study = str(read_summary(path).get("study", "?"))
    values = config_from_yaml(path / "config.yaml") if (path / "config.yaml").is_file() else {}
    missing = [k for k in BiographyConfig.model_fields if k not in values and k not in ("study", "preset", "arms")]
    if missing:
        raise LearnlabError(f"from_run {run_dir!r}: a {study!r} run, not of a biography study (no {missing[0]!r})")
    fields = {k: v for k, v in values.items() if k in BiographyConfig.model_fields and k != "arms"}
    return TrainedRun(study, BiographyConfig(**{**fields, **changes}), read_run_models(path))


# the presets the biography studies share: a world for tests, the laptop's value pools, the paper's scale
SMOKE: dict[str, Any] = {
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
}
# the laptop world: N >= 5x every non-name pool from N = 200 on (STUDIES.md C3); with pools of 40, chance
# accuracy (greedy guessing of the commonest values) is 3-5%, and the plateau's line sits 5 points above it
LAPTOP_POOLS = {"n_years": 40, "n_cities": 40, "n_universities": 40, "n_majors": 40, "n_companies": 40}
PAPER: dict[str, Any] = {  # Zucchet et al.: 64k individuals, 8 layers x 512, 16k steps of 128 sequences (GPU)
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
}


# --- the world and the data ---------------------------------------------------------------------------


@functools.cache
def encoder(
    n_individuals: int, n_unseen: int, world_seed: int, vocab_size: int, pools: bio.Pools = bio.PAPER_POOLS
) -> bio.BiographyEncoder:
    """The world and its tokenizer (cached: sweeps and the studies built on this protocol reuse them). The
    tokenizer is trained on the full text whatever the pools, so a smaller world tokenizes its values as ever."""
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


@dataclass(frozen=True)
class Sampling:
    """Who each training biography is about: uniform over the N individuals by default; Zipf-like
    (∝ (i+1)^-alpha) and/or with `celebrities` drawn `celebrity_weight` times as often; or, during the
    first `warmup_steps`, uniform over the first `warmup_individuals` only."""

    individuals: int
    alpha: float = 0.0
    celebrities: int = 0
    celebrity_weight: float = 1.0
    warmup_individuals: int = 0
    warmup_steps: int = 0

    def sampler(self) -> Sampler:
        n, warm_n, warm_steps = self.individuals, self.warmup_individuals, self.warmup_steps
        weights = np.arange(1, n + 1, dtype=float) ** -self.alpha
        weights[: self.celebrities] *= self.celebrity_weight
        cdf = np.cumsum(weights / weights.sum())
        uniform = self.alpha == 0 and (self.celebrities == 0 or self.celebrity_weight == 1)

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
        self.sampler = cfg.sampling.sampler()

    def individuals(self, gen: NumpyGenerator) -> np.ndarray:
        """Who the chunk's biographies are about (`Sampling`)."""
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


# --- the model, its loss and its attention -------------------------------------------------------------


# an untrained model from EnsembleTransformer's arguments (n_models, vocab_size, n_ctx, d_model=, n_layers=,
# n_heads=, d_mlp=, n_out=): EnsembleTransformer itself, or e.g. functools.partial(MoETransformer, n_experts=4)
ModelFactory = Callable[..., EnsembleTransformer]


def build_model(
    cfg: BiographyConfig, enc: bio.BiographyEncoder, init_seeds: list[int], factory: ModelFactory | None = None
) -> EnsembleTransformer:
    """One member per init seed, GPT-2's initialisation; `factory` (default: the dense `EnsembleTransformer`)
    builds it from the config's shape, so a study can swap the MLP (a mixture of experts) and keep the rest."""
    model = (factory or EnsembleTransformer)(
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


LossFn = Callable[[EnsembleTransformer, Tensor], Tensor]


def lm_loss(
    cfg: BiographyConfig,
    pad_id: int,
    hooks: Callable[[Tensor], Hooks] | None = None,
    experts: dict[str, MoEMLP] | None = None,
) -> LossFn:
    """Per-member next-token cross-entropy, averaged over the tokens that are not padding. `hooks(inputs)`,
    where given, gives the forward pass's hooks for those inputs (attention-patching's copied patterns).
    `experts` (the model's `moe_layers`), where given, adds each mixture-of-experts layer's Switch
    load-balancing loss over the real tokens (`switch_loss`): the MoE's own `aux_loss` counts padding too,
    so a member's loss would depend on the batch width, i.e. on the other members' biographies."""

    def loss(model: EnsembleTransformer, tokens: Tensor) -> Tensor:
        inputs = tokens[..., :-1]
        routers: dict[str, Tensor] = {}
        with autocast(cfg):
            given = None if hooks is None else hooks(inputs)
            if experts:
                keep = functools.partial(_keep, routers)
                given = {**(given or {}), **{f"{name}.hook_router": keep for name in experts}}
            logits = model(inputs, hooks=given)
        target = tokens[..., 1:]
        ce = F.cross_entropy(logits.float().flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
        real = (target != pad_id).float()
        out = (ce * real).sum(dim=(1, 2)) / real.sum(dim=(1, 2))
        for name, layer in (experts or {}).items():
            out = out + switch_loss(routers[f"{name}.hook_router"], inputs != pad_id, layer.top_k, layer.alpha)
        return out

    return loss


def _keep(store: dict[str, Tensor], x: Tensor, name: str) -> None:
    store[name] = x


def switch_loss(logits: Tensor, real: Tensor, top_k: int, alpha: float) -> Tensor:
    """Switch's load-balancing loss α·E·Σ fᵢ·Pᵢ per member over the real tokens only: router logits
    [K, B, T, E], real [K, B, T] (True: not padding); fᵢ the share of top-k assignments to expert i, Pᵢ its
    mean router probability (`models.moe.MoEMLP`'s loss when nothing is padding)."""
    e = logits.shape[-1]
    weight = real.float()[..., None]  # [K, B, T, 1]
    probs = logits.float().softmax(dim=-1)
    counts = F.one_hot(probs.topk(top_k, dim=-1).indices, e).sum(dim=-2).float()  # [K, B, T, E]
    tokens = weight.sum(dim=(1, 2))  # [K, 1]
    share = (counts * weight).sum(dim=(1, 2)) / (tokens * top_k)
    mean_prob = (probs * weight).sum(dim=(1, 2)) / tokens
    return alpha * e * (share * mean_prob).sum(dim=-1)


def pattern_names(n_layers: int) -> list[str]:
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]


Patterns = dict[str, Tensor]  # hook name -> attention pattern [K, B, heads, T, T], layer by layer


class _Enough(Exception):
    """Raised by the hook of the last attention pattern: the rest of the forward pass is not needed."""


@torch.no_grad()
def attention_patterns(model: EnsembleTransformer, tokens: Tensor) -> Patterns:
    """Every layer's attention pattern [K, B, heads, T, T] on tokens [K, B, T] (or [B, T], the same for
    every member), detached, by hook name in layer order; the forward pass stops after the last layer's
    pattern (its MLP and the unembedding would be wasted)."""
    if tokens.dim() == 2:
        tokens = tokens.expand(model.n_models, -1, -1)
    names = pattern_names(model.n_layers)
    cache: dict[str, Tensor] = {}

    def keep(pattern: Tensor, name: str) -> None:
        cache[name] = pattern.detach()
        if name == names[-1]:
            raise _Enough

    with contextlib.suppress(_Enough):
        model(tokens, hooks=dict.fromkeys(names, keep))
    return cache


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
    the whole population, not of a sample (the final numbers of the grid studies)."""
    enc = world_of(cfg)
    batch = enc.eval_batch(np.arange(cfg.n_individuals), "heldout", cfg.world_seed + 1, context_length(cfg, enc))
    batch = batch.trimmed(enc.pad_id)
    return batch, score(model, batch, cfg)


Evaluator = Callable[[EnsembleTransformer], dict[str, Tensor]]
SCORES = {"loss": "loss", "acc": "correct", "conf": "confidence"}  # a curve's prefix: its AttributeScores field


def curve_metrics(
    sets: dict[str, bio.Batch], cfg: BiographyConfig, measures: tuple[str, ...] = ("loss", "acc", "conf")
) -> Evaluator:
    """The metrics tracked along training, per member: `{measure}_{set}` for each evaluation set and each
    of `measures` (attribute loss, attribute accuracy, first-token confidence; means over the set)."""

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        out = {}
        for name, batch in sets.items():
            s = score(model, batch, cfg)
            for measure in measures:
                out[f"{measure}_{name}"] = getattr(s, SCORES[measure]).nanmean(dim=(1, 2)).cpu()
        return out

    return evaluate


# --- training ------------------------------------------------------------------------------------------


def train(
    cfg: BiographyConfig,
    ctx: RunContext,
    label: str = "knowledge",
    *,
    init_seeds: list[int] | None = None,
    evaluate: Evaluator | None = None,
    loss: LossFn | None = None,
    eval_steps: Sequence[int] | None = None,
    snapshot_steps: Sequence[int] = (),
    snapshots: Snapshots | None = None,
    checkpoint: str = "train",
    stop_after_plateau: bool | None = None,
    arm: str | None = None,
    model_factory: ModelFactory | None = None,
) -> tuple[EnsembleTransformer, TrainLog]:
    """Train one transformer per seed on the biographies (AdamW, the cosine schedule), evaluating at
    `eval_steps` (default: every `eval_every` steps) and at the end: `evaluate` (default: `curve_metrics`
    on `evaluation_sets`). `loss` defaults to `lm_loss`; the weights at `snapshot_steps` go to `snapshots`
    (`log.snapshots`); the training stops once every seed's plateau has ended if `stop_after_plateau`
    (default: the config's). The trained ensemble is kept as the run's model `checkpoint`, its members
    (`arm`, default `label`; seed), with the tokenizer (`RunContext.keep_model`). `model_factory` swaps the
    dense transformer (`build_model`); a mixture of experts adds its load-balancing loss to the default loss
    (`lm_loss`'s `experts`; a given `loss` is taken as it is)."""
    enc, seeds = world_of(cfg), cfg.seed_list
    model = build_model(cfg, enc, init_seeds or seeds, model_factory)
    stream = BiographyStream(cfg, enc, seeds, list(range(len(seeds))))
    evaluate = evaluate or curve_metrics(evaluation_sets(cfg, enc), cfg)
    stop = cfg.stop_after_plateau if stop_after_plateau is None else stop_after_plateau
    ctx.snapshot(checkpoint, 0, model)
    with ctx.progress(f"{label} · {len(seeds)} transformers · N={cfg.n_individuals}", cfg.steps) as update:

        def on_step(step: int) -> None:
            ctx.snapshot(checkpoint, step, model)
            update(step)

        log = train_ensemble(
            model,
            stream,
            loss or lm_loss(cfg, enc.pad_id, experts=moe_layers(model)),
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=(0.9, cfg.beta2),
            decoupled_weight_decay=True,
            lr_schedule=warmup_cosine(cfg.schedule_steps or cfg.steps),
            evaluate=evaluate,
            eval_every=cfg.eval_every if eval_steps is None else 0,
            eval_steps=eval_steps,
            snapshot_steps=snapshot_steps,
            snapshots=snapshots,
            on_step=on_step,
            checkpoint=ctx.checkpoint(checkpoint),
            cpu_threads=None,  # the transformer's matmuls are large enough to use every core
            stop_when=functools.partial(plateau_ended, levels=baselines(cfg)) if stop else None,
        )
    rebuild = {"kwargs": model.kwargs} if hasattr(model, "kwargs") else {}  # a class the store does not know
    ctx.keep_model(checkpoint, model, [(arm or label, s) for s in seeds], tokenizer=enc.tokenizer.to_str(), **rebuild)
    return model, log


# --- phases --------------------------------------------------------------------------------------------


def member_phases(log: TrainLog, levels: NoKnowledge) -> list[Phases]:
    """The phases of every member's held-out-template curve against the empirical no-knowledge level and
    chance accuracy (`detect_phases`): a boundary not reached, or a plateau the detector rejects, is NaN."""
    steps, curve = curves(log)
    loss, acc = curve["loss_heldout_templates"], curve["acc_heldout_templates"]
    return [detect_phases(np.array(steps), loss[:, j], acc[:, j], levels.empirical, levels.chance)
            for j in range(loss.shape[1])]  # fmt: skip


def plateau_ended(log: TrainLog, levels: NoKnowledge) -> bool:
    """Every member is past its plateau, or past where one could have been: after phase 1 (`detect_phases`
    against the empirical baseline), its accuracy has reached the plateau's line, chance + 5 points.
    Whether the detector accepted a plateau does not matter here: a member without one would otherwise
    train to its last step (at N = 200 in the laptop world, 3000 steps for a question settled by step 165)."""
    steps, curve = curves(log)
    loss, acc = curve["loss_heldout_templates"], curve["acc_heldout_templates"]
    return all(_past_plateau(np.array(steps), loss[:, j], acc[:, j], levels) for j in range(loss.shape[1]))


def _past_plateau(steps: np.ndarray, loss: np.ndarray, acc: np.ndarray, levels: NoKnowledge) -> bool:
    phases = detect_phases(steps, loss, acc, levels.empirical, levels.chance)
    if not math.isnan(phases.plateau_end_step):
        return True
    if math.isnan(phases.phase1_end_step):
        return False
    return bool((acc[steps >= phases.phase1_end_step] >= levels.chance + PLATEAU_ACCURACY).any())


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


# --- knowledge-acquisition's measurements of one training ------------------------------------------------


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


def final_metrics(
    model: EnsembleTransformer, log: TrainLog, sets: dict[str, bio.Batch], cfg: BiographyConfig
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """The summary's per-member metrics, and per-member calibration bins for the figures."""
    levels = baselines(cfg)
    eval_steps, curve = curves(log)  # [E, K] each
    steps = np.array(eval_steps)
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


# a study's own final measurements of the trained members: {metric: [K] values}
ExtraFinals = Callable[[EnsembleTransformer, BiographyConfig], dict[str, np.ndarray]]


def measure_as(
    arm: str,
    cfg: BiographyConfig,
    ctx: RunContext,
    extra: ExtraFinals | None = None,
    model_factory: ModelFactory | None = None,
) -> pd.DataFrame:
    """The protocol's measurements for one configuration, labelled `arm` (a job of the grid studies):
    the training loss, the curves, `final_metrics` and the calibration bins (split "calibration", step =
    bin index); `extra` adds a study's own final metrics of the trained members; `model_factory` as `train`."""
    sets = evaluation_sets(cfg, world_of(cfg))
    model, log = train(cfg, ctx, label=arm, evaluate=curve_metrics(sets, cfg), model_factory=model_factory)
    members = [(arm, s) for s in cfg.seed_list]
    finals, bins = final_metrics(model, log, sets, cfg)
    if extra is not None:
        finals = {**finals, **extra(model, cfg)}
    last = len(log.losses)  # fewer than cfg.steps if training stopped early
    frames = log_rows(members, log)
    frames += [member_rows(members, [last], v[None], "test", n) for n, v in finals.items()]
    frames += [
        member_rows(members, list(range(CALIBRATION_BINS)), np.stack(v, axis=1), "calibration", n)
        for n, v in bins.items()
    ]
    return pd.concat(frames, ignore_index=True)
