"""C8 `fine-tuning-forgetting` — fine-tuning on new facts quickly corrupts the old ones.

Source: Zucchet et al. (2025), seeds/002, section 5.2 and appendix F.4. Claims: fine-tuning a model
pre-trained on biographies on biographies of new individuals makes its knowledge of the pre-training
individuals collapse within the first ~100 steps, while knowledge of the new individuals is acquired
slowly; the more new individuals, the more forgetting; replaying old individuals softens the final loss
but not the initial collapse; attention patterns stay stable (the damage is in the feed-forward
associative memory), and a toy associative memory — a one-hidden-layer MLP mapping random keys to
classes — forgets fast too.

Method. Pre-training is the knowledge-acquisition protocol (`knowledge_acquisition.train`): one
transformer per seed learns the biographies of N old individuals under a cosine schedule. The new
individuals are the first n of the world's `unseen` ones, never trained on. From the pre-trained
weights, each arm fine-tunes a copy with AdamW (a fresh optimizer, the pre-training's β and weight
decay) at a constant learning rate `ft_lr` on fresh training-template biographies: arm `new-<n>` on n
new individuals only; arm `replay-<w>` on `replay_new` new individuals with replay at weight w: a
biography is about an old individual (uniform over the N) with probability w/(1+w), else about a new
one, so old and new biographies come in the ratio w : 1.

Knowledge of the first `eval_individuals` old
and new individuals is scored on fixed held-out-template biographies — attribute accuracy (every token
of a value greedy-correct) and attribute loss — at step 0, before the first update, every
`ft_eval_early` steps up to step 100, then every `ft_eval_every` steps. Reported per seed: old accuracy
before fine-tuning, its minimum within the first 100 steps and at the end; new accuracy at steps 100
and at the end; the first evaluated step where old accuracy is below half its start (`old_half_step`)
and where new accuracy reaches 50% (`new_half_step`; missing if never). Attention change is the
total-variation distance between two models' attention distributions (half the L1 difference of
`blocks.{l}.attn.hook_pattern` per query), averaged over heads and over the queries of
`pattern_sequences` fixed old-individual biographies — all real tokens (`attn_change_l{l}`), and the
queries that predict a value's first token, where a fact is recalled (`attn_recall_change_l{l}`):
between the pre-trained and the fine-tuned model in each arm, and, as the scale of a real change,
between the initialisation and the pre-trained model (arm `pre-training`). Paired effects (replay
against no replay at the same n; each n against the fewest new individuals) are per-seed differences
between models fine-tuned from the same pre-trained weights. Each seed's pre-training with all of its
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
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from learnlab.config import StudyConfig, distinct_sorted
from learnlab.engine.rng import NumpyGenerator, generator
from learnlab.engine.train import TrainLog, train_ensemble
from learnlab.models.mlp import EnsembleMLP
from learnlab.models.transformer import EnsembleTransformer
from learnlab.reporting.stats import Cell, Table, describe
from learnlab.studies import knowledge_acquisition as ka
from learnlab.studies.base import Claim, RunContext, Study, member_rows
from learnlab.sweeps.jobs import GridConfig, Job, run_jobs
from learnlab.tasks import biographies as bio
from learnlab.tasks.associative_memory import MemoryBatches, memory_pairs

EARLY = 100  # "the first ~100 fine-tuning steps" of the source
COLLAPSE = 0.5  # knowledge has collapsed once accuracy is below half its value before fine-tuning
LEARNT = 0.5  # new knowledge counts as acquired once accuracy reaches 50%
STABLE = 0.25  # attention is stable if fine-tuning moves it by < 1/4 of what pre-training moved it
PRETRAINING, TOY = "pre-training", "toy-memory"


class ForgettingConfig(ka.BiographyConfig):
    """One seed group's pre-training and all of its fine-tunings: a job of the grid."""

    n_individuals: int = Field(400, gt=0, description="old individuals, learnt in pre-training (N)")
    n_unseen: int = Field(200, gt=0, description="individuals never pre-trained on: the new ones are the first n")
    steps: int = Field(1200, gt=0, description="pre-training steps")
    eval_every: int = Field(200, gt=0, description="pre-training evaluations")
    eval_individuals: int = Field(100, gt=0, description="old (and at most as many new) individuals scored")
    new_values: list[int] = Field([25, 100, 200], min_length=1, description="new individuals of the new-<n> arms")
    replay_weights: list[float] = Field([2, 1 / 2, 1 / 8, 1 / 32], description="replay-<w> arms: old:new = w:1")
    replay_new: int = Field(100, gt=0, description="new individuals of the replay arms (one of new_values)")
    ft_steps: int = Field(250, gt=0, description="fine-tuning steps")
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
        if self.replay_weights and self.replay_new not in self.new_values:
            raise ValueError(f"replay_new ({self.replay_new}) must be one of new_values: its no-replay baseline")
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
    grid_knobs = "new_values, replay_weights and toy"
    seeds: int = Field(3, ge=1)
    seeds_per_job: int = Field(1, ge=1, description="seeds pre-trained together as one ensemble (one job)")


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        **ka.PRESETS["smoke"],
        "seeds_per_job": 2,
        "n_unseen": 12,
        "new_values": [4, 8],
        "replay_weights": [1, 1 / 4],
        "replay_new": 8,
        "ft_steps": 20,
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
    # N = 400 old individuals (2 layers x 64, 1200 steps: 93% held-out-template accuracy), 7 fine-tunings of 250
    # steps per seed, 3 seeds, and the toy at the paper's scale: 8.5 minutes (509 s) alone on 2 cores
    "laptop": {},
    "paper": {  # Zucchet et al.: knowledge-acquisition's paper model and world, fine-tuned at 3e-5
        **ka.PRESETS["paper"],
        "seeds": 2,  # the claims need two seeds (knowledge-acquisition's paper preset has one)
        "n_unseen": 16_000,
        "new_values": [1000, 4000, 16_000],
        "replay_new": 4000,
        "ft_steps": 4000,
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


def fine_tunings(cfg: ForgettingConfig) -> list[tuple[str, int, float]]:
    """(arm, new individuals, share of old biographies) of every fine-tuning of the biographies."""
    runs = [(new_arm(n), n, 0.0) for n in cfg.new_values]
    return runs + [(replay_arm(w), cfg.replay_new, w / (1 + w)) for w in cfg.replay_weights]


# --- fine-tuning data, evaluation and the training loop ----------------------------------------------------


class FineTuningStream(ka.BiographyStream):
    """Fine-tuning biographies (training templates): about an old individual (uniform over the N) with
    probability `old_share`, else about one of `new` (uniform); member k draws from seed k's generator."""

    def __init__(self, cfg: ForgettingConfig, enc: bio.BiographyEncoder, seeds: list[int], new: np.ndarray,
                 old_share: float):  # fmt: skip
        super().__init__(cfg.model_copy(update={"steps": cfg.ft_steps}), enc, seeds, list(range(len(seeds))))
        self.gens = [NumpyGenerator(s, "fine-tuning") for s in seeds]
        self.new, self.old_share = new, old_share

    def individuals(self, gen: NumpyGenerator) -> np.ndarray:
        size = ka.DATA_CHUNK * self.cfg.batch_size
        old = gen.rng.random(size) < self.old_share
        return np.where(old, gen.rng.integers(0, self.cfg.n_individuals, size), gen.rng.choice(self.new, size))


def new_individuals(enc: bio.BiographyEncoder, n: int) -> np.ndarray:
    return np.asarray(enc.world.unseen)[:n]


def knowledge_sets(cfg: ForgettingConfig, enc: bio.BiographyEncoder, new: np.ndarray) -> dict[str, bio.Batch]:
    """Fixed held-out-template biographies of old and of new individuals (knowledge, not memory)."""
    seq_len = ka.context_length(cfg, enc)
    who = {"old": np.arange(min(cfg.eval_individuals, cfg.n_individuals)), "new": new[: cfg.eval_individuals]}
    return {
        name: enc.eval_batch(ids, "heldout", seed=cfg.world_seed + 10 + i, seq_len=seq_len).trimmed(enc.pad_id)
        for i, (name, ids) in enumerate(who.items())
    }


def knowledge(sets: dict[str, bio.Batch], cfg: ForgettingConfig) -> Callable[[EnsembleTransformer], dict[str, Tensor]]:
    """Per member: attribute accuracy and loss on each set (acc_old, loss_old, acc_new, loss_new)."""

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        out = {}
        for name, batch in sets.items():
            s = ka.score(model, batch, cfg)
            out[f"acc_{name}"] = s.correct.nanmean(dim=(1, 2)).cpu()
            out[f"loss_{name}"] = s.loss.nanmean(dim=(1, 2)).cpu()
        return out

    return evaluate


def eval_steps(steps: int, early_every: int, late_every: int) -> list[int]:
    """Step 0, every `early_every` steps up to step 100, every `late_every` after, and the last step."""
    early = range(0, min(EARLY, steps) + 1, early_every)
    late = range(late_every * (EARLY // late_every + 1), steps + 1, late_every)
    return sorted({*early, *late, steps})


Curve = list[tuple[int, dict[str, Tensor]]]  # (step, {metric: [K]})


def train_tracked(model: torch.nn.Module, evaluate: Callable[[Any], dict[str, Tensor]], schedule: list[int],
                  **train_kw: Any) -> Curve:  # fmt: skip
    """`train_ensemble` evaluating at the steps of `schedule`, step 0 (before the first update) included:
    `train_ensemble`'s own evaluations are uniform and start after the first step. Not checkpointed: a
    fine-tuning is short, and a resumed job runs it again from the pre-trained weights."""
    when, progress = set(schedule), train_kw.pop("on_step", None)
    with torch.no_grad():
        curve: Curve = [(0, evaluate(model))] if 0 in when else []

    def on_step(step: int) -> None:
        if step in when:
            with torch.no_grad():
                curve.append((step, evaluate(model)))
        if progress is not None:
            progress(step)

    train_ensemble(model, on_step=on_step, **train_kw)
    return curve


def curve_rows(arm: str, seeds: list[int], curve: Curve, extra: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """A fine-tuning's curves (split eval) and its summary (split test, see the method)."""
    members = [(arm, s) for s in seeds]
    steps = np.array([s for s, _ in curve])
    values = {name: np.stack([m[name].numpy() for _, m in curve]) for name in curve[0][1]}  # [E, K]
    old, new, early = values["acc_old"], values["acc_new"], steps <= EARLY
    finals = {
        "old_acc_start": old[0],
        "old_acc_min_100": old[early].min(0),
        "old_acc_end": old[-1],
        "new_acc_start": new[0],
        "new_acc_100": new[early][-1],
        "new_acc_end": new[-1],
        "old_half_step": first_step(steps, old < COLLAPSE * old[0]),
        "new_half_step": first_step(steps, new >= LEARNT),
        "old_loss_start": values["loss_old"][0],
        "old_loss_max_100": values["loss_old"][early].max(0),
        "old_loss_end": values["loss_old"][-1],
        "new_loss_end": values["loss_new"][-1],
        **(extra or {}),
    }
    frames = [member_rows(members, steps.tolist(), v, "eval", name) for name, v in values.items()]
    frames += [member_rows(members, [int(steps[-1])], v[None], "test", name) for name, v in finals.items()]
    return pd.concat(frames, ignore_index=True)


def first_step(steps: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Per member (columns of hit [E, K]): the first step where hit is true; NaN if never."""
    return np.where(hit.any(0), steps[hit.argmax(0)], np.nan)


# --- attention patterns -----------------------------------------------------------------------------------


@torch.no_grad()
def attention_patterns(model: EnsembleTransformer, tokens: Tensor) -> list[Tensor]:
    """Every layer's attention pattern [K, B, heads, T, T] on the same tokens [B, T] for every member."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.n_layers)]
    _, cache = model.run_with_cache(tokens.expand(model.n_models, -1, -1), names)
    return [cache[n] for n in names]


def pattern_change(before: list[Tensor], after: list[Tensor], queries: Tensor) -> np.ndarray:
    """[layers, K]: the total-variation distance between attention distributions, averaged over heads and
    the query positions marked in queries [B, T]."""
    weight = queries[None, :, None, :].float()  # [1, B, 1, T]
    out = []
    for a, b in zip(before, after, strict=True):
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
        self.pre = attention_patterns(pre, self.tokens)

    def change(self, before: list[Tensor], after: list[Tensor]) -> dict[str, np.ndarray]:
        """`attn_change_l{l}` and `attn_recall_change_l{l}` per member."""
        out = {}
        for name, queries in self.queries.items():
            moved = pattern_change(before, after, queries)
            out |= {f"{name}_l{layer}": moved[layer] for layer in range(len(moved))}
        return out


# --- the protocol: pre-training, then every fine-tuning ---------------------------------------------------


def forgetting_job(cfg: ForgettingConfig, ctx: RunContext) -> pd.DataFrame:
    """One seed group: pre-train once, then fine-tune a copy of the pre-trained model in every arm."""
    enc, seeds = ka.world_of(cfg), cfg.seed_list
    pre, log, _ = ka.train(cfg, ctx, label=f"{PRETRAINING} · seeds {seeds[0]}–{seeds[-1]}")
    probe = Probe(cfg, enc, pre)
    frames = [pretraining_rows(cfg, enc, log, probe)]
    for arm, n, old_share in fine_tunings(cfg):
        new = new_individuals(enc, n)
        model = copy.deepcopy(pre)
        with ctx.progress(f"{arm} · {len(seeds)} fine-tunings", cfg.ft_steps) as update:
            curve = train_tracked(
                model,
                knowledge(knowledge_sets(cfg, enc, new), cfg),
                eval_steps(cfg.ft_steps, cfg.ft_eval_early, cfg.ft_eval_every),
                batch=FineTuningStream(cfg, enc, seeds, new, old_share),
                loss_fn=ka.lm_loss(cfg, enc.pad_id),
                steps=cfg.ft_steps,
                lr=cfg.ft_lr,
                weight_decay=cfg.weight_decay,
                betas=(0.9, cfg.beta2),
                decoupled_weight_decay=True,
                on_step=update,
                cpu_threads=None,
            )
        frames.append(curve_rows(arm, seeds, curve, probe.change(probe.pre, attention_patterns(model, probe.tokens))))
    return pd.concat(frames, ignore_index=True)


def pretraining_rows(cfg: ForgettingConfig, enc: bio.BiographyEncoder, log: TrainLog, probe: Probe) -> pd.DataFrame:
    """The pre-training curves, its final knowledge, and how far learning moved the attention patterns."""
    members = [(PRETRAINING, s) for s in cfg.seed_list]
    init = ka.build_model(cfg, enc, cfg.seed_list)
    steps = [s for s, _ in log.evals]
    frames = [
        member_rows(members, steps, np.stack([m[name].numpy() for _, m in log.evals]), "eval", name)
        for name in log.evals[0][1]
    ]
    last = log.evals[-1][1]
    finals = {
        "final_acc_heldout_templates": last["acc_heldout_templates"].numpy(),
        "final_loss_heldout_templates": last["loss_heldout_templates"].numpy(),
        **probe.change(attention_patterns(init, probe.tokens), probe.pre),
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
            lr_schedule=ka.cosine(cfg.toy_steps),
            on_step=update,
            checkpoint=ctx.checkpoint("toy-pre-training"),
            **common,
        )
    frames = []
    for arm, m in cfg.toy_fine_tunings:
        end = cfg.toy_pairs + m
        with ctx.progress(f"{arm} · fine-tuning", cfg.toy_ft_steps) as update:
            curve = train_tracked(
                copy.deepcopy(pre),
                toy_scores(keys[:, :end], classes[:, :end], cfg.toy_pairs),
                eval_steps(cfg.toy_ft_steps, 10, cfg.toy_eval_every),
                batch=MemoryBatches(keys, classes, cfg.toy_pairs, end, cfg.toy_batch, seeds, "toy-fine-tuning"),
                steps=cfg.toy_ft_steps,
                lr=cfg.toy_ft_lr,
                on_step=update,
                **common,
            )
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
    and every n against the fewest new individuals (`old_acc_end_vs_fewest`, `old_loss_end_vs_fewest`)."""
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
    fewest = new_arm(cfg.new_values[0])
    for arm in (new_arm(n) for n in cfg.new_values[1:]):
        if {arm, fewest} <= arms:
            for m in ("old_acc_end", "old_loss_end"):
                add(arm, f"{m}_vs_fewest", _per_seed(metrics, arm, m), _per_seed(metrics, fewest, m))
    return table


# --- the published claims ------------------------------------------------------------------------------------


def _arms(t: Table, prefix: str) -> list[str]:
    return [a for a in t if a.startswith(prefix)]


def _values(cell: Cell) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in cell["values"]], dtype=float)


def _collapsed(cells: dict[str, Cell]) -> tuple[bool, float]:
    """Whether the mean minimum within 100 steps is below half the mean start (a start of 0: nothing to
    lose), and their ratio."""
    start = cells["old_acc_start"]["mean"]
    ratio = cells["old_acc_min_100"]["mean"] / start if start > 0 else math.nan
    return ratio < COLLAPSE, ratio


def _trajectory(cells: dict[str, Cell]) -> str:
    """Old accuracy before fine-tuning → its minimum within 100 steps → at the end (means)."""
    return (
        f"{100 * cells['old_acc_start']['mean']:.0f}% → {100 * cells['old_acc_min_100']['mean']:.0f}% "
        f"(≤100 steps) → {100 * cells['old_acc_end']['mean']:.0f}%"
    )


def _fast_collapse(t: Table) -> tuple[bool, str]:
    arms = _arms(t, "new-")
    held = bool(arms) and all(_collapsed(t[a])[0] for a in arms)
    return held, "old-individual accuracy " + "; ".join(f"{a}: {_trajectory(t[a])}" for a in arms)


def _half_steps(cells: dict[str, Cell]) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: when old accuracy halved and new accuracy reached 50% (never: infinity)."""
    old, new = (_values(cells[m]) for m in ("old_half_step", "new_half_step"))
    return np.where(np.isnan(old), np.inf, old), np.where(np.isnan(new), np.inf, new)


def _slow_acquisition(t: Table) -> tuple[bool, str]:
    arms, parts, held = _arms(t, "new-"), [], True
    for a in arms:
        old, new = _half_steps(t[a])
        held &= bool(np.all(old < new))
        parts.append(
            f"{a}: old halved by step {_steps(old)}, new reached 50% at {_steps(new)}; "
            f"new accuracy {100 * t[a]['new_acc_100']['mean']:.0f}% at step 100"
        )
    return bool(arms) and held, "; ".join(parts)


def _steps(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    never = int(np.sum(~np.isfinite(values)))
    if not finite.size:
        return "never"
    return f"{finite.mean():.0f}" + (f" (never in {never} of {len(values)} seeds)" if never else "")


def _more_new_more_forgetting(t: Table) -> tuple[bool, str]:
    arms = _arms(t, "new-")
    largest = arms[-1]
    diff = t[largest]["old_acc_end_vs_fewest"]
    means = [t[a]["old_acc_end"]["mean"] for a in arms]
    monotone = all(b <= a for a, b in zip(means, means[1:], strict=False))
    held = monotone and diff["ci95"][1] < 0
    return held, (
        "final old-individual accuracy " + ", ".join(f"{a} {100 * m:.1f}%" for a, m in zip(arms, means, strict=True))
        + f"; {largest} minus {arms[0]}: {_points(diff)}"
    )  # fmt: skip


def _points(cell: Cell) -> str:
    lo, hi = cell["ci95"]
    return f"{100 * cell['mean']:+.1f} points (95% CI {100 * lo:+.1f} to {100 * hi:+.1f})"


def _replay_softens(t: Table) -> tuple[bool, str]:
    arms = _arms(t, "replay-")
    cells = [t[a]["old_loss_end_vs_no_replay"] for a in arms]
    held = bool(arms) and all(c["ci95"][1] < 0 for c in cells)
    return held, "final old-individual loss minus no replay: " + "; ".join(
        f"{a} {c['mean']:+.2f} nats (95% CI {c['ci95'][0]:+.2f} to {c['ci95'][1]:+.2f})"
        for a, c in zip(arms, cells, strict=True)
    )


def _replay_still_collapses(t: Table) -> tuple[bool, str]:
    arms = _arms(t, "replay-")
    held = bool(arms) and all(_collapsed(t[a])[0] for a in arms)
    return held, "old-individual accuracy " + "; ".join(
        f"{a}: {_trajectory(t[a])} (early drop vs no replay {_points(t[a]['early_drop_vs_no_replay'])})" for a in arms
    )


def _attention_stable(t: Table) -> tuple[bool, str]:
    layers = sorted(m for m in t[PRETRAINING] if m.startswith("attn_recall_change_l"))
    arms = _arms(t, "new-") + _arms(t, "replay-")
    parts, held = [], bool(arms and layers)
    for m in layers:
        scale = t[PRETRAINING][m]["mean"]
        worst = max(t[a][m]["mean"] for a in arms)
        held &= worst < STABLE * scale
        parts.append(f"layer {m.rsplit('_l', 1)[1]}: at most {100 * worst:.1f}% vs {100 * scale:.1f}% in pre-training")
    return held, "total-variation distance of attention at recall queries, fine-tuning vs pre-training: " + "; ".join(
        parts
    )


def _toy_forgets_first(t: Table) -> tuple[bool, str]:
    arms = _arms(t, TOY)
    old, new = _half_steps(t[TOY])
    held = bool(np.all(old < new))
    return held, "; ".join(
        f"{a}: old-pair accuracy {_trajectory(t[a])}, halved by step {_steps(_half_steps(t[a])[0])}"
        f"; new pairs reach 50% at step {_steps(_half_steps(t[a])[1])} (end {100 * t[a]['new_acc_end']['mean']:.0f}%)"
        for a in arms
    )


CLAIMS = (
    Claim(
        "Pre-training knowledge collapses within the first ~100 fine-tuning steps: old-individual accuracy "
        "falls below half its starting value, for every number of new individuals",
        _fast_collapse,
    ),
    Claim(
        "New knowledge is acquired slowly: old accuracy halves before new-individual accuracy reaches 50%, "
        "in every seed and arm",
        _slow_acquisition,
    ),
    Claim(
        "More new individuals, more forgetting: final old-individual accuracy falls with n (means monotone, "
        "largest minus fewest below 0)",
        _more_new_more_forgetting,
    ),
    Claim("Replay of old individuals softens the final loss at every weight (2 … 1/32)", _replay_softens),
    Claim(
        "Replay does not prevent the initial collapse: old accuracy still falls below half within 100 steps "
        "at every replay weight",
        _replay_still_collapses,
    ),
    Claim(
        f"Attention patterns stay stable: at the queries that recall a value, fine-tuning moves every layer's "
        f"attention by less than {STABLE:.0%} of what pre-training moved it (TV distance), in every arm",
        _attention_stable,
    ),
    Claim(
        "The toy associative memory forgets fast: old-pair accuracy halves before new-pair accuracy "
        "reaches 50% (arm toy-memory)",
        _toy_forgets_first,
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
        arms = _arms(t, "new-") + _arms(t, "replay-")
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
    return out + _budget_notes(t) + _replay_notes(t)


def _toy_pairs_of(arm: str, c: dict[str, Any]) -> int:
    return c["toy_new_pairs"] if arm == TOY else int(arm.rsplit("-", 1)[1])


def _budget_notes(t: Table) -> list[str]:
    """At a fixed budget, n also decides how much of the new set is learnt: both numbers side by side."""
    arms = _arms(t, "new-")
    if len(arms) < 2:
        return []
    return [
        "Forgetting against how much of the new set was learnt, at the same number of steps (new accuracy / "
        "old accuracy at the end): "
        + ", ".join(
            f"{a} {100 * t[a]['new_acc_end']['mean']:.0f}% / {100 * t[a]['old_acc_end']['mean']:.0f}%" for a in arms
        )
        + "."
    ]


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

    t, out = summary["table"], {}
    tuned = _arms(t, "new-") + _arms(t, "replay-") + _arms(t, TOY)
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
        out["final"] = fig
    if PRETRAINING in t:  # instead of the generic figure's panel per metric of every arm
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        for name, label in (("heldout_templates", "old, held-out templates"), ("unseen", "never seen (new)")):
            ax.plot(*_mean_curve(metrics, PRETRAINING, f"acc_{name}"), label=label)
            ax2.plot(*_mean_curve(metrics, PRETRAINING, f"loss_{name}"), label=label)
        ax2.axhline(bio.no_knowledge_baseline(), color="black", ls=":", lw=1, label="no-knowledge baseline")
        ax.set(xlabel="pre-training step", ylabel="attribute accuracy", title="Pre-training (mean over seeds)")
        ax2.set(xlabel="pre-training step", ylabel="attribute loss (nats)", title="Pre-training")
        ax2.legend(fontsize=7)
        fig.tight_layout()
        out["learning_curves"] = fig
    groups = {"new individuals (no replay)": _arms(t, "new-")}
    if replays := _arms(t, "replay-"):
        groups["replay (n = " + str(summary["config"]["replay_new"]) + ")"] = [
            new_arm(summary["config"]["replay_new"]), *replays
        ]  # fmt: skip
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
        out["forgetting"] = fig

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
        out["toy_memory"] = fig

    if PRETRAINING in t and groups:
        arms = [PRETRAINING] + _arms(t, "new-") + _arms(t, "replay-")
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
        out["attention"] = fig
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
