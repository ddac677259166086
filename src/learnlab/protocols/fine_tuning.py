"""Fine-tuning a biography transformer on new individuals: the forgetting protocol of C8, reusable.

From pre-trained weights, a model is fine-tuned with AdamW (a fresh optimizer, the pre-training's β and
weight decay) at a constant learning rate on fresh training-template biographies about new individuals —
the first n of the world's `unseen` ones — mixed with old ones (uniform over the N) at a given share.
Knowledge of old and new individuals is scored on fixed held-out-template biographies at step 0, every
`early_every` steps up to step 100 (the source's "first ~100 steps"), then every `late_every` steps.
`curve_rows` turns the evaluations into per-seed curves and the summary every forgetting study reports
(old accuracy before, its minimum within 100 steps, at the end; when old accuracy halves, when new
accuracy reaches 50%). `fine-tuning-forgetting` (C8) and `mixture-of-experts` (E3) run on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import Tensor

from learnlab.engine.context import RunContext
from learnlab.engine.rng import NumpyGenerator
from learnlab.engine.train import multiples, train_ensemble
from learnlab.models.moe import moe_layers
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import biography_lm as bl
from learnlab.protocols.measurements import member_rows
from learnlab.tasks import biographies as bio

EARLY = 100  # "the first ~100 fine-tuning steps" of the source
COLLAPSE = 0.5  # knowledge has collapsed once accuracy is below half its value before fine-tuning
LEARNT = 0.5  # new knowledge counts as acquired once accuracy reaches 50%


class FineTuningStream(bl.BiographyStream):
    """Fine-tuning biographies (training templates): about an old individual (uniform over the N) with
    probability `old_share`, else about one of `new` (uniform); member k draws from seed k's generator."""

    def __init__(self, cfg: bl.BiographyConfig, enc: bio.BiographyEncoder, seeds: list[int], new: np.ndarray,
                 old_share: float, steps: int):  # fmt: skip
        super().__init__(cfg.model_copy(update={"steps": steps}), enc, seeds, list(range(len(seeds))))
        self.gens = [NumpyGenerator(s, "fine-tuning") for s in seeds]
        self.new, self.old_share = new, old_share

    def individuals(self, gen: NumpyGenerator) -> np.ndarray:
        size = bl.DATA_CHUNK * self.cfg.batch_size
        old = gen.rng.random(size) < self.old_share
        return np.where(old, gen.rng.integers(0, self.cfg.n_individuals, size), gen.rng.choice(self.new, size))


def new_individuals(enc: bio.BiographyEncoder, n: int) -> np.ndarray:
    return np.asarray(enc.world.unseen)[:n]


def knowledge_sets(cfg: bl.BiographyConfig, enc: bio.BiographyEncoder, new: np.ndarray) -> dict[str, bio.Batch]:
    """Fixed held-out-template biographies of old and of new individuals (knowledge, not memory)."""
    seq_len = bl.context_length(cfg, enc)
    who = {"old": np.arange(min(cfg.eval_individuals, cfg.n_individuals)), "new": new[: cfg.eval_individuals]}
    return {
        name: enc.eval_batch(ids, "heldout", seed=cfg.world_seed + 10 + i, seq_len=seq_len).trimmed(enc.pad_id)
        for i, (name, ids) in enumerate(who.items())
    }


def eval_steps(steps: int, early_every: int, late_every: int) -> list[int]:
    """Step 0, every `early_every` steps up to step 100, every `late_every` after, and the last step."""
    return sorted({*multiples(early_every, min(EARLY, steps)), *multiples(late_every, steps, after=EARLY), steps})


Curve = list[tuple[int, dict[str, Tensor]]]  # (step, {metric: [K]}): a training's evaluations


def fine_tune(
    model: EnsembleTransformer,
    cfg: bl.BiographyConfig,
    ctx: RunContext,
    *,
    new: np.ndarray,
    old_share: float,
    steps: int,
    lr: float,
    early_every: int,
    late_every: int,
    label: str,
) -> Curve:
    """Fine-tune `model` in place (one member per seed of `cfg`) on biographies of `new` individuals, old
    ones at `old_share`, for `steps` steps at the constant rate `lr`; old and new knowledge scored on
    `eval_steps(steps, early_every, late_every)`. The loss is the protocol's (`biography_lm.lm_loss`: a
    mixture of experts keeps its load-balancing loss, over the real tokens)."""
    enc, seeds = bl.world_of(cfg), cfg.seed_list
    evaluate = bl.curve_metrics(knowledge_sets(cfg, enc, new), cfg, ("acc", "loss"))
    with ctx.progress(f"{label} · {len(seeds)} fine-tunings", steps) as update:
        # not checkpointed: a fine-tuning is short, and a resumed job runs it again from the pre-trained weights
        return train_ensemble(
            model,
            FineTuningStream(cfg, enc, seeds, new, old_share, steps),
            bl.lm_loss(cfg, enc.pad_id, experts=moe_layers(model)),
            steps=steps,
            lr=lr,
            weight_decay=cfg.weight_decay,
            betas=(0.9, cfg.beta2),
            decoupled_weight_decay=True,
            evaluate=evaluate,
            eval_steps=eval_steps(steps, early_every, late_every),
            on_step=update,
            cpu_threads=None,
        ).evals


def curve_rows(arm: str, seeds: list[int], curve: Curve, extra: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """A fine-tuning's curves (split eval) and its summary (split test): old accuracy before fine-tuning
    (`old_acc_start`), its minimum within 100 steps and at the end; new accuracy at the start, step 100 and
    the end; the first evaluated step where old accuracy is below half its start (`old_half_step`) and
    where new accuracy reaches 50% (`new_half_step`; NaN if never); old and new losses; the steps run."""
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
        "ft_steps": np.full(len(seeds), float(steps[-1])),
        **(extra or {}),
    }
    frames = [member_rows(members, steps.tolist(), v, "eval", name) for name, v in values.items()]
    frames += [member_rows(members, [int(steps[-1])], v[None], "test", name) for name, v in finals.items()]
    return pd.concat(frames, ignore_index=True)


def first_step(steps: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Per member (columns of hit [E, K]): the first step where hit is true; NaN if never."""
    return np.where(hit.any(0), steps[hit.argmax(0)], np.nan)
