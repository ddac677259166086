"""C6 `attention-patching` — the plateau is the time attention takes to find the name.

Source: Zucchet et al. (2025), seeds/002, section 3.2.1. Claim: during the plateau the model builds the
attention circuits that recall needs (read the individual's name from the position that predicts a
value). Training a fresh model whose attention patterns are copied, frozen, from a reference checkpoint
taken after the plateau removes the plateau; the later in training the checkpoint, the more its
patterns help; but patterns from very early training are worse than untrained ones, because early
attention, when predicting a value's first token, looks at the attribute-type words rather than the name.

Method. A reference run is the knowledge-acquisition protocol (`biography_lm`: one
transformer per seed, AdamW, cosine schedule, fresh biographies every step) with its weights kept every
`snapshot_every` steps and at step 0. Its phases are detected on its held-out-template curve against
the empirical no-knowledge level of its N individuals' values, as in knowledge-acquisition
(`learnlab.metrics.detect_phases`: phase 1 ends at the first evaluation with attribute loss within 10%
of that level, p1; a plateau must then hold the loss in that band, flat, below 5 points above chance
accuracy, for at least 3 evaluations, and ends at the first evaluation that breaks it, p2; T is the last step), and each
seed's stage checkpoints are the snapshots nearest to `phase1` = p1/2 (strictly before p1),
`early-plateau` = p1 + (p2 − p1)/4, `late-plateau` = p1 + 3(p2 − p1)/4, `after-plateau` = p2 + (T − p2)/4
and `end` = T; `untrained-patterns` uses the step-0 weights. Where the reference never reaches a boundary
(or shows no plateau), it stands at a nominal fraction of the run (p1 = T/4, p2 = midway from p1 to T)
and the run says so. Each patched arm trains new models from the reference's own
initialisation on its own data stream (the same seeds), with every layer's attention pattern
(`blocks.{l}.attn.hook_pattern`) replaced, stop-gradient, by the pattern its reference checkpoint computes
on the same input — a frozen copy of the checkpoint runs alongside, at training and at evaluation, up
to its last attention pattern. The `unpatched` arm is the reference run itself, which is exactly what
the same protocol without patching trains. Every arm is scored every `eval_every` steps (and at step 0)
on fixed biographies of seen individuals in held-out templates: attribute loss, attribute accuracy, and
the attention paid, from each position that predicts a value's first token, to the individual's name
(every occurrence so far), to the attribute-type words since the name, and to <bos> — per layer,
averaged over heads and the six attributes. The plateau length is p2 − p1 of each arm's own curve,
missing (NaN) when the plateau does not end within the run or the detector finds none
(`plateau_detected` says which). `knowledge_step` is the first evaluation with accuracy ≥ chance
+ 5 points (`chance_accuracy`, greedy guessing of the commonest values), whatever the detector says.
`acc_auc` is the mean held-out accuracy over the run (the area under the learning curve divided by its
length), the measure of "helps" and "worse" in the claims.

Verdicts. Every claim is a paired comparison over seeds (each patched arm shares its seed's
initialisation and data with the reference): the per-seed differences get a Student-t 95% interval, and
a directional claim holds when that interval lies wholly on its side of 0 (5 seeds at least). A claim
reads a plateau as the detector's p2 − p1; as 0 where the detector finds none but the run reaches
knowledge (the plateau was removed); as never ending (+∞) where the run never reaches knowledge, and a
comparison that needs such a plateau to be shorter fails. Seeds that cannot inform a claim are left out
and counted: those whose reference shows no plateau (its stages then stand at nominal points), whose
phase-1 checkpoint is the initialisation itself, or in which neither compared arm reaches knowledge
(mean accuracies of two runs that learnt nothing differ by noise only); with fewer than 3 seeds left the
claim is undetermined. Each patched arm is one job (`--set backend=ray` runs them as Ray tasks); the
reference runs first, in the driver.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator
from torch import Tensor

from learnlab.config import check_arms
from learnlab.engine.context import RunContext
from learnlab.engine.jobs import GridConfig, Job, run_jobs
from learnlab.engine.train import Snapshots, State, TrainLog, multiples
from learnlab.metrics import PLATEAU_ACCURACY, attribute_scores
from learnlab.models.transformer import EnsembleTransformer, Hooks
from learnlab.protocols import biography_lm as bl
from learnlab.protocols.measurements import curves, log_rows, member_rows
from learnlab.reporting.stats import Cell, Table, above, below, describe
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import biographies as bio

UNPATCHED, UNTRAINED = "unpatched", "untrained-patterns"
STAGES = ("phase1", "early-plateau", "late-plateau", "after-plateau", "end")  # in training order
ARMS = (UNPATCHED, UNTRAINED, *(f"patch-{s}" for s in STAGES))
PATTERN_MASSES = ("name", "type", "bos")  # where attention from a value-predicting position goes


class Config(GridConfig, bl.BiographyConfig):
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
    "smoke": {**bl.SMOKE, "steps": 20, "schedule_steps": 0, "eval_every": 5, "eval_individuals": 8},
    # N=400, 600 steps of a 1000-step cosine (the plateau ends near step 400, and the knowledge phase has 200
    # steps at a useful learning rate): a reference run and six patched ones. 5 seeds, the fewest the paired
    # claims accept (`min_seeds`); at 2 seeds this took 10.1 minutes (604 s) alone on 2 cores, so about
    # 25 minutes at 5 (the members train as one ensemble: at most linear in seeds) before re-tuning
    # Issue 11: the laptop world (pools of 40) at N = 200 (5x the largest pool), 260 steps of a 1000-step cosine,
    # an evaluation of 60 individuals every 13 steps; the patch-end arm, which no claim uses, left out for
    # time: 6 trainings of 5 members at about 0.54 s a step. Not yet run: this world has no plateau at N = 200
    # (plateau-scaling's first try), so the claims that need the reference's plateau would be undetermined;
    # a plateau needs N >= 800, about 38 minutes at 5 seeds on 2 cores: to be re-tuned
    "laptop": {
        "seeds": 5,
        **bl.LAPTOP_POOLS,
        "n_individuals": 200,
        "steps": 260,
        "eval_every": 13,
        "eval_individuals": 60,
        "arms": [a for a in ARMS if a != "patch-end"],
    },
    # the paper's model and data on a GPU, one full cosine; 5 seeds, the fewest the paired claims accept
    "paper": {**bl.PAPER, "seeds": 5, "schedule_steps": 0, "snapshot_every": 500},
}


# --- attention patterns --------------------------------------------------------------------------------


def replaced_by(cache: dict[str, Tensor]) -> Hooks:
    """Hooks that put the cached patterns in place of the model's own."""
    return {name: (lambda _own, n: cache[n]) for name in cache}


def patched(reference: EnsembleTransformer) -> Callable[[Tensor], Hooks]:
    """The hooks of a model patched by `reference` on given inputs: the reference's attention patterns on
    the same inputs (`biography_lm.attention_patterns`, no gradient) in place of the model's own."""
    return lambda inputs: replaced_by(bl.attention_patterns(reference, inputs))


def masses(cache: dict[str, Tensor], batch: bio.Batch) -> dict[str, Tensor]:
    """Attention from each position that predicts a value's first token, per layer and member [K],
    averaged over heads and those positions: onto the name's tokens (every occurrence so far), onto the
    attribute-type words (the tokens since the name, the predicting position included), onto <bos>."""
    names = bl.pattern_names(len(cache))
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


def eval_set(cfg: bl.BiographyConfig, enc: bio.BiographyEncoder) -> bio.Batch:
    """Fixed biographies of seen individuals in held-out templates (knowledge, not memory)."""
    return bl.evaluation_sets(cfg, enc)["heldout_templates"]


def evaluator(batch: bio.Batch, cfg: bl.BiographyConfig, reference: EnsembleTransformer | None) -> bl.Evaluator:
    """Held-out attribute loss and accuracy, and where the attention in use goes (`masses`): the model's
    own patterns, or its reference's when patched."""
    names = bl.pattern_names(cfg.n_layers)

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        loss, correct, attention = [], [], {}
        for i in range(0, len(batch.tokens), bl.EVAL_CHUNK):
            chunk = bio.Batch(*(getattr(batch, f)[i : i + bl.EVAL_CHUNK] for f in bio.Batch.__dataclass_fields__))
            tokens = chunk.tokens.to(cfg.device).expand(model.n_models, -1, -1)
            with torch.no_grad(), bl.autocast(cfg):
                if reference is None:
                    logits, cache = model.run_with_cache(tokens, names=names)
                else:
                    cache = bl.attention_patterns(reference, tokens)
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


def run(
    cfg: bl.BiographyConfig,
    ctx: RunContext,
    label: str,
    reference: EnsembleTransformer | None = None,
    snapshot_every: int = 0,
) -> TrainLog:
    """One training of the protocol (`biography_lm.train`), one member per seed, from the seeds'
    initialisation and data, evaluated from step 0 on and trained to the end: unpatched, keeping the
    weights every `snapshot_every` steps (and at 0 and the end: `log.snapshots`), or patched by `reference`."""
    enc, unpatched = bl.world_of(cfg), reference is None
    directory = ctx.workdir / "jobs" / "reference-snapshots" if ctx.workdir else None
    kept = {*multiples(snapshot_every or cfg.eval_every, cfg.steps), cfg.steps} if unpatched else set()
    _, log = bl.train(
        cfg,
        ctx,
        label,
        evaluate=evaluator(eval_set(cfg, enc), cfg, reference),
        loss=bl.lm_loss(cfg, enc.pad_id, hooks=None if unpatched else patched(reference)),
        eval_steps=multiples(cfg.eval_every, cfg.steps),
        checkpoint="reference" if unpatched else "train",
        snapshot_steps=sorted(kept),
        snapshots=Snapshots(directory) if unpatched else None,
        stop_after_plateau=False,
        arm=UNPATCHED if unpatched else label,  # the kept model's members (`RunContext.keep_model`)
    )
    return log


# --- stages ---------------------------------------------------------------------------------------------


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


def stack_members(snapshots: State, steps: list[int]) -> dict[str, Tensor]:
    """A state dict whose member k is member k of the snapshot at steps[k]."""
    names = snapshots[steps[0]].keys()
    return {n: torch.stack([snapshots[s][n][k] for k, s in enumerate(steps)]) for n in names}


# --- measurements -----------------------------------------------------------------------------------------


def rows(arm: str, cfg: bl.BiographyConfig, log: TrainLog, reference_steps: list[int] | None) -> pd.DataFrame:
    """Long-format rows of one arm: the training loss, the evaluation curves and the test metrics. The
    attention masses of the test metrics are those of the patterns in use, averaged over layers: for a
    patched arm its reference checkpoint's (fixed), for the unpatched arm its own at the end and, as
    published, where its phase 1 and its plateau end."""
    members = [(arm, s) for s in cfg.seed_list]
    steps, curve = curves(log)  # [E, K] each
    frames = log_rows(members, log)
    acc = curve["acc_heldout_templates"]
    attention = {what: np.mean([curve[f"{what}_attention_l{layer}"] for layer in range(cfg.n_layers)], axis=0)
                 for what in ("name", "type")}  # fmt: skip
    finals: dict[str, np.ndarray] = {}
    levels = bl.baselines(cfg)
    for j, phases in enumerate(bl.member_phases(log, levels)):
        p1, p2 = phases.phase1_end_step, phases.plateau_end_step
        knowing = np.flatnonzero(acc[:, j] >= levels.chance + PLATEAU_ACCURACY)
        values = {
            "phase1_end_step": p1,
            "plateau_end_step": p2,
            "plateau_length": p2 - p1,
            "plateau_detected": float(phases.plateau),
            "knowledge_step": steps[knowing[0]] if knowing.size else math.nan,
            "no_knowledge_baseline": levels.pool,
            "empirical_baseline": levels.empirical,
            "chance_accuracy": levels.chance,
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
    arm: str, reference_state: dict[str, Tensor], reference_steps: list[int], cfg: bl.BiographyConfig, ctx: RunContext
) -> pd.DataFrame:
    """A patched arm (a job): train from the seeds' initialisation with the reference checkpoints'
    patterns, member k's from the reference state's member k (seed k's checkpoint at reference_steps[k])."""
    reference = bl.build_model(cfg, bl.world_of(cfg), cfg.seed_list)
    reference.load_state_dict(reference_state)
    reference.eval().requires_grad_(False)
    return rows(arm, cfg, run(cfg, ctx, arm, reference=reference), reference_steps)


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """The reference (= unpatched) run, its stage checkpoints per seed, then one job per patched arm."""
    base = bl.protocol_config(cfg)
    log = run(base, ctx, "reference (unpatched)", snapshot_every=cfg.snapshot_every)
    snapshots = log.snapshots
    reference = rows(UNPATCHED, base, log, None)
    phases = bl.member_phases(log, bl.baselines(base))
    stages = [stage_steps(p.phase1_end_step, p.plateau_end_step, cfg.steps, list(snapshots)) for p in phases]
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

USABLE = 3  # seeds a paired test must keep once the seeds that cannot inform it are left out
CLAIM_SEEDS = 5  # every claim is a paired t-test over seeds: fewer seeds have next to no power


def _values(cell: dict[str, Any]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in cell["values"]], dtype=float)


def _reached(cells: dict[str, Any]) -> np.ndarray:
    """Per seed: the run reached knowledge (held-out accuracy ≥ chance + 5 points at some evaluation). Runs
    made before `knowledge_step` was measured: the final accuracy says it (accuracy does not fall back
    here), against a 5% line (those runs recorded no chance level)."""
    if "knowledge_step" in cells:
        return np.isfinite(_values(cells["knowledge_step"]))
    return _values(cells["final_acc"]) >= PLATEAU_ACCURACY


def _knowledge_steps(cells: dict[str, Any]) -> np.ndarray:
    """Per seed: the first step with accuracy ≥ chance + 5 points; +inf where the run never got there."""
    return np.where(_reached(cells), _values(cells["knowledge_step"]), np.inf)


def _effective_plateau(cells: dict[str, Any]) -> np.ndarray:
    """Per seed, the plateau as the claims read it: the detector's p2 − p1; 0 where the detector finds no
    plateau but the run reaches knowledge (the plateau was removed); +inf where the run never reaches
    knowledge (a plateau, or no learning, to the end of the run: longer than any that ends)."""
    length = _values(cells["plateau_end_step"]) - _values(cells["phase1_end_step"])
    return np.where(np.isfinite(length), length, np.where(_reached(cells), 0.0, np.inf))


def _real_plateau(reference: dict[str, Any]) -> np.ndarray:
    """Per seed: the reference shows a plateau that ends (its stages then sit at real points of it)."""
    p1, p2 = _values(reference["phase1_end_step"]), _values(reference["plateau_end_step"])
    return np.isfinite(p1) & np.isfinite(p2) & (p2 > p1)


def _shift(a: np.ndarray, b: np.ndarray, use: np.ndarray) -> tuple[Cell, int]:
    """The per-seed difference a − b over the seeds in `use`, and in how many of them a is +inf (never
    reached what b reached: no finite difference, and a decrease is then refuted)."""
    d = (a - b)[use]
    return describe(np.where(np.isinf(d), np.nan, d)), int(np.isposinf(d).sum())


def _decreases(cell: Cell, never: int) -> bool | None:
    return False if never else below(cell)


def _ci(cell: Cell, scale: float = 1.0, unit: str = " steps", digits: int = 0) -> str:
    if cell["mean"] is None:
        return "no seed"
    lo, hi = (scale * v for v in cell["ci95"])
    n = sum(v is not None for v in cell["values"])
    return f"{scale * cell['mean']:+.{digits}f}{unit} (95% CI {lo:+.{digits}f} to {hi:+.{digits}f}, {n} seeds)"


def _fmt_steps(values: np.ndarray) -> str:
    return "/".join("never" if v == np.inf else "none" if not np.isfinite(v) else f"{v:.0f}" for v in values)


def _too_few(use: np.ndarray, why: str) -> tuple[None, str]:
    return None, f"{int(use.sum())} of {use.size} seeds can inform this claim (left out: {why}); {USABLE} needed"


def _post_plateau_removes(t: Table) -> tuple[bool | None, str]:
    """Paired by seed over the seeds whose reference plateau ends: the after-plateau arm's plateau is
    shorter, and its knowledge (chance + 5 points) comes earlier, than the reference's (t-intervals below 0).
    Both: a detector that finds no plateau must not pass a run whose knowledge came no sooner."""
    ref, patched = t[UNPATCHED], t["patch-after-plateau"]
    use = _real_plateau(ref)
    if use.sum() < USABLE:
        return _too_few(use, "the reference shows no plateau that ends")
    shorter, never = _shift(_effective_plateau(patched), _effective_plateau(ref), use)
    sooner, _ = _shift(_knowledge_steps(patched), _knowledge_steps(ref), use)
    held = every([_decreases(shorter, never), _decreases(sooner, never)])
    return held, (
        f"after-plateau patterns minus reference, per seed with a reference plateau: plateau {_ci(shorter)}, "
        f"knowledge (chance + 5 points) {_ci(sooner)}"
        + (f"; the patched run never reached knowledge in {never} seed(s)" if never else "")
        + f". Plateau per seed: reference {_fmt_steps(_effective_plateau(ref))}, after-plateau "
        f"{_fmt_steps(_effective_plateau(patched))} (checkpoint steps {_fmt_steps(_values(patched['reference_step']))})"
        + (
            f"; end-of-run patterns {_fmt_steps(_effective_plateau(t['patch-end']))} (shown, not tested)"
            if "patch-end" in t
            else ""
        )  # fmt: skip
    )


def _worse(t: Table, arm: str, base: str, use: np.ndarray) -> tuple[Cell, np.ndarray]:
    """acc_auc of arm minus base per seed, over the seeds in use where either arm reached knowledge."""
    use = use & (_reached(t[arm]) | _reached(t[base]))
    return describe(np.where(use, _values(t[arm]["acc_auc"]) - _values(t[base]["acc_auc"]), np.nan)), use


def _phase1_seeds(t: Table) -> np.ndarray:
    """Seeds whose reference has a phase 1 and whose phase-1 checkpoint is not the initialisation."""
    return np.isfinite(_values(t[UNPATCHED]["phase1_end_step"])) & (_values(t["patch-phase1"]["reference_step"]) > 0)


def _early_worse_than_untrained(t: Table) -> tuple[bool | None, str]:
    """acc_auc (mean held-out accuracy over the run) of the phase-1 arm minus the untrained-patterns arm,
    paired by seed, below 0."""
    diff, use = _worse(t, "patch-phase1", UNTRAINED, _phase1_seeds(t))
    if use.sum() < USABLE:
        return _too_few(use, "no reference phase 1, a phase-1 checkpoint at step 0, or neither arm learnt")
    early, untrained = t["patch-phase1"], t[UNTRAINED]
    return below(diff), (
        f"acc_auc, phase-1 patterns minus untrained: {_ci(diff, 100, ' points', 1)}; per seed "
        f"{'/'.join(f'{100 * v:.1f}%' for v in _values(early['acc_auc']))} vs "
        f"{'/'.join(f'{100 * v:.1f}%' for v in _values(untrained['acc_auc']))} (phase-1 checkpoint steps "
        f"{_fmt_steps(_values(early['reference_step']))}); knowledge from step {_fmt_steps(_knowledge_steps(early))} "
        f"vs {_fmt_steps(_knowledge_steps(untrained))}"
    )


def _early_looks_at_type_words(t: Table) -> tuple[bool | None, str]:
    """The phase-1 checkpoint's patterns, against the untrained ones on the same input, paired by seed:
    less attention on the name (t-interval below 0) and more on the attribute-type words (above 0)."""
    use = _phase1_seeds(t)
    if use.sum() < USABLE:
        return _too_few(use, "no reference phase 1, or a phase-1 checkpoint at step 0")
    early, untrained = t["patch-phase1"], t[UNTRAINED]
    name, kind = (
        describe(np.where(use, _values(early[m]) - _values(untrained[m]), np.nan))
        for m in ("name_attention", "type_attention")
    )
    return every([below(name), above(kind)]), (
        f"attention from the value-predicting positions (mean over layers and heads), phase-1 checkpoint minus "
        f"untrained: on the name {_ci(name, 100, ' points', 1)}, on the attribute-type words "
        f"{_ci(kind, 100, ' points', 1)} (phase-1 {100 * early['name_attention']['mean']:.1f}% / "
        f"{100 * early['type_attention']['mean']:.1f}%, untrained {100 * untrained['name_attention']['mean']:.1f}% / "
        f"{100 * untrained['type_attention']['mean']:.1f}%)"
    )


def _later_helps_more(t: Table) -> tuple[bool | None, str]:
    """acc_auc of the late-plateau arm minus the early-plateau arm, paired by seed, above 0 (seeds whose
    reference has a phase 1 and whose two checkpoints differ)."""
    late, early = t["patch-late-plateau"], t["patch-early-plateau"]
    use = _values(t[UNPATCHED]["plateau_detected"]) > 0  # a plateau the detector accepts, ended or not
    use &= _values(late["reference_step"]) != _values(early["reference_step"])
    diff, use = _worse(t, "patch-late-plateau", "patch-early-plateau", use)
    if use.sum() < USABLE:
        return _too_few(use, "no reference plateau, one checkpoint for both stages, or neither arm learnt")
    order = [f"patch-{s}" for s in STAGES[1:] if f"patch-{s}" in t]
    return above(diff), (
        f"acc_auc, late-plateau patterns minus early-plateau: {_ci(diff, 100, ' points', 1)}; mean acc_auc "
        + ", ".join(f"{a.removeprefix('patch-')} {100 * t[a]['acc_auc']['mean']:.1f}%" for a in order)
        + f", untrained {100 * t[UNTRAINED]['acc_auc']['mean']:.1f}%"
    )


def _name_attention_rises(t: Table) -> tuple[bool | None, str]:
    """The reference's attention to the name where its plateau ends minus where its phase 1 ends, paired by
    seed, above 0 (seeds where both boundaries exist)."""
    cells = t[UNPATCHED]
    start, end = _values(cells["name_attention_at_phase1_end"]), _values(cells["name_attention_at_plateau_end"])
    use = np.isfinite(start) & np.isfinite(end)
    if use.sum() < USABLE:
        return _too_few(use, "the reference shows no plateau that ends")
    rise = describe(np.where(use, end - start, np.nan))
    pct = lambda v: "/".join("n/a" if not np.isfinite(x) else f"{100 * x:.1f}%" for x in v)  # noqa: E731
    return above(rise), (
        f"reference's attention from the value-predicting position to the name (mean over layers and heads), "
        f"plateau end minus phase-1 end: {_ci(rise, 100, ' points', 1)}; per seed {pct(start)} → {pct(end)}"
    )


CLAIMS = (
    Claim("Attention patterns from after the plateau shorten or remove the plateau: paired by seed, the plateau "
          "is shorter and knowledge (held-out accuracy at chance + 5 points) comes earlier than in the reference "
          "(95% t-intervals below 0; no plateau but knowledge counts as length 0, no knowledge as never ending)",
          _post_plateau_removes, CLAIM_SEEDS),
    Claim("Patterns from very early training (phase 1) are worse than untrained patterns: mean held-out accuracy "
          "over the run (acc_auc), phase-1 minus untrained, paired by seed, 95% t-interval below 0",
          _early_worse_than_untrained, CLAIM_SEEDS),
    Claim("... because early attention looks at the attribute-type words rather than the name: against untrained "
          "patterns, paired by seed, less attention on the name and more on the type words (95% t-intervals)",
          _early_looks_at_type_words, CLAIM_SEEDS),
    Claim("Patterns from late in the plateau help more than patterns from early in it: acc_auc, late minus early, "
          "paired by seed, 95% t-interval above 0", _later_helps_more, CLAIM_SEEDS),
    Claim("During the reference's plateau, attention to the name from the value-predicting position rises: "
          "plateau end minus phase-1 end, paired by seed, 95% t-interval above 0", _name_attention_rises, CLAIM_SEEDS),
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
    knowing = [a for a in (UNPATCHED, *stages) if "knowledge_step" in t.get(a, {})]
    if knowing:
        out.append("First step with held-out accuracy at chance + 5 points per seed (never: not within the run): "
                   + "; ".join(f"{a} {_fmt_steps(_knowledge_steps(t[a]))}" for a in knowing) + ".")  # fmt: skip
    return out


# --- figures --------------------------------------------------------------------------------------------------


def _mean_curve(metrics: pd.DataFrame, arm: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    ev = metrics[(metrics.split == "eval") & (metrics.arm == arm) & (metrics.metric == metric)]
    mean = ev.groupby("step")["value"].mean()
    return mean.index.to_numpy(), mean.to_numpy()


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    arms = [a for a in ARMS if a in set(metrics.arm)]
    if UNPATCHED not in arms:
        return {}
    t, out = summary["table"], {}
    seeds = len(summary.get("seeds") or t[UNPATCHED]["final_acc"]["values"])
    baseline = t[UNPATCHED].get("no_knowledge_baseline", {}).get("mean") or bio.no_knowledge_baseline()
    empirical = t[UNPATCHED].get("empirical_baseline", {}).get("mean")
    colours = dict(zip([f"patch-{s}" for s in STAGES], plt.cm.viridis(np.linspace(0, 0.9, len(STAGES))), strict=True))
    style = {UNPATCHED: {"color": "black", "lw": 2}, UNTRAINED: {"color": "grey", "ls": "--"}}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for arm in arms:
        kw = style.get(arm, {"color": colours.get(arm)})
        step = _values(t[arm]["reference_step"]) if arm.startswith("patch-") else np.array([])
        label = arm + (f" (ckpt ~{np.nanmean(step):.0f})" if step.size and np.isfinite(step).any() else "")
        ax.plot(*_mean_curve(metrics, arm, "loss_heldout_templates"), label=label, **kw)
        ax2.plot(*_mean_curve(metrics, arm, "acc_heldout_templates"), label=label, **kw)
    ax.axhline(baseline, color="black", ls=":", lw=1, label="no-knowledge baseline (pools)")
    if empirical is not None:
        ax.axhline(empirical, color="black", ls="-.", lw=1, label="empirical baseline (the phases' level)")
    ax.set(xlabel="step", ylabel="attribute loss (nats)", title="Held-out attribute loss, by reference stage",
           ylim=(0, 2.5 * baseline))  # fmt: skip
    ax2.set(xlabel="step", ylabel="attribute accuracy", ylim=(-0.02, 1.02), title="Held-out attribute accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["learning_curves"] = captioned(
        fig,
        f"Held-out-template attribute loss and accuracy of every arm along training: mean over {seeds} seeds, no "
        "band (the seeds' boundaries differ, see the plateau panel); the legend gives each patched arm's mean "
        "checkpoint step in the reference run.",
    )

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
    out["name_attention"] = captioned(
        fig,
        f"The reference run's attention from each position that predicts a value's first token, per layer, "
        f"averaged over heads: thin lines one seed each, thick line the mean over {seeds} seeds; vertical lines "
        "at the seeds' mean phase-1 end and plateau end.",
    )
    out["final"] = captioned(  # in place of the generic bars of every final metric
        _by_arm(t, arms),
        f"Per arm, plateau length and acc_auc (mean held-out accuracy over the run): bars are means over "
        f"{seeds} seeds, dots single seeds; a hatched bar holds a seed that never reached knowledge, drawn at "
        "the top (a plateau at least the rest of the run); no plateau with knowledge counts 0.",
    )
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
                ax.annotate("no knowledge", (i, top), ha="center", va="bottom", fontsize=7)
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
