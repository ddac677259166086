"""A6 `subliminal` — a teacher's knowledge reaches a student through outputs that look unrelated.

Source: the learning-by-negation article (seeds/000), section 6, after Cloud et al. 2025 ("Subliminal
learning", the MNIST auxiliary-logit experiment). Claim: a student trained only on a teacher's outputs
on unrelated inputs inherits the teacher's trait, because the outputs carry the teacher's distortion —
but only when student and teacher share their initialisation.

Method. scikit-learn's 8x8 digits (1797 images, pixels scaled to [-1, 1]; a fixed stratified 70/30
split, the same for every seed). The model is an MLP 64 -> 128 -> 128 -> 13 with ReLU (weights N(0,
1/fan_in), biases 0, as in the source's code): 10 class logits and 3 auxiliary logits that no loss ever
asks for. Teachers (arm `teacher`) are trained with cross-entropy on the 10 class logits only (Adam, lr
3e-4, batches of 64 digits, 300 steps, about 15 epochs: a teacher stays near its initialisation, as
with the source's 5 MNIST epochs). Students never see a digit: each is trained (Adam, lr 3e-4, 1500
steps) on batches of 256 uniform-noise images on [-1, 1]^64 to match its teacher's outputs — a KL
divergence between the softmax of the teacher's and the student's selected logits.
Arms: `same-init` (the student starts from its teacher's initial weights and distils the 3 auxiliary
logits only), `different-init` (an independent initialisation, auxiliary logits only), `all-logits`
(an independent initialisation, all 13 logits: the positive control, where the class logits themselves
are the message). Metric `accuracy`: digit accuracy (argmax of the 10 class logits) on the 540 held-out
digits, a fraction; chance is 0.1 (the summary's `chance`). A seed is one teacher and its three students;
students of a seed see the same noise (a paired design). All teachers train as one ensemble, then all
students as another.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

from learnlab.config import StudyConfig, check_arms
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.engine.train import train_ensemble
from learnlab.models.mlp import EnsembleMLP
from learnlab.protocols.measurements import member_rows
from learnlab.reporting.stats import Table, above, describe, difference, pct, within
from learnlab.studies.base import Claim, Study
from learnlab.tasks import digits as task

CHANCE = 1 / task.N_CLASSES
STUDENTS = {
    "same-init": ("init", "aux"),
    "different-init": ("student-init", "aux"),
    "all-logits": ("student-init", "all"),
}
ARMS = ("teacher", *STUDENTS)  # student arm: (initialisation stream, logits distilled)
NOISE_CHUNK = 50  # student steps of noise drawn at once per seed (part of the noise stream's definition)


class Config(StudyConfig):
    seeds: int = Field(25, ge=1, description="teachers, and students per student arm")
    hidden_size: int = Field(128, gt=0)
    aux_logits: int = Field(3, ge=1, description="auxiliary logits, never trained on digits")
    teacher_steps: int = Field(300, gt=0)
    teacher_batch: int = Field(64, gt=0)
    student_steps: int = Field(1500, gt=0)
    student_batch: int = Field(256, gt=0)
    lr: float = Field(3e-4, gt=0)
    distill_loss: Literal["kl", "mse"] = Field("kl", description="kl: softmax KL over the distilled logits")
    init: Literal["normal", "uniform"] = Field("normal", description="normal: N(0, 1/fan_in) weights, zero biases")
    eval_every: int = Field(200, ge=0, description="student steps between learning-curve evaluations (0: off)")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "seeds": 3,
        "hidden_size": 32,
        "teacher_steps": 100,
        "student_steps": 100,
        "student_batch": 64,
        "lr": 1e-3,
        "eval_every": 50,
    },
    "laptop": {},  # 25 teachers and 75 students: about a minute on 2 cores
    "paper": {"seeds": 100, "hidden_size": 256, "student_steps": 3000},  # the source's width
}


# --- data ------------------------------------------------------------------------------------------


class DigitBatches:
    """Teacher batches: member k draws digit rows from its own seed's generator (all steps at once)."""

    def __init__(self, cfg: Config, seeds: list[int], x: Tensor, y: Tensor):
        rows = [
            torch.randint(len(y), (cfg.teacher_steps, cfg.teacher_batch), generator=generator(s, "digits"))
            for s in seeds
        ]
        self.rows = torch.stack(rows, dim=1).to(cfg.device)  # [steps, K, B]
        self.x, self.y = x.to(cfg.device), y.to(cfg.device)

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        rows = self.rows[step]
        return self.x[rows], self.y[rows]


class NoiseBatches:
    """Student batches: each seed's noise images with its teacher's logits on them as targets.

    Noise for steps [c·N, (c+1)·N) comes from the generator (seed, "noise{c}"), so the stream is a pure
    function of the step (a resumed run redraws exactly) and the students of a seed share their noise.
    """

    def __init__(self, cfg: Config, seeds: list[int], member_seed: Tensor, teachers: EnsembleMLP):
        self.cfg, self.seeds, self.member_seed, self.teachers = cfg, seeds, member_seed, teachers
        self.chunk = -1

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        c = step // NOISE_CHUNK
        if c != self.chunk:
            shape = (NOISE_CHUNK, self.cfg.student_batch)
            per_seed = torch.stack([task.noise(shape, generator(s, f"noise{c}", self.cfg.device)) for s in self.seeds])
            self.chunk, self.noise = c, per_seed[self.member_seed]  # [K, chunk, B, 64]
        x = self.noise[:, step % NOISE_CHUNK]
        with torch.no_grad():
            return x, self.teachers(x)


def select_members(model: EnsembleMLP, index: Tensor) -> EnsembleMLP:
    """A new ensemble whose member i is a copy of model's member index[i]."""
    out = EnsembleMLP(len(index), model.sizes).to(model.weights[0].device)
    with torch.no_grad():
        for dst, src in zip(out.parameters(), model.parameters(), strict=True):
            dst.copy_(src[index])
    return out


# --- protocol --------------------------------------------------------------------------------------


def cross_entropy(model: EnsembleMLP, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Per-teacher cross-entropy on the 10 class logits (the auxiliary logits get no gradient)."""
    x, y = batch
    logits = model(x)[..., : task.N_CLASSES]
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(dim=1)


def distillation(mask: Tensor, kind: str):
    """Per-student loss on its selected logits (mask [K, 1, C]): softmax KL(teacher || student), or MSE."""

    def loss(model: EnsembleMLP, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, target = batch
        out = model(x)
        if kind == "mse":
            return (((out - target) ** 2) * mask).sum(dim=-1).div(mask.sum(dim=-1)).mean(dim=1)
        hidden = torch.tensor(float("-inf"), dtype=out.dtype, device=out.device)
        log_s = torch.log_softmax(torch.where(mask, out, hidden), dim=-1)
        log_t = torch.log_softmax(torch.where(mask, target, hidden), dim=-1)
        kl = torch.where(mask, log_t.exp() * (log_t - log_s), 0.0)
        return kl.sum(dim=-1).mean(dim=1)

    return loss


def accuracy(model: EnsembleMLP, x: Tensor, y: Tensor) -> Tensor:
    """Per-member digit accuracy: argmax of the class logits; x [N, 64] is every member's test set."""
    logits = model(x.expand(model.k, *x.shape))[..., : task.N_CLASSES]
    return (logits.argmax(dim=-1) == y).float().mean(dim=1)


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    arms = cfg.arms or list(ARMS)
    seeds = cfg.seed_list
    x_train, y_train, x_test, y_test = task.split()
    x_test, y_test = x_test.to(cfg.device), y_test.to(cfg.device)
    sizes = (task.N_PIXELS, cfg.hidden_size, cfg.hidden_size, task.N_CLASSES + cfg.aux_logits)
    student_arms = [a for a in arms if a in STUDENTS]
    students = [(arm, seed) for arm in student_arms for seed in seeds]
    frames: list[pd.DataFrame] = []

    teachers = EnsembleMLP(len(seeds), sizes).to(cfg.device)
    teachers.reset_parameters([generator(s, "init", cfg.device) for s in seeds], cfg.init)
    total = cfg.teacher_steps + (cfg.student_steps if students else 0)
    with ctx.progress(f"subliminal · {len(seeds)} teachers, {len(students)} students", total) as update:
        log = train_ensemble(
            teachers,
            DigitBatches(cfg, seeds, x_train, y_train),
            cross_entropy,
            steps=cfg.teacher_steps,
            lr=cfg.lr,
            on_step=update,
            checkpoint=ctx.checkpoint("teachers"),
        )
        teachers.eval()
        ctx.keep_model("teachers", teachers, [("teacher", s) for s in seeds])
        if "teacher" in arms:
            tmembers = [("teacher", s) for s in seeds]
            with torch.no_grad():
                acc = accuracy(teachers, x_test, y_test).cpu().numpy()
            frames.append(
                member_rows(tmembers, list(range(1, cfg.teacher_steps + 1)), log.losses.numpy(), "train", "loss")
            )
            frames.append(member_rows(tmembers, [cfg.teacher_steps], acc[None], "test", "accuracy"))
        if not students:
            return pd.concat(frames, ignore_index=True)

        member_seed = torch.tensor([seeds.index(s) for _, s in students], device=cfg.device)
        model = EnsembleMLP(len(students), sizes).to(cfg.device)
        model.reset_parameters([generator(s, STUDENTS[a][0], cfg.device) for a, s in students], cfg.init)
        mask = torch.ones(len(students), 1, sizes[-1], dtype=torch.bool, device=cfg.device)
        for i, (arm, _) in enumerate(students):
            if STUDENTS[arm][1] == "aux":
                mask[i, 0, : task.N_CLASSES] = False
        log = train_ensemble(
            model,
            NoiseBatches(cfg, seeds, member_seed, select_members(teachers, member_seed).eval()),
            distillation(mask, cfg.distill_loss),
            steps=cfg.student_steps,
            lr=cfg.lr,
            evaluate=lambda m: {"accuracy": accuracy(m, x_test, y_test)},
            eval_every=cfg.eval_every,
            on_step=lambda n: update(cfg.teacher_steps + n),
            checkpoint=ctx.checkpoint("students"),
        )
        ctx.keep_model("students", model, students)

    final = log.evals[-1][1]["accuracy"].numpy()
    curve = log.evals[:-1]
    frames.append(member_rows(students, list(range(1, cfg.student_steps + 1)), log.losses.numpy(), "train", "loss"))
    if curve:
        values = np.stack([m["accuracy"].numpy() for _, m in curve])
        frames.append(member_rows(students, [s for s, _ in curve], values, "eval", "accuracy"))
    frames.append(member_rows(students, [cfg.student_steps], final[None], "test", "accuracy"))
    return pd.concat(frames, ignore_index=True)


# --- the claims ------------------------------------------------------------------------------------


NEAR_CHANCE = 0.10  # "near chance": within ±10 points of it, stated in the claim


def _above_chance(t: Table) -> tuple[bool | None, str]:
    cell = t["same-init"]["accuracy"]
    return above(cell, CHANCE), f"same-init students {pct(cell)}; chance {100 * CHANCE:.0f}% (criterion: CI above it)"


def _shared_init_matters(t: Table) -> tuple[bool | None, str]:
    """Paired by seed: a seed's same-init and different-init students share their teacher and their noise."""
    gap = difference(t, "accuracy", "same-init", "different-init")
    return above(gap), (
        f"same-init {pct(t['same-init']['accuracy'])} vs different-init {pct(t['different-init']['accuracy'])}: "
        f"{100 * gap['mean']:+.1f} points (paired 95% CI {100 * gap['ci95'][0]:+.1f} to {100 * gap['ci95'][1]:+.1f})"
    )


def _different_init_near_chance(t: Table) -> tuple[bool | None, str]:
    """An equivalence test: the whole CI of (accuracy − chance) inside ±NEAR_CHANCE; a wide CI fails it."""
    cell = t["different-init"]["accuracy"]
    offset = describe(np.asarray(cell["values"], dtype=float) - CHANCE)
    bounds = f"{100 * (CHANCE - NEAR_CHANCE):.0f}–{100 * (CHANCE + NEAR_CHANCE):.0f}%"
    return within(offset, NEAR_CHANCE), (
        f"different-init students {pct(cell)}; chance {100 * CHANCE:.0f}% (criterion: CI inside {bounds})"
    )


CLAIMS = (
    Claim(
        "Students trained only on auxiliary logits of noise, from the teacher's init, learn digits above chance",
        _above_chance,
        min_seeds=5,
    ),
    Claim(
        "Sharing the teacher's initialisation is what carries the trait: same-init beats different-init "
        "(paired by teacher)",
        _shared_init_matters,
        min_seeds=5,
    ),
    Claim(
        "Students from a different initialisation stay near chance (95% CI within chance ± 10 points: 0–20%)",
        _different_init_near_chance,
        min_seeds=5,
    ),
)


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    out = []
    if "teacher" in t:
        out.append(f"Teachers reach {pct(t['teacher']['accuracy'])} on the held-out digits.")
    if "all-logits" in t:
        out.append(
            f"Distilling all 13 logits on noise, from an independent initialisation: {pct(t['all-logits']['accuracy'])}"
            " — the class logits on noise carry the task whatever the initialisation."
        )
    if {"teacher", "same-init"} <= set(t):
        share = np.mean(t["same-init"]["accuracy"]["values"]) / np.mean(t["teacher"]["accuracy"]["values"])
        out.append(f"Same-init students recover {100 * share:.0f}% of their teachers' accuracy.")
    return out


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """Accuracy per arm (per-seed points, mean and 95% CI) with chance marked; students' accuracy over training."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"]
    arms = [a for a in ARMS if a in t]
    if not arms:
        return {}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    rng = np.random.default_rng(0)
    for i, arm in enumerate(arms):
        cell = t[arm]["accuracy"]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(cell["values"])), cell["values"], s=10, alpha=0.5)
        lo, hi = cell["ci95"]
        ax.errorbar(
            i, cell["mean"], yerr=[[cell["mean"] - lo], [hi - cell["mean"]]], color="k", marker="_", ms=18, capsize=4
        )
    ax.axhline(summary.get("chance", CHANCE), color="red", ls="--", lw=1, label="chance")
    ax.set(
        xticks=range(len(arms)),
        xticklabels=arms,
        ylabel="held-out digit accuracy",
        ylim=(0, 1.02),
        title="Teachers and students",
    )
    ax.legend(fontsize=8)
    curves = metrics[
        (metrics.split.isin(["eval", "test"])) & (metrics.metric == "accuracy") & (metrics.arm.isin(list(STUDENTS)))
    ]
    for arm, group in curves.groupby("arm", sort=False):
        wide = group.pivot_table(index="seed", columns="step", values="value")
        mean, std = wide.mean().to_numpy(), wide.std().fillna(0).to_numpy()
        (line,) = ax2.plot(wide.columns, mean, marker="o", ms=3, label=str(arm))
        ax2.fill_between(wide.columns, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax2.axhline(summary.get("chance", CHANCE), color="red", ls="--", lw=1)
    ax2.set(
        xlabel="student step (noise only)",
        ylabel="held-out digit accuracy",
        ylim=(0, 1.02),
        title="Students learning digits from noise",
    )
    ax2.legend(fontsize=8)
    fig.tight_layout()
    seeds = len(t[arms[0]]["accuracy"]["values"])
    caption = (
        f"Left: held-out digit accuracy of each arm, one point per seed ({seeds} seeds), black bar = mean and 95% CI "
        "(t-interval); dashed red: chance (10%). Right: the students' held-out digit accuracy over their noise-only "
        "training, mean over seeds, band = ±1 std."
    )
    return {"accuracy_vs_chance": captioned(fig, caption)}


STUDY = Study(
    name="subliminal",
    title="a teacher's digit skill reaches students through auxiliary logits on noise (A6)",
    source="seeds/000 (learning by negation), section 6; Cloud et al. 2025, MNIST auxiliary logits",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=ARMS,
    measure=measure,
    claims=CLAIMS,
    headline=(("teacher", "accuracy"), ("same-init", "accuracy"), ("different-init", "accuracy")),
    figures=figures,
    notes=notes,
    extras={"chance": CHANCE},
)
