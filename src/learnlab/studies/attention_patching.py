"""C6 `attention-patching` — the plateau is the time attention takes to find the name.

Source: Zucchet et al. (2025), seeds/002, section 3.2.1. Claim: during the plateau the model builds the
attention circuits that recall needs (read the individual's name from the position that predicts a
value). Training a fresh model whose attention patterns are copied, frozen, from a reference checkpoint
taken after the plateau removes the plateau; the later in training the checkpoint, the more its
patterns help; but patterns from very early training are worse than untrained ones, because early
attention, when predicting a value's first token, looks at the attribute-type words rather than the name.

Method. A reference run is the knowledge-acquisition protocol (`knowledge_acquisition`: one
transformer per seed, AdamW, cosine schedule, fresh biographies every step) with its weights kept every
`snapshot_every` steps and at step 0. Its phases are detected on its held-out-template curve
(`learnlab.metrics.detect_phases`: phase 1 ends at the first evaluation with attribute loss within 10%
of the no-knowledge baseline, p1; the plateau ends at the first later one with attribute accuracy ≥ 5%,
p2; T is the last step), and each seed's stage checkpoints are the snapshots nearest to `phase1` = p1/2
(strictly before p1), `early-plateau` = p1 + (p2 − p1)/4, `late-plateau` = p1 + 3(p2 − p1)/4,
`after-plateau` = p2 + (T − p2)/4 and `end` = T; `untrained-patterns` uses the step-0 weights. Where the
reference never reaches a boundary, it stands at a nominal fraction of the run (p1 = T/4, p2 = midway
from p1 to T) and the run says so. Each patched arm trains new models from the reference's own
initialisation on its own data stream (the same seeds), with every layer's attention pattern
(`blocks.{l}.attn.hook_pattern`) replaced, stop-gradient, by the pattern its reference checkpoint computes
on the same input — a frozen copy of the checkpoint runs alongside, at training and at evaluation, up
to its last attention pattern. The `unpatched` arm is the reference run itself, which is exactly what
the same protocol without patching trains. Every arm is scored every `eval_every` steps (and at step 0)
on fixed biographies of seen individuals in held-out templates: attribute loss, attribute accuracy, and
the attention paid, from each position that predicts a value's first token, to the individual's name
(every occurrence so far), to the attribute-type words since the name, and to <bos> — per layer,
averaged over heads and the six attributes. The plateau length is p2 − p1 of each arm's own curve: 0
when accuracy is already ≥ 5% where phase 1 ends; missing (NaN) when the plateau does not end within the
run, or when the loss never comes within 10% of the baseline (then no phase 1 either). `acc_auc` is the
mean held-out accuracy over the run (the area under the learning curve divided by its length), the
measure of "helps" and "worse" in the claims. Comparisons are paired by seed, and a claim holds when it
holds in every seed; there a plateau that never ends counts as longer than any that does, and a run
without phase 1 as no evidence. Each patched arm is one job (`--set backend=ray` runs them as Ray
tasks); the reference runs first, in the driver.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

from learnlab.config import check_arms
from learnlab.engine.train import TrainLog, train_ensemble
from learnlab.metrics import attribute_scores, detect_phases
from learnlab.models.transformer import EnsembleTransformer, Hooks
from learnlab.reporting.stats import Table, describe
from learnlab.studies import knowledge_acquisition as ka
from learnlab.studies.base import Claim, RunContext, Study, member_rows
from learnlab.sweeps.jobs import GridConfig, Job, run_jobs
from learnlab.tasks import biographies as bio

UNPATCHED, UNTRAINED = "unpatched", "untrained-patterns"
STAGES = ("phase1", "early-plateau", "late-plateau", "after-plateau", "end")  # in training order
ARMS = (UNPATCHED, UNTRAINED, *(f"patch-{s}" for s in STAGES))
PATTERN_MASSES = ("name", "type", "bos")  # where attention from a value-predicting position goes


class Config(GridConfig, ka.BiographyConfig):
    n_individuals: int = Field(400, gt=0, description="individuals trained on (N)")
    seeds: int = Field(2, ge=1)
    steps: int = Field(600, gt=0)
    schedule_steps: int = Field(1000, ge=0, description="the cosine schedule's length (0: steps)")
    eval_every: int = Field(25, gt=0)
    eval_individuals: int = Field(100, gt=0, description="seen individuals scored (held-out templates)")
    snapshot_every: int = Field(0, ge=0, description="keep the reference's weights this often (0: eval_every)")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {**ka.PRESETS["smoke"], "steps": 20, "schedule_steps": 0, "eval_every": 5, "eval_individuals": 8},
    # N=400, 2 seeds, 600 steps of a 1000-step cosine (the plateau ends near step 400, and the knowledge
    # phase has 200 steps at a useful learning rate): a reference run and six patched ones, 10.1 minutes
    # (604 s) alone on 2 cores
    "laptop": {},
    # the paper's model and data on a GPU, one full cosine; 2 seeds, the fewest that give a verdict
    "paper": {**ka.PRESETS["paper"], "seeds": 2, "schedule_steps": 0, "snapshot_every": 500},
}


# --- attention patterns --------------------------------------------------------------------------------


def pattern_names(n_layers: int) -> list[str]:
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]


class _Enough(Exception):
    """Raised by the hook of the last attention pattern: the rest of the forward pass is not needed."""


@torch.no_grad()
def patterns(reference: EnsembleTransformer, tokens: Tensor) -> dict[str, Tensor]:
    """Every layer's attention pattern [K, B, heads, T, T] of the reference on `tokens`, detached; the
    forward pass stops after the last layer's pattern (its MLP and the unembedding would be wasted)."""
    names = pattern_names(reference.n_layers)
    cache: dict[str, Tensor] = {}

    def keep(pattern: Tensor, name: str) -> None:
        cache[name] = pattern.detach()
        if name == names[-1]:
            raise _Enough

    with contextlib.suppress(_Enough):
        reference(tokens, hooks=dict.fromkeys(names, keep))
    return cache


def replaced_by(cache: dict[str, Tensor]) -> Hooks:
    """Hooks that put the cached patterns in place of the model's own."""
    return {name: (lambda _own, n: cache[n]) for name in cache}


def masses(cache: dict[str, Tensor], batch: bio.Batch) -> dict[str, Tensor]:
    """Attention from each position that predicts a value's first token, per layer and member [K],
    averaged over heads and those positions: onto the name's tokens (every occurrence so far), onto the
    attribute-type words (the tokens since the name, the predicting position included), onto <bos>."""
    names = pattern_names(len(cache))
    width, device = cache[names[0]].shape[-1], cache[names[0]].device
    first, name = batch.first_value[:, :width].to(device), batch.name_mask[:, :width].to(device)
    b, q = torch.nonzero(first[:, 1:], as_tuple=True)  # sequence, position predicting a first value token
    positions = torch.arange(width, device=device)
    last_name = torch.where(name, positions, -1).cummax(dim=1).values  # the latest name token so far
    keys = {
        "name": name[b],
        "type": (positions > last_name[b, q][:, None]) & (positions <= q[:, None]),
        "bos": (positions == 0).expand(len(b), -1),
    }  # each [Q, T]
    out = {}
    for layer, pattern_name in enumerate(names):
        rows = cache[pattern_name].permute(1, 3, 0, 2, 4)[b, q].float()  # [Q, K, heads, T]
        for what, where in keys.items():
            out[f"{what}_attention_l{layer}"] = (rows * where[:, None, None, :]).sum(-1).mean(dim=(0, 2))
    return out


# --- training and evaluation ------------------------------------------------------------------------------


def eval_set(cfg: ka.BiographyConfig, enc: bio.BiographyEncoder) -> bio.Batch:
    """Fixed biographies of seen individuals in held-out templates (knowledge, not memory)."""
    return ka.evaluation_sets(cfg, enc)["heldout_templates"]


def evaluator(
    batch: bio.Batch, cfg: ka.BiographyConfig, reference: EnsembleTransformer | None
) -> Callable[[EnsembleTransformer], dict[str, Tensor]]:
    """Held-out attribute loss and accuracy, and where the attention in use goes (`masses`): the model's
    own patterns, or its reference's when patched."""
    names = pattern_names(cfg.n_layers)

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        loss, correct, attention = [], [], {}
        for i in range(0, len(batch.tokens), ka.EVAL_CHUNK):
            chunk = bio.Batch(*(getattr(batch, f)[i : i + ka.EVAL_CHUNK] for f in bio.Batch.__dataclass_fields__))
            tokens = chunk.tokens.to(cfg.device).expand(model.n_models, -1, -1)
            with torch.no_grad(), ka.autocast(cfg):
                if reference is None:
                    logits, cache = model.run_with_cache(tokens, names=names)
                else:
                    cache = patterns(reference, tokens)
                    logits = model(tokens, hooks=replaced_by(cache))
            s = attribute_scores(logits, tokens, chunk.value_attr.to(cfg.device), len(bio.ATTRIBUTES))
            loss.append(s.loss)
            correct.append(s.correct)
            weight = int(chunk.first_value.sum())  # the chunk's share of the value-predicting positions
            for name, value in masses(cache, chunk).items():
                attention[name] = attention.get(name, 0) + value * weight
        out = {"loss_heldout_templates": torch.cat(loss, 1).nanmean(dim=(1, 2)),
               "acc_heldout_templates": torch.cat(correct, 1).nanmean(dim=(1, 2))}  # fmt: skip
        total = int(batch.first_value.sum())
        return out | {name: value / total for name, value in attention.items()}

    return evaluate


def patched_loss(cfg: ka.BiographyConfig, pad_id: int, reference: EnsembleTransformer):  # type: ignore[no-untyped-def]
    """`knowledge_acquisition.lm_loss` of a model whose attention patterns are the reference's on the
    same input (no gradient flows into them, nor into the reference)."""

    def loss(model: EnsembleTransformer, tokens: Tensor) -> Tensor:
        inputs = tokens[..., :-1]
        with ka.autocast(cfg):
            logits = model(inputs, hooks=replaced_by(patterns(reference, inputs)))
        target = tokens[..., 1:]
        ce = F.cross_entropy(logits.float().flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
        real = (target != pad_id).float()
        return (ce * real).sum(dim=(1, 2)) / real.sum(dim=(1, 2))

    return loss


Snapshots = dict[int, dict[str, Tensor]]  # step -> the ensemble's state dict (on the CPU)


def run(
    cfg: ka.BiographyConfig,
    ctx: RunContext,
    label: str,
    reference: EnsembleTransformer | None = None,
    snapshot_every: int = 0,
) -> tuple[TrainLog, Snapshots]:
    """One training of the protocol, one member per seed, from the seeds' initialisation and data:
    unpatched, keeping the weights every `snapshot_every` steps (and at 0 and the end), or patched by
    `reference`. The log starts with an evaluation at step 0."""
    enc, seeds = ka.world_of(cfg), cfg.seed_list
    model = ka.build_model(cfg, enc, seeds)
    stream = ka.BiographyStream(cfg, enc, seeds, list(range(len(seeds))))
    evaluate = evaluator(eval_set(cfg, enc), cfg, reference)
    start = _evaluated(model, evaluate)
    store = _SnapshotStore(ctx.workdir / "jobs" / "reference-snapshots" if ctx.workdir and reference is None else None)
    every = snapshot_every or cfg.eval_every
    if reference is None:
        store.keep(0, model)
    loss = ka.lm_loss(cfg, enc.pad_id) if reference is None else patched_loss(cfg, enc.pad_id, reference)
    with ctx.progress(f"{label} · {len(seeds)} transformers · N={cfg.n_individuals}", cfg.steps) as update:

        def on_step(step: int) -> None:
            if reference is None and (step % every == 0 or step == cfg.steps):
                store.keep(step, model)
            update(step)

        log = train_ensemble(
            model,
            stream,
            loss,
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=(0.9, cfg.beta2),
            decoupled_weight_decay=True,
            lr_schedule=ka.cosine(cfg.schedule_steps or cfg.steps),
            evaluate=evaluate,
            eval_every=cfg.eval_every,
            on_step=on_step,
            checkpoint=ctx.checkpoint("reference" if reference is None else "train"),
            cpu_threads=None,
        )
    log.evals.insert(0, (0, start))
    return log, store.snapshots


def _evaluated(
    model: EnsembleTransformer, evaluate: Callable[[EnsembleTransformer], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """The step-0 evaluation (train_ensemble evaluates after steps only): where the curves start."""
    model.eval()
    with torch.no_grad():
        out = {name: value.detach().cpu() for name, value in evaluate(model).items()}
    model.train()
    return out


class _SnapshotStore:
    """The reference's weights by step, in memory and, when the run has a work directory, on disk: a
    resumed reference (which continues from its last checkpoint) finds the earlier ones there."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.snapshots: Snapshots = {}
        if directory is not None and directory.is_dir():
            for file in directory.glob("step-*.pt"):
                self.snapshots[int(file.stem.removeprefix("step-"))] = torch.load(file)

    def keep(self, step: int, model: EnsembleTransformer) -> None:
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.snapshots[step] = state
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f"step-{step:07d}.pt.tmp"
            torch.save(state, tmp)
            tmp.replace(self.directory / f"step-{step:07d}.pt")


# --- stages ---------------------------------------------------------------------------------------------


def phases_of(log: TrainLog) -> list[tuple[float, float]]:
    """(phase-1 end, plateau end) of every member's held-out curve; NaN where not reached."""
    steps = np.array([s for s, _ in log.evals])
    loss = np.stack([m["loss_heldout_templates"].numpy() for _, m in log.evals])
    acc = np.stack([m["acc_heldout_templates"].numpy() for _, m in log.evals])
    found = [detect_phases(steps, loss[:, j], acc[:, j], bio.no_knowledge_baseline()) for j in range(loss.shape[1])]
    return [(p.phase1_end_step, p.plateau_end_step) for p in found]


def stage_steps(p1: float, p2: float, total: int, available: list[int]) -> dict[str, int]:
    """Each stage's checkpoint step for one reference seed: the available snapshot nearest to the stage's
    target (ties: the earlier); `phase1` only among the snapshots strictly between 0 and p1 when any.
    A phase boundary that was not reached stands at a nominal point (p1 = T/4, p2 = midway to T)."""
    p1 = p1 if math.isfinite(p1) else total / 4
    p2 = p2 if math.isfinite(p2) else (p1 + total) / 2
    targets = {
        "phase1": p1 / 2,
        "early-plateau": p1 + (p2 - p1) / 4,
        "late-plateau": p1 + 3 * (p2 - p1) / 4,
        "after-plateau": p2 + (total - p2) / 4,
        "end": total,
    }
    steps = np.array(sorted(available))
    out = {}
    for stage, target in targets.items():
        pool = steps[(steps > 0) & (steps < p1)] if stage == "phase1" else steps
        pool = pool if pool.size else steps
        out[stage] = int(pool[np.argmin(np.abs(pool - target))])
    return out


def stack_members(snapshots: Snapshots, steps: list[int]) -> dict[str, Tensor]:
    """A state dict whose member k is member k of the snapshot at steps[k]."""
    names = snapshots[steps[0]].keys()
    return {n: torch.stack([snapshots[s][n][k] for k, s in enumerate(steps)]) for n in names}


# --- measurements -----------------------------------------------------------------------------------------


def rows(arm: str, cfg: ka.BiographyConfig, log: TrainLog, reference_steps: list[int] | None) -> pd.DataFrame:
    """Long-format rows of one arm: the training loss, the evaluation curves and the test metrics. The
    attention masses of the test metrics are those of the patterns in use, averaged over layers: for a
    patched arm its reference checkpoint's (fixed), for the unpatched arm its own at the end and, as
    published, where its phase 1 and its plateau end."""
    members = [(arm, s) for s in cfg.seed_list]
    steps = [s for s, _ in log.evals]
    curve = {name: np.stack([m[name].numpy() for _, m in log.evals]) for name in log.evals[0][1]}  # [E, K]
    frames = [member_rows(members, list(range(1, len(log.losses) + 1)), log.losses.numpy(), "train", "loss")]
    frames += [member_rows(members, steps, v, "eval", name) for name, v in curve.items()]
    acc = curve["acc_heldout_templates"]
    attention = {what: np.mean([curve[f"{what}_attention_l{layer}"] for layer in range(cfg.n_layers)], axis=0)
                 for what in ("name", "type")}  # fmt: skip
    finals: dict[str, np.ndarray] = {}
    for j, (p1, p2) in enumerate(phases_of(log)):
        values = {
            "phase1_end_step": p1,
            "plateau_end_step": p2,
            "plateau_length": p2 - p1,
            "final_acc": acc[-1, j],
            "final_loss": curve["loss_heldout_templates"][-1, j],
            "acc_auc": float(np.trapezoid(acc[:, j], steps) / (steps[-1] - steps[0])),
            "name_attention": attention["name"][-1, j],
            "type_attention": attention["type"][-1, j],
        }
        if reference_steps is not None:
            values["reference_step"] = reference_steps[j]
        else:
            for key, at in (("phase1_end", p1), ("plateau_end", p2)):
                values[f"name_attention_at_{key}"] = (
                    attention["name"][steps.index(at), j] if math.isfinite(at) else math.nan
                )
        for name, value in values.items():
            finals.setdefault(name, np.zeros(len(members)))[j] = value
    frames += [member_rows(members, [steps[-1]], v[None], "test", n) for n, v in finals.items()]
    return pd.concat(frames, ignore_index=True)


def measure_patched(
    arm: str, reference_state: dict[str, Tensor], reference_steps: list[int], cfg: ka.BiographyConfig, ctx: RunContext
) -> pd.DataFrame:
    """A patched arm (a job): train from the seeds' initialisation with the reference checkpoints'
    patterns, member k's from the reference state's member k (seed k's checkpoint at reference_steps[k])."""
    reference = ka.build_model(cfg, ka.world_of(cfg), cfg.seed_list)
    reference.load_state_dict(reference_state)
    reference.eval().requires_grad_(False)
    log, _ = run(cfg, ctx, arm, reference=reference)
    return rows(arm, cfg, log, reference_steps)


def job_config(cfg: Config) -> ka.BiographyConfig:
    """The protocol's fields of the study's config (what a patched job needs)."""
    return ka.BiographyConfig(**{k: getattr(cfg, k) for k in ka.BiographyConfig.model_fields if k != "arms"})


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """The reference (= unpatched) run, its stage checkpoints per seed, then one job per patched arm."""
    base = job_config(cfg)
    log, snapshots = run(base, ctx, "reference (unpatched)", snapshot_every=cfg.snapshot_every)
    reference = rows(UNPATCHED, base, log, None)
    phases = phases_of(log)
    stages = [stage_steps(p1, p2, cfg.steps, list(snapshots)) for p1, p2 in phases]
    wanted = {UNTRAINED: [0] * cfg.seeds} | {f"patch-{s}": [st[s] for st in stages] for s in STAGES}
    jobs = [
        Job(arm, functools.partial(measure_patched, arm, stack_members(snapshots, steps), steps), base)
        for arm, steps in wanted.items()
        if arm in cfg.arms
    ]
    frames = run_jobs(jobs, cfg, ctx, "attention-patching")
    return pd.concat([reference, *frames.values()], ignore_index=True)


# --- comparisons across arms (derived cells) --------------------------------------------------------------


COMPARISONS = (  # (metric, baseline arm, tag): each patched arm minus the baseline, paired by seed
    ("plateau_length", UNPATCHED, "unpatched"),
    ("acc_auc", UNPATCHED, "unpatched"),
    ("acc_auc", UNTRAINED, "untrained"),
)


def paired(metrics: pd.DataFrame, cfg: Any) -> Table:
    """The `COMPARISONS`: cells over all arms' measurements, hence derived. Seeds where either side is
    missing (a plateau that never ended) are left out and counted."""
    final = metrics[metrics.split == "test"]
    values = final.set_index(["arm", "seed", "metric"])["value"].unstack("metric")
    arms = list(dict.fromkeys(final.arm))
    out: Table = {}
    for arm in arms:
        cells = {}
        for metric, base, tag in COMPARISONS:
            if arm in (base, UNPATCHED) or base not in arms or metric not in values:
                continue
            ours, theirs = values.loc[arm, metric], values.loc[base, metric]
            diff = (ours - theirs.reindex(ours.index)).to_numpy(dtype=float)
            cells[f"{metric}_vs_{tag}"] = {**describe(diff), "derived": True}
        if cells:
            out[arm] = cells
    return out


# --- the published claims ---------------------------------------------------------------------------------


def _effective_plateau(cells: dict[str, Any]) -> np.ndarray:
    """Per seed: the plateau length; +inf where phase 1 ended but the plateau did not within the run;
    NaN where the loss never came near the baseline (no phase 1: nothing to compare)."""
    p1 = np.array([math.nan if v is None else v for v in cells["phase1_end_step"]["values"]], dtype=float)
    length = np.array([math.nan if v is None else v for v in cells["plateau_length"]["values"]], dtype=float)
    return np.where(np.isfinite(p1) & ~np.isfinite(length), np.inf, length)


def _values(cell: dict[str, Any]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in cell["values"]], dtype=float)


def _fmt_steps(values: np.ndarray) -> str:
    return "/".join("never ends" if v == np.inf else "none" if not np.isfinite(v) else f"{v:.0f}" for v in values)


def _post_plateau_removes(t: Table) -> tuple[bool, str]:
    """Decided on the after-plateau checkpoint (shorter in every seed); the end checkpoint is shown too."""
    base = _effective_plateau(t[UNPATCHED])
    held = bool(np.all(_effective_plateau(t["patch-after-plateau"]) < base))  # NaN, or inf vs inf: False
    arms = (UNPATCHED, "patch-after-plateau", "patch-end")
    return held, (
        "plateau length per seed: "
        + "; ".join(f"{a} {_fmt_steps(_effective_plateau(t[a]))}" for a in arms)
        + " (checkpoint steps "
        + ", ".join(_fmt_steps(_values(t[a]["reference_step"])) for a in arms[1:])
        + "); knowledge (accuracy ≥ 5%) from step "
        + ", ".join(_fmt_steps(_values(t[a]["plateau_end_step"])) for a in arms)
        + "; final held-out accuracy "
        + ", ".join(f"{100 * t[a]['final_acc']['mean']:.1f}%" for a in arms)
    )


def _early_worse_than_untrained(t: Table) -> tuple[bool, str]:
    early, untrained = _values(t["patch-phase1"]["acc_auc"]), _values(t[UNTRAINED]["acc_auc"])
    held = bool(np.all(early < untrained))
    return held, (
        f"mean held-out accuracy over the run (acc_auc) per seed: phase-1 patterns "
        f"{'/'.join(f'{100 * v:.1f}%' for v in early)} vs untrained {'/'.join(f'{100 * v:.1f}%' for v in untrained)} "
        f"(phase-1 checkpoint steps {_fmt_steps(_values(t['patch-phase1']['reference_step']))}); plateau ends "
        f"{_fmt_steps(_values(t['patch-phase1']['plateau_end_step']))} vs "
        f"{_fmt_steps(_values(t[UNTRAINED]['plateau_end_step']))}; final accuracy "
        f"{100 * t['patch-phase1']['final_acc']['mean']:.1f}% vs {100 * t[UNTRAINED]['final_acc']['mean']:.1f}%, "
        f"final attribute loss {t['patch-phase1']['final_loss']['mean']:.2f} vs "
        f"{t[UNTRAINED]['final_loss']['mean']:.2f} nats"
    )


def _early_looks_at_type_words(t: Table) -> tuple[bool, str]:
    early, untrained = t["patch-phase1"], t[UNTRAINED]
    name = _values(early["name_attention"]) < _values(untrained["name_attention"])
    kind = _values(early["type_attention"]) > _values(untrained["type_attention"])
    return bool(np.all(name & kind)), (
        f"attention from the value-predicting positions (mean over layers and heads): phase-1 checkpoint "
        f"{100 * early['name_attention']['mean']:.1f}% on the name, {100 * early['type_attention']['mean']:.1f}% "
        f"on the attribute-type words; untrained {100 * untrained['name_attention']['mean']:.1f}% and "
        f"{100 * untrained['type_attention']['mean']:.1f}% (less on the name and more on the type words in "
        f"{int(np.sum(name & kind))} of {len(name)} seeds)"
    )


def _later_helps_more(t: Table) -> tuple[bool, str]:
    order = [f"patch-{s}" for s in STAGES[1:]]
    auc = {arm: _values(t[arm]["acc_auc"]) for arm in order}
    held = bool(np.all(auc["patch-late-plateau"] > auc["patch-early-plateau"]))
    return held, "acc_auc per seed: " + "; ".join(
        f"{arm.removeprefix('patch-')} {'/'.join(f'{100 * v:.1f}%' for v in auc[arm])}" for arm in order
    ) + f"; untrained {'/'.join(f'{100 * v:.1f}%' for v in _values(t[UNTRAINED]['acc_auc']))}"


def _name_attention_rises(t: Table) -> tuple[bool, str]:
    cells = t[UNPATCHED]
    start, end = _values(cells["name_attention_at_phase1_end"]), _values(cells["name_attention_at_plateau_end"])
    held = bool(np.all(end > start))
    pct = lambda v: "/".join("n/a" if not np.isfinite(x) else f"{100 * x:.1f}%" for x in v)  # noqa: E731
    return held, (
        f"reference's attention from the value-predicting position to the name (mean over layers and heads) "
        f"per seed: {pct(start)} where phase 1 ends, {pct(end)} where the plateau ends"
    )


CLAIMS = (
    Claim("Attention patterns from after the plateau shorten or remove the plateau", _post_plateau_removes),
    Claim("Patterns from very early training (phase 1) are worse than untrained patterns", _early_worse_than_untrained),
    Claim("... because early attention looks at the attribute-type words rather than the name",
          _early_looks_at_type_words),
    Claim("Patterns from late in the plateau help more than patterns from early in it", _later_helps_more),
    Claim("During the reference's plateau, attention to the name from the value-predicting position rises",
          _name_attention_rises),
)  # fmt: skip


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    ref = t.get(UNPATCHED, {})
    out = []
    if ref:
        p1, p2 = _values(ref["phase1_end_step"]), _values(ref["plateau_end_step"])
        out.append(
            f"Reference (= unpatched) per seed: phase 1 ends at {_fmt_steps(p1)}, the plateau at {_fmt_steps(p2)}"
            + ("." if np.isfinite(p1).all() and np.isfinite(p2).all() else
               " — a boundary was not reached in some seed, so its stages stand at nominal points (see Method).")
        )  # fmt: skip
    stages = [a for a in ARMS[1:] if a in t]
    if stages:
        out.append("Checkpoint step per seed of each patched arm: " + "; ".join(
            f"{a}: {_fmt_steps(_values(t[a]['reference_step']))}" for a in stages) + ".")  # fmt: skip
        out.append("Where the patterns in use send attention from the value-predicting positions (mean over "
                   "layers and heads; name / attribute-type words): " + "; ".join(
            f"{a} {100 * t[a]['name_attention']['mean']:.0f}% / {100 * t[a]['type_attention']['mean']:.0f}%"
            for a in (*stages, UNPATCHED) if a in t) + " (unpatched: its own, at the end).")  # fmt: skip
    return out


# --- figures --------------------------------------------------------------------------------------------------


def _mean_curve(metrics: pd.DataFrame, arm: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    ev = metrics[(metrics.split == "eval") & (metrics.arm == arm) & (metrics.metric == metric)]
    mean = ev.groupby("step")["value"].mean()
    return mean.index.to_numpy(), mean.to_numpy()


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    arms = [a for a in ARMS if a in set(metrics.arm)]
    if UNPATCHED not in arms:
        return {}
    t, out = summary["table"], {}
    colours = dict(zip([f"patch-{s}" for s in STAGES], plt.cm.viridis(np.linspace(0, 0.9, len(STAGES))), strict=True))
    style = {UNPATCHED: {"color": "black", "lw": 2}, UNTRAINED: {"color": "grey", "ls": "--"}}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for arm in arms:
        kw = style.get(arm, {"color": colours.get(arm)})
        step = _values(t[arm]["reference_step"]) if arm.startswith("patch-") else np.array([])
        label = arm + (f" (ckpt ~{np.nanmean(step):.0f})" if step.size and np.isfinite(step).any() else "")
        ax.plot(*_mean_curve(metrics, arm, "loss_heldout_templates"), label=label, **kw)
        ax2.plot(*_mean_curve(metrics, arm, "acc_heldout_templates"), label=label, **kw)
    ax.axhline(bio.no_knowledge_baseline(), color="black", ls=":", lw=1, label="no-knowledge baseline")
    ax.set(xlabel="step", ylabel="attribute loss (nats)", title="Held-out attribute loss, by reference stage",
           ylim=(0, 2.5 * bio.no_knowledge_baseline()))  # fmt: skip
    ax2.set(xlabel="step", ylabel="attribute accuracy", ylim=(-0.02, 1.02), title="Held-out attribute accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["learning_curves"] = fig

    layers = sorted({m.rsplit("_l", 1)[1] for m in metrics.metric.unique() if m.startswith("name_attention_l")})
    ref = t[UNPATCHED]
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 3.8), squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
        for what, colour in zip(PATTERN_MASSES, ("C3", "C0", "C7"), strict=True):
            ev = metrics[(metrics.split == "eval") & (metrics.arm == UNPATCHED)
                         & (metrics.metric == f"{what}_attention_l{layer}")]  # fmt: skip
            for _, g in ev.groupby("seed"):
                ax.plot(g.step, g.value, color=colour, alpha=0.25, lw=0.8)
            mean = ev.groupby("step")["value"].mean()
            label = {"name": "name tokens", "type": "attribute-type words", "bos": "<bos>"}[what]
            ax.plot(mean.index, mean.to_numpy(), color=colour, label=label)
        for metric, ls in (("phase1_end_step", ":"), ("plateau_end_step", "-.")):
            if ref[metric]["mean"] is not None:
                ax.axvline(ref[metric]["mean"], color="grey", ls=ls, lw=1)
        ax.set(xlabel="reference step", ylabel="attention mass", ylim=(0, 1),
               title=f"Layer {layer}: from the value-predicting position")  # fmt: skip
        ax.legend(fontsize=7)
    fig.suptitle("Reference run, mean over heads (dotted: phase 1 ends; dash-dot: plateau ends)", fontsize=9)
    fig.tight_layout()
    out["name_attention"] = fig
    out["final"] = _by_arm(t, arms)  # in place of the generic bars of every final metric
    return out


def _by_arm(t: Table, arms: list[str]) -> Any:
    """Plateau length and acc_auc per arm, seeds as dots; a plateau that never ended is drawn at the top."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(arms))
    lengths = [_effective_plateau(t[a]) for a in arms]
    finite = np.concatenate([v[np.isfinite(v)] for v in lengths] + [np.zeros(1)])
    top = 1.15 * finite.max() if finite.max() > 0 else 1.0
    for ax, metric, values in (
        (axes[0], "plateau length (steps)", lengths),
        (axes[1], "acc_auc (mean held-out accuracy)", [_values(t[a]["acc_auc"]) for a in arms]),
    ):
        means = [np.mean(np.where(np.isinf(v), top, v)) if np.isfinite(v).any() or np.isinf(v).any() else 0
                 for v in values]  # fmt: skip
        colours = ["black", "grey", *plt.cm.viridis(np.linspace(0, 0.9, max(len(arms) - 2, 1)))]
        bars = ax.bar(x, means, color=colours[: len(arms)], alpha=0.6)
        for bar, v in zip(bars, values, strict=True):
            if np.isinf(v).any():
                bar.set_hatch("//")  # not a length: at least the rest of the run
        for i, v in enumerate(values):
            shown = np.where(np.isinf(v), top, v)
            ax.scatter(np.full(v.size, i), shown, color="black", s=12, zorder=3)
            if np.isinf(v).any():
                ax.annotate("never ends", (i, top), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [a.removeprefix("patch-") for a in arms], rotation=30, ha="right", fontsize=8)
        ax.set(ylabel=metric)
    axes[0].set_title("Plateau of each arm (dots: seeds)")
    axes[1].set_title("Learning speed of each arm")
    fig.tight_layout()
    return fig


STUDY = Study(
    name="attention-patching",
    title="attention patterns copied from a trained checkpoint remove the plateau (C6)",
    source="seeds/002 (Zucchet et al. 2025, How do language models learn facts?), attention patching",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=ARMS,
    measure=measure,
    claims=CLAIMS,
    headline=(("unpatched", "plateau_length"), ("patch-after-plateau", "plateau_length")),
    figures=figures,
    notes=notes,
    derived=paired,
    plain_metrics=(
        "plateau_length",
        "phase1_end_step",
        "plateau_end_step",
        "reference_step",
        "final_loss",
        "plateau_length_vs_unpatched",
    ),
    point_metrics=("acc_auc_vs_unpatched", "acc_auc_vs_untrained"),
)
