"""C8 `fine-tuning-forgetting` — fine-tuning on new facts quickly corrupts the old ones.

Source: Zucchet et al. (2025), seeds/002, section 5.2 and appendix F.4. Claims: fine-tuning a model
pre-trained on biographies on biographies of new individuals makes its knowledge of the pre-training
individuals collapse within the first ~100 steps, while knowledge of the new individuals is acquired
slowly; the more new individuals, the more forgetting; replaying old individuals softens the final loss
but not the initial collapse; attention patterns stay stable (the damage is in the feed-forward
associative memory), and a toy associative memory — a one-hidden-layer MLP mapping random keys to
classes — forgets fast too.

Method. Pre-training is the knowledge-acquisition protocol (`biography_lm.train`): one
transformer per seed learns the biographies of N old individuals under a cosine schedule. The new
individuals are the first n of the world's `unseen` ones, never trained on. From the pre-trained
weights, each arm fine-tunes a copy with AdamW (a fresh optimizer, the pre-training's β and weight
decay) at a constant learning rate `ft_lr` on fresh training-template biographies: arm `new-<n>` on n
new individuals only; arm `replay-<w>` on `replay_new` new individuals with replay at weight w: a
biography is about an old individual (uniform over the N) with probability w/(1+w), else about a new
one, so old and new biographies come in the ratio w : 1; arm `frozen-attention-<n>` as `new-<n>` (n =
`replay_new`) with every attention weight (queries, keys, values, output) frozen, the test of whether
forgetting runs through attention. Arms are compared at equal exposures per new individual: every arm
fine-tunes for ⌈ft_exposures · n · (1 + w) / batch⌉ steps, so each new individual appears in about
`ft_exposures` biographies whatever n and w (at equal steps, fewer new individuals would each be seen
more often); `ft_exposures = 0` gives every arm `ft_steps` steps instead.

Knowledge of the first `eval_individuals` old
and new individuals is scored on fixed held-out-template biographies — attribute accuracy (every token
of a value greedy-correct) and attribute loss — at step 0, before the first update, every
`ft_eval_early` steps up to step 100, then every `ft_eval_every` steps. Reported per seed: old accuracy
before fine-tuning, its minimum within the first 100 steps and at the end; new accuracy at steps 100
and at the end; the first evaluated step where old accuracy is below half its start (`old_half_step`)
and where new accuracy reaches 50% (`new_half_step`; missing if never); the arm's steps (`ft_steps`) and
biographies per new individual (`new_exposures`). Attention change is the
total-variation distance between two models' attention distributions (half the L1 difference of
`blocks.{l}.attn.hook_pattern` per query), averaged over heads and over the queries of
`pattern_sequences` fixed old-individual biographies — all real tokens (`attn_change_l{l}`), and the
queries that predict a value's first token, where a fact is recalled (`attn_recall_change_l{l}`):
between the pre-trained and the fine-tuned model in each arm, and, as the scale of a real change,
between the initialisation and the pre-trained model (arm `pre-training`). Paired effects (replay
against no replay at the same n; frozen attention against free attention; each n against the fewest new
individuals) are per-seed differences between models fine-tuned from the same pre-trained weights.

Verdicts are paired over seeds (every arm of a seed starts from the same pre-trained model) with
Student-t 95% intervals, 5 seeds at least: a directional claim holds when the interval lies wholly on its
side, a claim of no change (attention stays stable; frozen attention forgets as much) when it lies inside
the margin its text states. Forgetting is judged only where the pre-trained model knew at least half of
the old attributes (else there is little to lose and a ratio of noise), and a collapse only in arms that
ran 100 steps. A time that was never reached counts against the claim that needs it (old accuracy that
never halves refutes "halves first"), or as its lower bound, the arm's last step, where that is the
conservative side. Each seed's pre-training with all of its
fine-tunings is one job (pre-training runs once per seed; `--set backend=ray` runs seeds as Ray tasks).

The toy associative memory (appendix F.4): per seed, a ReLU MLP 64 → 256 → 30 learns 8192 random
unit-norm keys, each with a uniformly random class, by AdamW (weight decay 0.01, batch 128, cosine
learning rate from 0.03, 16k steps); it is then fine-tuned on new pairs only at the constant learning
rate 1e-3 for 4000 steps — `toy_new_pairs` of them in arm `toy-memory`, `toy_new_sweep` in arms
`toy-memory-new-<m>` — and scored on all old and all new pairs on the same schedule (every
`toy_eval_every` steps after step 100).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from learnlab.config import StudyConfig, distinct_sorted
from learnlab.engine.context import RunContext
from learnlab.engine.jobs import GridConfig, Job, run_jobs
from learnlab.engine.rng import generator
from learnlab.engine.train import TrainLog, train_ensemble, warmup_cosine
from learnlab.models.mlp import EnsembleMLP
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import biography_lm as bl
from learnlab.protocols.fine_tuning import (
    COLLAPSE,
    EARLY,
    curve_rows,
    eval_steps,
    fine_tune,
    knowledge_sets,
    new_individuals,
)
from learnlab.protocols.measurements import log_rows, member_rows
from learnlab.reporting.stats import Cell, Table, above, below, describe, within
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import biographies as bio
from learnlab.tasks.associative_memory import MemoryBatches, memory_pairs

KNOWN = 0.5  # forgetting is judged only where old accuracy before fine-tuning is at least this
STABLE = 0.10  # equivalence margin: fine-tuning moves attention by < 10% of what pre-training moved it
SAME = 0.10  # equivalence margin, accuracy points: frozen attention forgets as much as free attention
MATCHED = 1.1  # arms count as matched when their exposures per new individual differ by < 10%
CLAIM_SEEDS = 5  # every claim is a t-test over seeds (paired where arms share them)
PRETRAINING, TOY, FROZEN = "pre-training", "toy-memory", "frozen-attention"


class ForgettingConfig(bl.BiographyConfig):
    """One seed group's pre-training and all of its fine-tunings: a job of the grid."""

    n_individuals: int = Field(400, gt=0, description="old individuals, learnt in pre-training (N)")
    n_unseen: int = Field(200, gt=0, description="individuals never pre-trained on: the new ones are the first n")
    steps: int = Field(1200, gt=0, description="pre-training steps")
    eval_every: int = Field(200, gt=0, description="pre-training evaluations")
    eval_individuals: int = Field(100, gt=0, description="old (and at most as many new) individuals scored")
    new_values: list[int] = Field([25, 50, 100], min_length=1, description="new individuals of the new-<n> arms")
    replay_weights: list[float] = Field([2, 1 / 2, 1 / 8, 1 / 32], description="replay-<w> arms: old:new = w:1")
    replay_new: int = Field(
        50, gt=0, description="new individuals of the replay and frozen-attention arms (one of new_values)"
    )
    frozen_attention: bool = Field(True, description="arm frozen-attention-<replay_new>: attention weights frozen")
    ft_exposures: int = Field(
        128, ge=0, description="biographies per new individual in every fine-tuning (steps grow with n; 0: ft_steps)"
    )
    ft_steps: int = Field(250, gt=0, description="fine-tuning steps of every arm when ft_exposures is 0")
    ft_lr: float = Field(3e-4, gt=0, description="fine-tuning learning rate (constant)")
    ft_eval_early: int = Field(10, gt=0, description="evaluate every this many steps up to step 100 ...")
    ft_eval_every: int = Field(50, gt=0, description="... and every this many after")
    pattern_sequences: int = Field(32, gt=0, description="old biographies on which attention patterns are compared")

    @field_validator("new_values")
    @classmethod
    def _distinct_new(cls, values: list[int]) -> list[int]:
        return distinct_sorted(values, "new_values must be distinct positive numbers of individuals")

    @field_validator("replay_weights")
    @classmethod
    def _distinct_weights(cls, values: list[float]) -> list[float]:
        if any(w <= 0 for w in values) or len({weight_label(w) for w in values}) < len(values):
            raise ValueError("replay_weights must be distinct positive weights")
        return sorted(values, reverse=True)

    @model_validator(mode="after")
    def _enough_new(self) -> ForgettingConfig:
        if EARLY % self.ft_eval_early:
            raise ValueError(f"ft_eval_early ({self.ft_eval_early}) must divide {EARLY}: step {EARLY} is measured")
        if (self.replay_weights or self.frozen_attention) and self.replay_new not in self.new_values:
            raise ValueError(f"replay_new ({self.replay_new}) must be one of new_values: its baseline arm")
        if max(self.new_values) > self.n_unseen:
            raise ValueError(f"n_unseen ({self.n_unseen}) is fewer than the most new individuals asked for")
        return self


class ToyConfig(StudyConfig):
    """The toy associative memory of appendix F.4."""

    toy: bool = Field(True, description="run the toy associative memory (arms toy-memory*)")
    toy_dim: int = Field(64, gt=0, description="key dimension")
    toy_hidden: int = Field(256, gt=0)
    toy_classes: int = Field(30, gt=1)
    toy_pairs: int = Field(8192, gt=0, description="pre-training key-class pairs")
    toy_new_pairs: int = Field(8192, gt=0, description="fine-tuning pairs of arm toy-memory")
    toy_new_sweep: list[int] = Field([128, 1024], description="fine-tuning pairs of arms toy-memory-new-<m>")
    toy_batch: int = Field(128, gt=0)
    toy_steps: int = Field(16_000, gt=0, description="pre-training steps (cosine schedule)")
    toy_lr: float = Field(0.03, gt=0)
    toy_weight_decay: float = Field(0.01, ge=0)
    toy_ft_steps: int = Field(4000, gt=0, description="fine-tuning steps (constant learning rate)")
    toy_ft_lr: float = Field(1e-3, gt=0)
    toy_eval_every: int = Field(100, gt=0, description="fine-tuning evaluations after step 100")

    @field_validator("toy_new_sweep")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        return distinct_sorted(values, "toy_new_sweep must be distinct positive numbers of pairs")

    @property
    def toy_fine_tunings(self) -> list[tuple[str, int]]:
        """(arm, new pairs) of every toy fine-tuning."""
        return [(TOY, self.toy_new_pairs)] + [(f"{TOY}-new-{m}", m) for m in self.toy_new_sweep]


class Config(GridConfig, ToyConfig, ForgettingConfig):
    grid_knobs = "new_values, replay_weights, frozen_attention and toy"
    seeds: int = Field(3, ge=1)
    seeds_per_job: int = Field(1, ge=1, description="seeds pre-trained together as one ensemble (one job)")


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        **bl.SMOKE,
        "seeds_per_job": 2,
        "n_unseen": 12,
        "new_values": [4, 8],
        "replay_weights": [1, 1 / 4],
        "replay_new": 8,
        "ft_exposures": 40,  # 20 steps for new-4, 40 for new-8 and frozen-attention-8, 80 and 50 with replay
        "ft_eval_early": 5,
        "ft_eval_every": 10,
        "pattern_sequences": 4,
        "toy_pairs": 256,
        "toy_new_pairs": 256,
        "toy_new_sweep": [32],
        "toy_hidden": 32,
        "toy_batch": 32,
        "toy_steps": 200,
        "toy_ft_steps": 120,
        "toy_eval_every": 20,
    },
    # Issue 11: the laptop world (pools of 40), N = 300 old individuals pre-trained 700 steps (75 passes),
    # 5 seeds; 64 biographies per new individual: new-50/100 run 100/200 steps, replay at n = 50 with
    # w = 2 and 1/8 runs 300/113, frozen-attention-50 100: 813 fine-tuning steps a seed, about 0.11 s a
    # member-step on 2 cores
    "laptop": {
        "seeds": 5,
        **bl.LAPTOP_POOLS,
        "n_individuals": 300,
        "steps": 700,
        "new_values": [50, 100],
        "replay_new": 50,
        "replay_weights": [2, 1 / 8],
        "ft_exposures": 64,
        "schedule_steps": 1400,
    },  # pre-training's lr >= 90% of its peak until step 300, past the plateau
    "paper": {  # Zucchet et al.: knowledge-acquisition's paper model and world, fine-tuned at 3e-5
        **bl.PAPER,
        "seeds": 5,  # the claims' min_seeds (knowledge-acquisition's paper preset has one)
        "n_unseen": 16_000,
        "new_values": [1000, 4000, 16_000],
        "replay_new": 4000,  # 128 exposures each at batch 128: 1000/4000/16000 steps, replay 4125…12000
        "ft_lr": 3e-5,
        "ft_eval_every": 100,
    },
}


def new_arm(n: int) -> str:
    return f"new-{n}"


def replay_arm(w: float) -> str:
    return f"replay-{weight_label(w)}"


def weight_label(w: float) -> str:
    """2 -> "2", 0.125 -> "1/8", 0.3 -> "0.3": the source's notation where a weight is a simple fraction."""
    f = Fraction(w).limit_denominator(1024)
    return str(f) if math.isclose(float(f), w, rel_tol=1e-9) else f"{w:g}"


def frozen_arm(n: int) -> str:
    return f"{FROZEN}-{n}"


@dataclass(frozen=True)
class FineTuning:
    """One fine-tuning of the biographies: its new individuals, its replay weight w (old biographies per
    new one; 0: none), and whether the attention weights are frozen."""

    arm: str
    new: int
    replay: float = 0.0
    frozen: bool = False

    @property
    def old_share(self) -> float:
        return self.replay / (1 + self.replay)

    def steps(self, cfg: ForgettingConfig) -> int:
        """`ft_exposures` biographies per new individual (steps grow with n, and with 1 + w under replay:
        arms compare at equal exposures), or `ft_steps` for every arm when ft_exposures is 0."""
        if not cfg.ft_exposures:
            return cfg.ft_steps
        return math.ceil(round(cfg.ft_exposures * self.new * (1 + self.replay) / cfg.batch_size, 6))

    def exposures(self, cfg: ForgettingConfig) -> float:
        """Expected biographies per new individual over the fine-tuning."""
        return self.steps(cfg) * cfg.batch_size / (self.new * (1 + self.replay))


def fine_tunings(cfg: ForgettingConfig) -> list[FineTuning]:
    """Every fine-tuning of the biographies, in the summary's arm order."""
    runs = [FineTuning(new_arm(n), n) for n in cfg.new_values]
    runs += [FineTuning(replay_arm(w), cfg.replay_new, w) for w in cfg.replay_weights]
    if cfg.frozen_attention:
        runs.append(FineTuning(frozen_arm(cfg.replay_new), cfg.replay_new, frozen=True))
    return runs


# --- fine-tuning data, evaluation and the training loop ----------------------------------------------------


# --- attention patterns -----------------------------------------------------------------------------------


def pattern_change(before: bl.Patterns, after: bl.Patterns, queries: Tensor) -> np.ndarray:
    """[layers, K]: the total-variation distance between attention distributions (`biography_lm.
    attention_patterns`), averaged over heads and the query positions marked in queries [B, T]."""
    weight = queries[None, :, None, :].float()  # [1, B, 1, T]
    out = []
    for a, b in zip(before.values(), after.values(), strict=True):
        tv = 0.5 * (a - b).abs().sum(-1)  # [K, B, heads, T]
        out.append(((tv * weight).sum(dim=(1, 3)) / weight.sum()).mean(-1).cpu().numpy())
    return np.stack(out)


class Probe:
    """Fixed old-individual biographies, their queries, and the pre-trained model's patterns on them."""

    def __init__(self, cfg: ForgettingConfig, enc: bio.BiographyEncoder, pre: EnsembleTransformer):
        batch = knowledge_sets(cfg, enc, new_individuals(enc, 1))["old"]
        self.tokens = batch.tokens[: cfg.pattern_sequences].to(cfg.device)
        recall = batch.first_value[: cfg.pattern_sequences, 1:].to(cfg.device)  # query t predicts token t + 1
        self.queries = {"attn_change": self.tokens != enc.pad_id, "attn_recall_change": F.pad(recall, (0, 1))}
        self.pre = bl.attention_patterns(pre, self.tokens)

    def change(self, before: bl.Patterns, after: bl.Patterns) -> dict[str, np.ndarray]:
        """`attn_change_l{l}` and `attn_recall_change_l{l}` per member."""
        out = {}
        for name, queries in self.queries.items():
            moved = pattern_change(before, after, queries)
            out |= {f"{name}_l{layer}": moved[layer] for layer in range(len(moved))}
        return out


# --- the protocol: pre-training, then every fine-tuning ---------------------------------------------------


def forgetting_job(cfg: ForgettingConfig, ctx: RunContext) -> pd.DataFrame:
    """One seed group: pre-train once, then fine-tune a copy of the pre-trained model in every arm."""
    enc, seeds = bl.world_of(cfg), cfg.seed_list
    pre, log = bl.train(cfg, ctx, label=f"{PRETRAINING} · seeds {seeds[0]}–{seeds[-1]}", arm=PRETRAINING)
    probe = Probe(cfg, enc, pre)
    frames = [pretraining_rows(cfg, enc, log, probe)]
    for ft in fine_tunings(cfg):
        model = copy.deepcopy(pre)
        if ft.frozen:
            freeze_attention(model)
        curve = fine_tune(model, cfg, ctx, new=new_individuals(enc, ft.new), old_share=ft.old_share,
                          steps=ft.steps(cfg), lr=cfg.ft_lr, early_every=cfg.ft_eval_early,
                          late_every=cfg.ft_eval_every, label=ft.arm)  # fmt: skip
        extra = probe.change(probe.pre, bl.attention_patterns(model, probe.tokens))
        extra["new_exposures"] = np.full(len(seeds), ft.exposures(cfg))
        frames.append(curve_rows(ft.arm, seeds, curve, extra))
    return pd.concat(frames, ignore_index=True)


def freeze_attention(model: EnsembleTransformer) -> None:
    """No gradient into any attention weight (queries, keys, values, output, their biases): AdamW skips a
    parameter without a gradient, its weight decay included, so those weights stay the pre-trained ones."""
    for block in model.blocks:
        block.attn.requires_grad_(False)


def pretraining_rows(cfg: ForgettingConfig, enc: bio.BiographyEncoder, log: TrainLog, probe: Probe) -> pd.DataFrame:
    """The pre-training curves, its final knowledge, and how far learning moved the attention patterns."""
    members = [(PRETRAINING, s) for s in cfg.seed_list]
    init = bl.build_model(cfg, enc, cfg.seed_list)
    frames = log_rows(members, log, train=False)
    steps, last = [s for s, _ in log.evals], log.evals[-1][1]
    finals = {
        "final_acc_heldout_templates": last["acc_heldout_templates"].numpy(),
        "final_loss_heldout_templates": last["loss_heldout_templates"].numpy(),
        **probe.change(bl.attention_patterns(init, probe.tokens), probe.pre),
    }
    frames += [member_rows(members, [steps[-1]], v[None], "test", name) for name, v in finals.items()]
    return pd.concat(frames, ignore_index=True)


# --- the toy associative memory (appendix F.4) ------------------------------------------------------------


def toy_loss(model: EnsembleMLP, data: tuple[Tensor, Tensor]) -> Tensor:
    keys, classes = data
    logits = model(keys)
    return F.cross_entropy(logits.flatten(0, 1), classes.flatten(), reduction="none").view(classes.shape).mean(-1)


def toy_scores(keys: Tensor, classes: Tensor, old: int) -> Callable[[EnsembleMLP], dict[str, Tensor]]:
    """Per member: accuracy and cross-entropy on all old pairs (the first `old`) and all new pairs."""

    def evaluate(model: EnsembleMLP) -> dict[str, Tensor]:
        out = {}
        for name, part in (("old", slice(0, old)), ("new", slice(old, None))):
            logits, target = model(keys[:, part]), classes[:, part]
            out[f"acc_{name}"] = (logits.argmax(-1) == target).float().mean(-1)
            out[f"loss_{name}"] = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(-1)
        return out

    return evaluate


def toy_job(cfg: ToyConfig, ctx: RunContext) -> pd.DataFrame:
    """Pre-train one MLP per seed on the old pairs, then fine-tune a copy on new pairs only, per arm
    (on the CPU whatever the device: 64 → 256 → 30 is too small to gain from a GPU)."""
    seeds, most = cfg.seed_list, max(m for _, m in cfg.toy_fine_tunings)
    pairs = [memory_pairs(s, cfg.toy_pairs, most, cfg.toy_dim, cfg.toy_classes) for s in seeds]
    keys, classes = torch.stack([k for k, _ in pairs]), torch.stack([c for _, c in pairs])  # [K, P, dim], [K, P]
    pre = EnsembleMLP(len(seeds), [cfg.toy_dim, cfg.toy_hidden, cfg.toy_classes])
    pre.reset_parameters([generator(s, "toy-init") for s in seeds])
    common = {"loss_fn": toy_loss, "weight_decay": cfg.toy_weight_decay, "decoupled_weight_decay": True}
    with ctx.progress(f"{TOY} · pre-training {len(seeds)} MLPs", cfg.toy_steps) as update:
        train_ensemble(
            pre,
            MemoryBatches(keys, classes, 0, cfg.toy_pairs, cfg.toy_batch, seeds, "toy-pre-training"),
            steps=cfg.toy_steps,
            lr=cfg.toy_lr,
            lr_schedule=warmup_cosine(cfg.toy_steps),
            on_step=update,
            checkpoint=ctx.checkpoint("toy-pre-training"),
            **common,
        )
    frames = []
    for arm, m in cfg.toy_fine_tunings:
        end = cfg.toy_pairs + m
        with ctx.progress(f"{arm} · fine-tuning", cfg.toy_ft_steps) as update:
            curve = train_ensemble(
                copy.deepcopy(pre),
                MemoryBatches(keys, classes, cfg.toy_pairs, end, cfg.toy_batch, seeds, "toy-fine-tuning"),
                steps=cfg.toy_ft_steps,
                lr=cfg.toy_ft_lr,
                evaluate=toy_scores(keys[:, :end], classes[:, :end], cfg.toy_pairs),
                eval_steps=eval_steps(cfg.toy_ft_steps, 10, cfg.toy_eval_every),
                on_step=update,
                **common,
            ).evals
        frames.append(curve_rows(arm, seeds, curve))
    return pd.concat(frames, ignore_index=True)


# --- the grid -----------------------------------------------------------------------------------------------


def seed_groups(cfg: Config) -> Iterator[tuple[int, int]]:
    """(first seed, number of seeds) of each biography job."""
    for first in range(0, cfg.seeds, cfg.seeds_per_job):
        yield cfg.seed + first, min(cfg.seeds_per_job, cfg.seeds - first)


def job_config(cfg: Config, kind: type[StudyConfig], seed: int, seeds: int) -> Any:
    """A job's config: the study's values of every field the job's protocol knows."""
    shared = {key: getattr(cfg, key) for key in kind.model_fields if key not in ("arms", "study", "preset")}
    return kind(**{**shared, "seed": seed, "seeds": seeds})


def jobs(cfg: Config) -> list[Job]:
    out = [
        Job(f"biographies-seed-{s}", forgetting_job, job_config(cfg, ForgettingConfig, s, k))
        for s, k in seed_groups(cfg)
    ]
    if cfg.toy:
        out.append(Job(TOY, toy_job, job_config(cfg, ToyConfig, cfg.seed, cfg.seeds)))
    return out


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    frames = run_jobs(jobs(cfg), cfg, ctx, "fine-tuning-forgetting")
    return pd.concat(frames.values(), ignore_index=True)


# --- paired effects (cells computed across arms) -----------------------------------------------------------


def _per_seed(metrics: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    rows = metrics[(metrics.split == "test") & (metrics.arm == arm) & (metrics.metric == metric)]
    return rows.set_index("seed")["value"].sort_index()


def _early_drop(metrics: pd.DataFrame, arm: str) -> pd.Series:
    return _per_seed(metrics, arm, "old_acc_start") - _per_seed(metrics, arm, "old_acc_min_100")


def paired_effects(metrics: pd.DataFrame, cfg: Config) -> Table:
    """Per-seed differences between arms fine-tuned from the same pre-trained model: every replay weight
    against no replay at the same n (`*_vs_no_replay`; `early_drop` = start − minimum within 100 steps),
    frozen attention against free attention at that n (`*_vs_unfrozen`), and every n against the fewest
    new individuals (`old_acc_end_vs_fewest`, `old_loss_end_vs_fewest`)."""
    arms, table = set(metrics.arm), {}

    def add(arm: str, name: str, a: pd.Series, b: pd.Series) -> None:
        diff = (a - b).dropna()
        if len(diff):
            table.setdefault(arm, {})[name] = describe(diff.to_numpy())

    base = new_arm(cfg.replay_new)
    for arm in (replay_arm(w) for w in cfg.replay_weights):
        if {arm, base} <= arms:
            for m in ("old_loss_end", "old_acc_end"):
                add(arm, f"{m}_vs_no_replay", _per_seed(metrics, arm, m), _per_seed(metrics, base, m))
            add(arm, "early_drop_vs_no_replay", _early_drop(metrics, arm), _early_drop(metrics, base))
    frozen = frozen_arm(cfg.replay_new)
    if {frozen, base} <= arms:
        add(frozen, "early_drop_vs_unfrozen", _early_drop(metrics, frozen), _early_drop(metrics, base))
        add(frozen, "old_acc_end_vs_unfrozen", *(_per_seed(metrics, a, "old_acc_end") for a in (frozen, base)))
    fewest = new_arm(cfg.new_values[0])
    for arm in (new_arm(n) for n in cfg.new_values[1:]):
        if {arm, fewest} <= arms:
            for m in ("old_acc_end", "old_loss_end"):
                add(arm, f"{m}_vs_fewest", _per_seed(metrics, arm, m), _per_seed(metrics, fewest, m))
    return table


# --- the published claims ------------------------------------------------------------------------------------


def _arms(t: Table, prefix: str) -> list[str]:
    return [a for a in t if a.startswith(prefix)]


def _n(arm: str) -> int:
    """The number of new individuals in an arm's name (new-<n>, frozen-attention-<n>)."""
    return int(arm.rsplit("-", 1)[1])


def _values(cell: Cell) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in cell["values"]], dtype=float)


def _ratio(cells: dict[str, Cell]) -> Cell:
    """Per seed: old accuracy's minimum within 100 steps over its value before fine-tuning."""
    return describe(_values(cells["old_acc_min_100"]) / _values(cells["old_acc_start"]))


def _ran(cells: dict[str, Cell], steps: int) -> bool:
    """The arm fine-tuned for at least `steps` steps in every seed (runs made before `ft_steps`: 250)."""
    return "ft_steps" not in cells or min(_values(cells["ft_steps"])) >= steps


def _unknown(t: Table, arms: list[str]) -> str | None:
    """Why forgetting cannot be judged in these arms, if it cannot: the model knew too little to lose."""
    start = min(t[a]["old_acc_start"]["mean"] for a in arms)
    if start < KNOWN:
        return f"old accuracy before fine-tuning is {100 * start:.0f}%: too little to lose ({100 * KNOWN:.0f}% needed)"
    return None


def _trajectory(cells: dict[str, Cell]) -> str:
    """Old accuracy before fine-tuning → its minimum within 100 steps → at the end (means)."""
    return (
        f"{100 * cells['old_acc_start']['mean']:.0f}% → {100 * cells['old_acc_min_100']['mean']:.0f}% "
        f"(≤100 steps) → {100 * cells['old_acc_end']['mean']:.0f}%"
    )


def _ci(cell: Cell, scale: float = 100, unit: str = "%", sign: str = "") -> str:
    lo, hi = cell["ci95"]
    return f"{scale * cell['mean']:{sign}.1f}{unit} (95% CI {scale * lo:{sign}.1f} to {scale * hi:{sign}.1f})"


def _points(cell: Cell) -> str:
    return _ci(cell, 100, " points", "+")


def _collapse(t: Table, arms: list[str]) -> tuple[bool | None, str]:
    """In every arm that ran 100 steps, old accuracy's minimum within them over its start: t-interval
    below 1/2 (knowledge has collapsed)."""
    arms = [a for a in arms if _ran(t[a], EARLY)]
    if not arms:
        return None, f"no arm ran {EARLY} fine-tuning steps"
    if why := _unknown(t, arms):
        return None, why
    cells = {a: _ratio(t[a]) for a in arms}
    return every([below(c, COLLAPSE) for c in cells.values()]), "old-individual accuracy " + "; ".join(
        f"{a}: {_trajectory(t[a])}, minimum within {EARLY} steps {_ci(c, 100, '% of the start')}"
        for a, c in cells.items()
    )


def _half_steps(cells: dict[str, Cell]) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: when old accuracy halved and new accuracy reached 50% (never: infinity)."""
    old, new = (_values(cells[m]) for m in ("old_half_step", "new_half_step"))
    return np.where(np.isnan(old), np.inf, old), np.where(np.isnan(new), np.inf, new)


def _forgets_before_learning(cells: dict[str, Cell]) -> tuple[bool | None, str]:
    """Per seed, the step new accuracy reaches 50% minus the step old accuracy halved (a new accuracy that
    never gets there counts at the arm's last step, a lower bound), t-interval above 0; and new accuracy
    rises (end minus start above 0: knowledge is acquired, slowly). An old accuracy that never halves in
    some seed refutes: that seed did not forget first."""
    old, new = _half_steps(cells)
    last = _values(cells["ft_steps"]) if "ft_steps" in cells else np.full(old.size, np.nan)
    delay = describe(np.where(np.isinf(new), last, new) - old)
    gain = describe(_values(cells["new_acc_end"]) - _values(cells["new_acc_start"]))
    never = int(np.isinf(old).sum())
    held = False if never else every([above(delay), above(gain)])
    return held, (
        f"new reaches 50% minus old halves: {_ci(delay, 1, ' steps', '+') if delay['mean'] is not None else 'n/a'}"
        f" (old halved: {_when(old)}; new at 50%: {_when(new)})"
        + (f", old never halved in {never} seed(s)" if never else "")
        + f"; new accuracy gained {_points(gain)}, {100 * cells['new_acc_100']['mean']:.0f}% at step {EARLY}"
    )


def _when(values: np.ndarray) -> str:
    return "never" if not np.isfinite(values).any() else f"step {_steps(values)}"


def _steps(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    never = int(np.sum(~np.isfinite(values)))
    if not finite.size:
        return "never"
    return f"{finite.mean():.0f}" + (f" (never in {never} of {len(values)} seeds)" if never else "")


def _fast_collapse(t: Table) -> tuple[bool | None, str]:
    return _collapse(t, _arms(t, "new-"))


def _slow_acquisition(t: Table) -> tuple[bool | None, str]:
    arms = _arms(t, "new-")
    if not arms:
        return None, "no new-<n> arm"
    if why := _unknown(t, arms):
        return None, why
    judged = {a: _forgets_before_learning(t[a]) for a in arms}
    return every([held for held, _ in judged.values()]), "; ".join(f"{a}: {e}" for a, (_, e) in judged.items())


def _more_new_more_forgetting(t: Table) -> tuple[bool | None, str]:
    """Per seed, the least-squares slope of final old accuracy on log2(n) across the new-<n> arms, at
    matched exposures per new individual: t-interval below 0."""
    arms = sorted(_arms(t, "new-"), key=_n)
    if len(arms) < 2:
        return None, "fewer than two new-<n> arms"
    exposures = [t[a]["new_exposures"]["mean"] for a in arms]
    if max(exposures) > MATCHED * min(exposures):
        return None, "the arms are not at matched exposures per new individual: " + ", ".join(
            f"{a} {e:.0f}" for a, e in zip(arms, exposures, strict=True)
        )
    if why := _unknown(t, arms):
        return None, why
    x = np.log2([_n(a) for a in arms])
    y = np.stack([_values(t[a]["old_acc_end"]) for a in arms])  # [arms, seeds]
    slope = describe((x - x.mean()) @ (y - y.mean(0)) / ((x - x.mean()) @ (x - x.mean())))
    largest = t[arms[-1]].get("old_acc_end_vs_fewest")
    return below(slope), (
        f"at {np.mean(exposures):.0f} biographies per new individual, final old-individual accuracy per doubling "
        f"of n: {_points(slope)}; means "
        + ", ".join(f"{a} {100 * t[a]['old_acc_end']['mean']:.1f}%" for a in arms)
        + (f"; {arms[-1]} minus {arms[0]}: {_points(largest)}" if largest else "")
    )


def _replay_softens(t: Table) -> tuple[bool | None, str]:
    arms = _arms(t, "replay-")
    if not arms:
        return None, "no replay arm"
    if why := _unknown(t, arms):
        return None, why
    cells = [t[a]["old_loss_end_vs_no_replay"] for a in arms]
    return every([below(c) for c in cells]), "final old-individual loss minus no replay: " + "; ".join(
        f"{a} {_ci(c, 1, ' nats', '+')}" for a, c in zip(arms, cells, strict=True)
    )


def _replay_still_collapses(t: Table) -> tuple[bool | None, str]:
    arms = _arms(t, "replay-")
    if not arms:
        return None, "no replay arm"
    held, evidence = _collapse(t, arms)
    drops = [a for a in arms if "early_drop_vs_no_replay" in t[a]]
    return held, evidence + (
        "; drop to the minimum minus no replay (shown, not tested): "
        + ", ".join(f"{a} {_points(t[a]['early_drop_vs_no_replay'])}" for a in drops)
        if drops
        else ""
    )


def _attention_stable(t: Table) -> tuple[bool | None, str]:
    """Per seed, arm and layer: the fine-tuning's attention change at recall queries over what pre-training
    changed (init → pre-trained); every such ratio's t-interval inside ±STABLE (equivalence)."""
    layers = sorted(m for m in t[PRETRAINING] if m.startswith("attn_recall_change_l"))
    arms = _arms(t, "new-") + _arms(t, "replay-")
    if not (arms and layers):
        return None, "no fine-tuning arm or no attention measurement"
    cells = {(a, m): describe(_values(t[a][m]) / _values(t[PRETRAINING][m])) for a in arms for m in layers}
    parts = []
    for m in layers:
        worst = max(arms, key=lambda a: cells[a, m]["ci95"][1])
        parts.append(
            f"layer {m.rsplit('_l', 1)[1]}: largest {worst} {_ci(cells[worst, m], 100, '% of pre-training')}, "
            f"pre-training moved it {100 * t[PRETRAINING][m]['mean']:.0f}%"
        )
    return every([within(c, STABLE) for c in cells.values()]), (
        "attention change at recall queries (TV distance), fine-tuning over pre-training, per seed: " + "; ".join(parts)
    )


def _frozen_forgets_alike(t: Table) -> tuple[bool | None, str]:
    """With the attention weights frozen, old knowledge is lost as much as with them free: the paired
    differences of the early drop and of final old accuracy both inside ±SAME (equivalence). Undetermined
    where the free arm did not collapse: equal non-forgetting says nothing about where knowledge is lost."""
    frozen = _arms(t, FROZEN)
    if not frozen:
        return None, "no frozen-attention arm"
    arm, free = frozen[0], new_arm(_n(frozen[0]))
    if why := _unknown(t, [free]):
        return None, why
    if below(_ratio(t[free]), COLLAPSE) is not True:
        return None, f"{free} (attention free) did not collapse: {_trajectory(t[free])}; no forgetting to compare"
    drop, end = t[arm]["early_drop_vs_unfrozen"], t[arm]["old_acc_end_vs_unfrozen"]
    return every([within(drop, SAME), within(end, SAME)]), (
        f"{arm} minus {free}: drop within {EARLY} steps {_points(drop)}, final old accuracy {_points(end)}; "
        f"old accuracy {_trajectory(t[arm])} frozen vs {_trajectory(t[free])} free"
    )


def _toy_forgets_first(t: Table) -> tuple[bool | None, str]:
    if why := _unknown(t, [TOY]):
        return None, why
    held, evidence = _forgets_before_learning(t[TOY])
    return held, f"{TOY}: old-pair accuracy {_trajectory(t[TOY])}; {evidence}" + "".join(
        f"; {a} (shown, not tested): halved by step {_steps(_half_steps(t[a])[0])}, new pairs at 50% by "
        f"{_steps(_half_steps(t[a])[1])}"
        for a in _arms(t, f"{TOY}-new-")
    )


CLAIMS = (
    Claim(
        f"Pre-training knowledge collapses within the first ~{EARLY} fine-tuning steps: in every new-<n> arm, old "
        f"accuracy's minimum within {EARLY} steps over its start has a 95% t-interval below {COLLAPSE:.0%}",
        _fast_collapse,
        CLAIM_SEEDS,
    ),
    Claim(
        "New knowledge is acquired slowly: in every new-<n> arm, new-individual accuracy reaches 50% later than "
        "old accuracy halves, and rises (per-seed differences, 95% t-intervals above 0)",
        _slow_acquisition,
        CLAIM_SEEDS,
    ),
    Claim(
        "More new individuals, more forgetting: at matched exposures per new individual, final old-individual "
        "accuracy falls with n (per-seed slope on log2 n, 95% t-interval below 0)",
        _more_new_more_forgetting,
        CLAIM_SEEDS,
    ),
    Claim(
        "Replay of old individuals softens the final loss at every weight (2 … 1/32): final old loss minus no "
        "replay, paired by seed, 95% t-interval below 0",
        _replay_softens,
        CLAIM_SEEDS,
    ),
    Claim(
        f"Replay does not prevent the initial collapse: at every replay weight, old accuracy's minimum within "
        f"{EARLY} steps over its start has a 95% t-interval below {COLLAPSE:.0%}",
        _replay_still_collapses,
        CLAIM_SEEDS,
    ),
    Claim(
        f"Attention patterns stay stable: in every new-<n> and replay arm and layer, fine-tuning moves attention at "
        f"the queries that recall a value by less than {STABLE:.0%} of what pre-training moved it (TV distance; "
        f"per-seed ratio, 95% t-interval inside ±{STABLE:.0%})",
        _attention_stable,
        CLAIM_SEEDS,
    ),
    Claim(
        f"Forgetting does not run through attention: with every attention weight frozen (arm "
        f"frozen-attention-<n>), old knowledge is lost as much as with attention free (new-<n>) — drop within "
        f"{EARLY} steps and final old accuracy, paired differences with 95% t-intervals inside ±{100 * SAME:.0f} "
        "points",
        _frozen_forgets_alike,
        CLAIM_SEEDS,
    ),
    Claim(
        "The toy associative memory forgets fast: old-pair accuracy halves before new-pair accuracy reaches 50%, "
        "and new-pair accuracy rises (arm toy-memory; per-seed differences, 95% t-intervals above 0)",
        _toy_forgets_first,
        CLAIM_SEEDS,
    ),
)


def notes(summary: dict[str, Any]) -> list[str]:
    t, c = summary["table"], summary["config"]
    out = [
        f"Replay weight w: a fine-tuning biography is about an old individual with probability w/(1+w) "
        f"(w = 2: {200 / 3:.0f}%, 1/32: {100 / 33:.1f}%), uniform over the N = {c['n_individuals']}. Read as "
        "'an old individual is drawn w times as often as a new one', the same weights would give old shares "
        f"of Nw/(Nw + n) instead (with n = {c['replay_new']}: "
        + ", ".join(
            f"{weight_label(w)}: {100 * c['n_individuals'] * w / (c['n_individuals'] * w + c['replay_new']):.0f}%"
            for w in c["replay_weights"]
        )
        + ").",
        f"Fine-tuning learning rate {c['ft_lr']:g}, constant, {c['ft_lr'] / c['lr']:.0%} of the pre-training peak "
        f"{c['lr']:g} (the source: 3e-5 after a 4e-4 peak, 7.5%).",
    ]
    if PRETRAINING in t:
        pre = t[PRETRAINING]
        out.append(
            f"Pre-training: held-out-template accuracy {100 * pre['final_acc_heldout_templates']['mean']:.1f}% "
            f"after {c['steps']} steps; attention moved from initialisation by "
            + ", ".join(f"{100 * pre[m]['mean']:.0f}%" for m in sorted(pre) if m.startswith("attn_change_l"))
            + " (all queries, per layer)."
        )
        arms = _arms(t, "new-") + _arms(t, "replay-") + _arms(t, FROZEN)
        if arms:
            out.append(
                "Attention change in fine-tuning, all real queries / recall queries, per layer: "
                + "; ".join(
                    f"{a} "
                    + ", ".join(
                        f"{100 * t[a][f'attn_change_l{i}']['mean']:.0f}%/"
                        f"{100 * t[a][f'attn_recall_change_l{i}']['mean']:.0f}%"
                        for i in range(c["n_layers"])
                    )
                    for a in arms
                )
                + "."
            )
    if TOY in t:
        toy = t[TOY]
        old, new = _half_steps(toy)
        out.append(
            f"Toy memory ({c['toy_new_pairs']} new pairs): old-pair accuracy {_trajectory(toy)}, loss "
            f"{toy['old_loss_start']['mean']:.3f} → {toy['old_loss_max_100']['mean']:.3f} within 100 steps; old "
            f"accuracy halved by step {_steps(old)}, new pairs reached 50% at step {_steps(new)}. The source's "
            "number of new pairs is not in our material: arm toy-memory fine-tunes on as many as were pre-trained, "
            "the toy-memory-new-<m> arms on fewer."
        )
        toys = sorted(_arms(t, TOY), key=lambda a: _toy_pairs_of(a, c))
        out.append(
            "Toy memory, final old-pair accuracy by number of new pairs: "
            + ", ".join(f"{_toy_pairs_of(a, c)}: {100 * t[a]['old_acc_end']['mean']:.1f}%" for a in toys)
            + "."
        )
    return out + _budget_notes(t) + _replay_notes(t) + _frozen_notes(t)


def _toy_pairs_of(arm: str, c: dict[str, Any]) -> int:
    return c["toy_new_pairs"] if arm == TOY else int(arm.rsplit("-", 1)[1])


def _budget_notes(t: Table) -> list[str]:
    """How much of the new set each n learnt beside what it forgot, with the steps and exposures it took
    (runs before `new_exposures`: every arm had the same steps, so fewer individuals were seen more often)."""
    arms = sorted(_arms(t, "new-"), key=_n)
    if len(arms) < 2:
        return []
    matched = all("new_exposures" in t[a] for a in arms)

    def budget(a: str) -> str:
        cells = t[a]
        return f" ({cells['ft_steps']['mean']:.0f} steps, {cells['new_exposures']['mean']:.0f} each)" if matched else ""

    return [
        "Forgetting against how much of the new set was learnt (new accuracy / old accuracy at the end), "
        + ("at matched exposures per new individual: " if matched else "at the same number of steps: ")
        + ", ".join(
            f"{a} {100 * t[a]['new_acc_end']['mean']:.0f}% / {100 * t[a]['old_acc_end']['mean']:.0f}%{budget(a)}"
            for a in arms
        )
        + "."
    ]


def _frozen_notes(t: Table) -> list[str]:
    """Frozen attention beside free attention: does forgetting need attention to move?"""
    out = []
    for arm in _arms(t, FROZEN):
        free = new_arm(_n(arm))
        if free in t and "early_drop_vs_unfrozen" in t[arm]:
            out.append(
                f"Attention frozen ({arm}) against free ({free}): old accuracy {_trajectory(t[arm])} against "
                f"{_trajectory(t[free])}; new accuracy at the end {100 * t[arm]['new_acc_end']['mean']:.0f}% against "
                f"{100 * t[free]['new_acc_end']['mean']:.0f}%."
            )
    return out


def _replay_notes(t: Table) -> list[str]:
    """What replay buys early (a smaller drop to the minimum) against what it buys at the end."""
    arms = [a for a in _arms(t, "replay-") if "early_drop_vs_no_replay" in t[a]]
    if not arms:
        return []
    return [
        "Replay against no replay, early versus late: "
        + "; ".join(
            f"{a} drop to the minimum within 100 steps {-100 * t[a]['early_drop_vs_no_replay']['mean']:.1f} points "
            f"smaller, final accuracy {100 * t[a]['old_acc_end_vs_no_replay']['mean']:+.1f} points, recovery after "
            f"the minimum {100 * (t[a]['old_acc_end']['mean'] - t[a]['old_acc_min_100']['mean']):+.1f} points"
            for a in arms
        )
        + "."
    ]


# --- figures ------------------------------------------------------------------------------------------------


def _mean_curve(metrics: pd.DataFrame, arm: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    rows = metrics[(metrics.split == "eval") & (metrics.arm == arm) & (metrics.metric == metric)]
    mean = rows.groupby("step")["value"].mean()
    return mean.index.to_numpy(), mean.to_numpy()


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t, out = summary["table"], {}
    seeds = len(summary.get("seeds") or summary["config"].get("seeds") or [])
    seeds_text = f"{seeds} seeds" if seeds else "the seeds"
    tuned = _arms(t, "new-") + _arms(t, "replay-") + _arms(t, FROZEN) + _arms(t, TOY)
    if tuned:  # instead of the generic bars of every metric: the four the study is about
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(tuned) + 2), 4))
        names = ("old_acc_start", "old_acc_min_100", "old_acc_end", "new_acc_end")
        for i, m in enumerate(names):
            cells = [t[a][m] for a in tuned]
            means = np.array([c["mean"] for c in cells])
            err = np.array([[c["mean"] - c["ci95"][0], c["ci95"][1] - c["mean"]] for c in cells]).T
            ax.bar(np.arange(len(tuned)) - 0.4 + 0.2 * (i + 0.5), means, 0.2, yerr=err, capsize=2, label=m)
        ax.set_xticks(np.arange(len(tuned)), tuned, rotation=30, ha="right", fontsize=8)
        ax.set(
            ylabel="accuracy (mean, 95% CI)", ylim=(0, 1.05), title="Old knowledge before, early and after fine-tuning"
        )
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
        fig.tight_layout()
        out["final"] = captioned(
            fig,
            f"Per fine-tuning arm: old accuracy before fine-tuning, its minimum within {EARLY} steps and at the end, "
            f"and new accuracy at the end (held-out templates); bars are means over {seeds_text}, error bars the "
            "95% t-interval of the mean.",
        )
    if PRETRAINING in t:  # instead of the generic figure's panel per metric of every arm
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        for name, label in (("heldout_templates", "old, held-out templates"), ("unseen", "never seen (new)")):
            ax.plot(*_mean_curve(metrics, PRETRAINING, f"acc_{name}"), label=label)
            ax2.plot(*_mean_curve(metrics, PRETRAINING, f"loss_{name}"), label=label)
        pools = {k: v for k, v in summary["config"].items() if k in bio.pool_limits()}
        ax2.axhline(bio.no_knowledge_baseline(bio.Pools(**pools)), color="black", ls=":", lw=1,
                    label="no-knowledge baseline")  # fmt: skip
        ax.set(xlabel="pre-training step", ylabel="attribute accuracy", title="Pre-training (mean over seeds)")
        ax2.set(xlabel="pre-training step", ylabel="attribute loss (nats)", title="Pre-training")
        ax2.legend(fontsize=7)
        fig.tight_layout()
        out["learning_curves"] = captioned(
            fig,
            f"Pre-training: attribute accuracy and loss of the old individuals (held-out templates) and of never-seen "
            f"ones; mean over {seeds_text}, no band.",
        )
    groups = {"new individuals (no replay)": _arms(t, "new-")}
    if replays := _arms(t, "replay-"):
        groups["replay (n = " + str(summary["config"]["replay_new"]) + ")"] = [
            new_arm(summary["config"]["replay_new"]), *replays
        ]  # fmt: skip
    if frozen := _arms(t, FROZEN):
        groups["attention frozen (n = " + str(_n(frozen[0])) + ")"] = [new_arm(_n(frozen[0])), *frozen]
    groups = {k: v for k, v in groups.items() if v}
    if groups:
        fig, axes = plt.subplots(2, len(groups), figsize=(5.2 * len(groups), 7), squeeze=False)
        for col, (title, arms) in enumerate(groups.items()):
            for i, arm in enumerate(arms):
                for row, q in enumerate(("acc", "loss")):
                    ax = axes[row][col]
                    ax.plot(*_mean_curve(metrics, arm, f"{q}_old"), color=f"C{i}", label=f"{arm} old")
                    ax.plot(*_mean_curve(metrics, arm, f"{q}_new"), color=f"C{i}", ls="--", label=f"{arm} new")
            for row, q in enumerate(("attribute accuracy", "attribute loss (nats)")):
                axes[row][col].axvline(EARLY, color="grey", ls=":", lw=1)
                axes[row][col].set(xlabel="fine-tuning step", ylabel=f"{q}, held-out templates", title=title)
            axes[0][col].legend(fontsize=6, ncol=2)
        fig.suptitle("Old individuals (solid) and new ones (dashed) during fine-tuning; dotted: step 100")
        fig.tight_layout()
        out["forgetting"] = captioned(
            fig,
            f"Held-out-template accuracy and loss of old (solid) and new (dashed) individuals along each fine-tuning, "
            f"mean over {seeds_text}, no band; arms end at different steps because each new individual gets the same "
            f"number of biographies (steps grow with n and with replay); dotted line: step {EARLY}.",
        )

    toys = _arms(t, TOY)
    if toys:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for i, arm in enumerate(toys):
            for q, axis in (("acc", ax), ("loss", ax2)):
                axis.plot(*_mean_curve(metrics, arm, f"{q}_old"), color=f"C{i}", label=f"{arm} old")
                axis.plot(*_mean_curve(metrics, arm, f"{q}_new"), color=f"C{i}", ls="--", label=f"{arm} new")
        for axis, label in ((ax, "accuracy"), (ax2, "cross-entropy (nats)")):
            axis.set_xscale("symlog", linthresh=100)
            axis.axvline(EARLY, color="grey", ls=":", lw=1)
            axis.set(xlabel="fine-tuning step (linear to 100, log after)", ylabel=label)
        ax.set_title("Toy associative memory: old pairs (solid), new pairs (dashed)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        out["toy_memory"] = captioned(
            fig,
            f"Toy associative memory: accuracy and cross-entropy on all old (solid) and all new (dashed) pairs during "
            f"fine-tuning, mean over {seeds_text}, no band; x linear to step {EARLY}, logarithmic after.",
        )

    if PRETRAINING in t and groups:
        arms = [PRETRAINING] + _arms(t, "new-") + _arms(t, "replay-") + _arms(t, FROZEN)
        layers = sorted(m for m in t[PRETRAINING] if m.startswith("attn_change_l"))
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
        for ax, prefix, title in ((axes[0], "attn_change_l", "all queries"),
                                  (axes[1], "attn_recall_change_l", "queries that recall a value")):  # fmt: skip
            width = 0.8 / len(arms)
            for i, arm in enumerate(arms):
                means = [t[arm][f"{prefix}{m.rsplit('_l', 1)[1]}"]["mean"] for m in layers]
                ax.bar(np.arange(len(layers)) - 0.4 + width * (i + 0.5), means, width, label=arm)
            ax.set_xticks(np.arange(len(layers)), [f"layer {m.rsplit('_l', 1)[1]}" for m in layers])
            ax.set(ylabel="attention TV distance", title=f"Attention change, {title}")
        axes[0].legend(fontsize=6)
        fig.suptitle("pre-training: initialisation → pre-trained; other arms: pre-trained → fine-tuned")
        fig.tight_layout()
        out["attention"] = captioned(
            fig,
            f"How far attention moved (total-variation distance between attention distributions, mean over heads and "
            f"queries), per layer: pre-training from initialisation, each fine-tuning from the pre-trained model; "
            f"bars are means over {seeds_text}, no error bars (the claim's interval is on the per-seed ratio to "
            f"pre-training, in the verdict).",
        )
    return out


STUDY = Study(
    name="fine-tuning-forgetting",
    title="fine-tuning on new individuals quickly corrupts old knowledge; replay; the toy memory (C8)",
    source="seeds/002 (Zucchet et al. 2025), fine-tuning section and appendix F.4",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),
    measure=measure,
    claims=CLAIMS,
    headline=tuple((new_arm(100), m) for m in ("old_acc_start", "old_acc_min_100", "old_acc_end", "new_acc_end"))
    + ((TOY, "old_acc_end"),),
    figures=figures,
    notes=notes,
    derived=paired_effects,
    plain_metrics=(
        "old_half_step",
        "new_half_step",
        "old_loss_start",
        "old_loss_max_100",
        "old_loss_end",
        "new_loss_end",
        "final_loss_heldout_templates",
        "old_loss_end_vs_no_replay",
        "old_loss_end_vs_fewest",
    ),
    point_metrics=("early_drop_vs_no_replay", "old_acc_end_vs_fewest"),
)
