"""E3 `mixture-of-experts` — at equal active parameters, do more experts store more facts?

Source: seeds/004 ("mixture-of-experts splits the work between specialised modules"); anchor: Jelassi
et al. (2024), "Mixture of Parrots: Experts improve memorization more than reasoning": at a fixed number
of active parameters, adding experts raises memorisation (the number of facts a model stores) while
reasoning saturates; an MoE's memorisation approaches that of a dense model of its total size.

Method. The knowledge-acquisition protocol (`biography_lm`, C2) with the transformer's MLP swapped
(`biography_lm.train(model_factory=...)`): arm `moe-<E>` replaces every MLP with a mixture of E experts of
the dense MLP's width `d_mlp` behind a top-k router (`models.moe.MoETransformer`; Switch routing, the
Switch load-balancing loss α·E·Σ fᵢ·Pᵢ with α = `balance_alpha` added to the training loss); arm
`dense-active` is the dense MLP of width top_k·d_mlp (the MoE's active parameters, router aside); arm
`dense-total` the dense MLP of width max(E)·d_mlp (the largest MoE's total parameters). Every arm trains
one transformer per seed (seeds train together as one ensemble; seed s draws the same biographies in
every arm) on each N of a small grid (`n_values`) for the same budget of steps, under the same cosine
schedule. Facts stored at that budget: attribute accuracy over every seen individual in held-out
templates (a value counts only if all its tokens are greedy-correct; `biography_lm.score_every_seen`)
times 6·N (`facts_n<N>`); an arm's memorisation capacity (`facts_stored`) is the most facts it stored
over the grid, per seed, and `n_saturated` the largest N whose accuracy is still at least `saturated`
(NaN if none). At N = `focus_n` the trained models are then fine-tuned on `ft_new` new individuals with
C8's protocol (`protocols.fine_tuning`: constant rate `ft_lr`, `ft_exposures` biographies per new
individual, the load-balancing loss kept) and forgetting is old accuracy before fine-tuning minus after
(`forgetting`) and minus its minimum within the first 100 steps (`forgetting_100`). Expert load at
`focus_n`: the fraction of routed assignments per expert (top-k of the router's logits), per layer, over
the real tokens of fixed training-template biographies (padding left out), and its imbalance
`load_max_l<l>` = E · the busiest expert's fraction (1: balanced; E: one expert takes everything).
Claims are t-intervals over seeds (5 at least): the per-seed least-squares slope of `facts_stored` on
log2 E across the MoE arms (arm `moe-vs-dense`, `facts_slope_log2e`) lies above 0, and the paired
difference of the largest MoE and `dense-active` (`facts_moe_minus_dense_active`) lies above 0. That a
one-expert MoE is the dense MLP is a test (`tests/test_mixture_of_experts.py`), not a claim; the report
shows `moe-1` − `dense-active` (different initial draws, the same distribution) as a sanity check.
Each (arm, N) is one job (`--set backend=ray` runs them as Ray tasks).
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from learnlab.config import StudyConfig, check_arms, distinct_sorted
from learnlab.engine.context import RunContext
from learnlab.engine.jobs import GridConfig, Job, run_jobs
from learnlab.models.moe import SWITCH_ALPHA, MoETransformer
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import biography_lm as bl
from learnlab.protocols import fine_tuning as ft
from learnlab.protocols.measurements import log_rows, member_rows
from learnlab.reporting.stats import Cell, Table, above, describe
from learnlab.studies.base import Claim, Study

DENSE_ACTIVE, DENSE_TOTAL, DERIVED = "dense-active", "dense-total", "moe-vs-dense"
CLAIM_SEEDS = 5
LEARNT = 0.05  # the claims need some arm's accuracy this far above chance (else nothing was stored to compare)
LOAD_SEQUENCES = 64  # training-template biographies whose real tokens the expert load is counted over


def moe_arm(experts: int) -> str:
    return f"moe-{experts}"


class Knobs(StudyConfig):
    """The study's own knobs that every job shares: routing, saturation and C8's fine-tuning."""

    top_k: int = Field(1, ge=1, description="experts each token is routed to (at most the fewest experts)")
    balance_alpha: float = Field(SWITCH_ALPHA, ge=0, description="weight α of the Switch load-balancing loss")
    saturated: float = Field(0.9, gt=0, le=1, description="accuracy at which an N counts as stored (n_saturated)")
    ft_new: int = Field(50, gt=0, description="new individuals of the fine-tuning (the first of the unseen)")
    ft_exposures: int = Field(64, gt=0, description="biographies per new individual in the fine-tuning")
    ft_lr: float = Field(3e-4, gt=0, description="fine-tuning learning rate (constant)")
    ft_eval_early: int = Field(10, gt=0, description="fine-tuning evaluations every this many steps up to 100 ...")
    ft_eval_every: int = Field(50, gt=0, description="... and every this many after")

    @model_validator(mode="after")
    def _fine_tuning(self) -> Knobs:
        if ft.EARLY % self.ft_eval_early:
            raise ValueError(
                f"ft_eval_early ({self.ft_eval_early}) must divide {ft.EARLY}: step {ft.EARLY} is measured"
            )
        if self.ft_new > getattr(self, "n_unseen", self.ft_new):
            raise ValueError(f"ft_new ({self.ft_new}) exceeds n_unseen ({getattr(self, 'n_unseen', 0)})")
        return self


class ArmConfig(Knobs, bl.BiographyConfig):
    """One (arm, N) training and, at the focus N, its fine-tuning: a job of the grid."""

    arm: str = Field(DENSE_ACTIVE, description="the arm this job trains")
    n_experts: int = Field(0, ge=0, description="experts per MLP (0: the dense MLP)")
    forget: bool = Field(False, description="fine-tune the trained models on new individuals (the focus N)")

    @model_validator(mode="after")
    def _routing(self) -> ArmConfig:
        if self.n_experts and self.top_k > self.n_experts:
            raise ValueError(f"top_k ({self.top_k}) exceeds n_experts ({self.n_experts})")
        return self

    @property
    def ft_steps(self) -> int:
        return math.ceil(self.ft_exposures * self.ft_new / self.batch_size)


class Config(GridConfig, Knobs, bl.BiographyConfig):
    n_values: list[int] = Field([100, 200, 400], min_length=1, description="numbers of individuals (the N grid)")
    experts: list[int] = Field([1, 4, 8], min_length=1, description="experts of the moe-<E> arms")
    focus_n: int = Field(0, ge=0, description="N of the fine-tuning and the expert load (0: the smallest N)")
    forgetting: bool = Field(True, description="fine-tune at focus_n and measure forgetting")
    seeds: int = Field(5, ge=1)

    @field_validator("n_values")
    @classmethod
    def _distinct_n(cls, values: list[int]) -> list[int]:
        return distinct_sorted(values, "n_values must be distinct positive numbers of individuals")

    @field_validator("experts")
    @classmethod
    def _distinct_experts(cls, values: list[int]) -> list[int]:
        return distinct_sorted(values, f"experts must be distinct positive numbers of experts, got {values}")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.top_k > min(self.experts):
            raise ValueError(f"top_k ({self.top_k}) exceeds the fewest experts ({min(self.experts)})")
        if self.focus_n and self.focus_n not in self.n_values:
            raise ValueError(f"focus_n ({self.focus_n}) must be one of n_values {self.n_values}")
        check_arms(self.arms, self.all_arms)
        return self

    @property
    def all_arms(self) -> list[str]:
        return [DENSE_ACTIVE, DENSE_TOTAL, *(moe_arm(e) for e in self.experts)]

    @property
    def populations(self) -> list[int]:
        return self.n_values

    @property
    def focus(self) -> int:
        return self.focus_n or self.n_values[0]

    def shape(self, arm: str) -> dict[str, int]:
        """The arm's MLP: experts (0: dense) and each one's width."""
        if arm == DENSE_ACTIVE:
            return {"n_experts": 0, "d_mlp": self.top_k * self.d_mlp}
        if arm == DENSE_TOTAL:
            return {"n_experts": 0, "d_mlp": max(self.experts) * self.d_mlp}
        return {"n_experts": int(arm.removeprefix("moe-")), "d_mlp": self.d_mlp}


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        **bl.SMOKE,
        "d_mlp": 16,
        "steps": 20,
        "n_values": [10, 20],
        "experts": [1, 4],
        "n_unseen": 8,
        "ft_new": 4,
        "ft_exposures": 10,
        "ft_eval_early": 5,
        "ft_eval_every": 10,
    },  # fmt: skip
    # The laptop world (pools of 40), N = 50, 2 layers x 32, experts and the dense-active MLP 4 wide (dense-total 32),
    # 400 steps of 16 biographies (128 per individual) at lr 0.02, experts 1 and 8 (4 arms: moe-4 and a second N would
    # cost ~25% each), 5 seeds. Measured with this preset (5 seeds; chance 7%): accuracy over every seen individual
    # dense-active 67%, dense-total 64%, moe-1 71%, moe-8 66% (facts 202/192/212/197); forgetting 0.09/0.11/0.09/0.11;
    # moe-8 load imbalance 1.13 (layer 0), 1.21 (layer 1). The claims' numbers (slope -5 facts per doubling of E, CI -21
    # to +10; moe-8 minus dense-active -5, CI -54 to +43) are not judged: the MLP is not the bottleneck here
    # (dense-total stores no more than dense-active), so both claims are undetermined by their manipulation check. At
    # vocab 2048, 97 of 100 individuals have a name token of their own, whose embedding can hold their facts: a 4-wide
    # and a 32-wide MLP store the same (2 seeds, N = 100, 800 steps: 82.6% vs 82.9%; this preset: 67% vs 64%); at vocab
    # 512 (11 of 100 with a token of their own) nothing was learnt in 800 steps (3-7%). Capacity needs the paper preset.
    # lr 0.01 learnt slower (N = 50, 400 steps: 55%), 0.03-0.04 worse; 300 steps left N = 50 at 53% and N = 100 at 19%.
    # Cost, measured alone on 2 cores: 388 s (577 CPU-s on a shared CPU, 260 of them system time: page faults of
    # the 2048-token logits).
    "laptop": {
        "seeds": 5,
        **bl.LAPTOP_POOLS,
        "d_model": 32,
        "n_heads": 2,
        "d_mlp": 4,
        "lr": 0.02,
        "batch_size": 16,
        "n_values": [50],
        "steps": 400,
        "experts": [1, 8],
        "eval_every": 200,
        "eval_individuals": 50,
        "n_unseen": 50,
        "ft_new": 25,
        "ft_exposures": 32,
        "ft_eval_early": 25,
        "ft_eval_every": 25,
    },  # fmt: skip
    "paper": {
        **bl.PAPER,
        "seeds": 5,
        "n_values": [16_000, 32_000, 64_000],
        "n_unseen": 4000,
        "ft_new": 1000,
        "ft_exposures": 128,
        "ft_lr": 3e-5,
        "ft_eval_every": 100,
    },  # fmt: skip
}


# --- one (arm, N): train, count the facts, and at the focus N measure the load and fine-tune ----------------


def factory(cfg: ArmConfig) -> bl.ModelFactory | None:
    if not cfg.n_experts:
        return None
    return functools.partial(MoETransformer, n_experts=cfg.n_experts, top_k=cfg.top_k, alpha=cfg.balance_alpha)


def arm_job(cfg: ArmConfig, ctx: RunContext) -> pd.DataFrame:
    """Train one transformer per seed on N individuals; facts stored; at the focus N, load and forgetting."""
    n, seeds = cfg.n_individuals, cfg.seed_list
    members = [(cfg.arm, s) for s in seeds]
    sets = bl.evaluation_sets(cfg, bl.world_of(cfg))
    model, log = bl.train(cfg, ctx, label=f"{cfg.arm} · N={n}", arm=cfg.arm, model_factory=factory(cfg),
                          evaluate=bl.curve_metrics(sets, cfg, ("loss", "acc")))  # fmt: skip
    frames = [_suffixed(f, n) for f in log_rows(members, log)]
    model.eval()
    _, scores = bl.score_every_seen(model, cfg)
    acc = scores.correct.nanmean(dim=(1, 2)).cpu().numpy()
    last = len(log.losses)
    chance = np.full(len(seeds), bl.baselines(cfg).chance)  # greedy guessing of the commonest values
    finals = {f"acc_n{n}": acc, f"facts_n{n}": acc * n * 6, f"chance_n{n}": chance}
    if cfg.forget:
        loads = expert_load(model, sets["train_templates"].tokens, bl.world_of(cfg).pad_id, cfg)
        for layer, f in enumerate(loads):  # [K, E]
            finals[f"load_max_l{layer}"] = f.shape[1] * f.max(axis=1)
            frames.append(member_rows(members, list(range(f.shape[1])), f.T, "load", f"load_l{layer}"))
    frames += [member_rows(members, [last], v[None], "test", name) for name, v in finals.items()]
    if cfg.forget:
        frames.append(forgetting_rows(model, cfg, ctx))
    return pd.concat(frames, ignore_index=True)


def _suffixed(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Curves of one N: every N of an arm has its own (`loss_n<N>`, `acc_heldout_templates_n<N>`, …)."""
    return frame.assign(metric=frame.metric + f"_n{n}")


@torch.no_grad()
def expert_load(model: EnsembleTransformer, tokens: torch.Tensor, pad_id: int, cfg: ArmConfig) -> list[np.ndarray]:
    """Per MoE layer, the fraction of routed assignments (top_k of the router's logits) per expert [K, E],
    over the real tokens of the first LOAD_SEQUENCES biographies; [] for a dense model."""
    tokens = tokens[:LOAD_SEQUENCES].to(cfg.device)
    names = [f"blocks.{layer}.mlp.hook_router" for layer in range(model.n_layers)]
    if not cfg.n_experts:
        return []
    logits: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, name: str) -> None:
        logits[name] = x.detach()

    model(tokens.expand(model.n_models, -1, -1), hooks=dict.fromkeys(names, keep))
    real = (tokens != pad_id).float()  # [B, T]
    out = []
    for name in names:
        chosen = logits[name].topk(cfg.top_k, dim=-1).indices  # [K, B, T, top]
        counts = torch.nn.functional.one_hot(chosen, cfg.n_experts).float().sum(dim=3)  # [K, B, T, E]
        per = (counts * real[None, :, :, None]).sum(dim=(1, 2))  # [K, E]
        out.append((per / per.sum(dim=-1, keepdim=True)).cpu().numpy())
    return out


def forgetting_rows(pre: EnsembleTransformer, cfg: ArmConfig, ctx: RunContext) -> pd.DataFrame:
    """C8's fine-tuning of a copy of the trained models on `ft_new` new individuals only."""
    model = copy.deepcopy(pre)
    enc = bl.world_of(cfg)
    curve = ft.fine_tune(model, cfg, ctx, new=ft.new_individuals(enc, cfg.ft_new), old_share=0.0,
                         steps=cfg.ft_steps, lr=cfg.ft_lr, early_every=cfg.ft_eval_early,
                         late_every=cfg.ft_eval_every, label=f"{cfg.arm} · fine-tuning")  # fmt: skip
    old = np.stack([m["acc_old"].numpy() for _, m in curve])  # [E, K]
    early = np.array([s for s, _ in curve]) <= ft.EARLY
    extra = {"forgetting": old[0] - old[-1], "forgetting_100": old[0] - old[early].min(0)}
    return ft.curve_rows(cfg.arm, cfg.seed_list, curve, extra)


# --- the grid --------------------------------------------------------------------------------------------


def job_config(cfg: Config, arm: str, n: int) -> ArmConfig:
    shared = {key: getattr(cfg, key) for key in ArmConfig.model_fields if key in Config.model_fields}
    shared = {key: v for key, v in shared.items() if key not in ("arms", "study", "preset")}
    forget = cfg.forgetting and n == cfg.focus
    return ArmConfig(**{**shared, **cfg.shape(arm), "arm": arm, "n_individuals": n, "forget": forget})


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """One job per (arm, N); then per arm and seed, the most facts stored over the grid and the largest N
    whose accuracy is at least `saturated`."""
    arms = cfg.arms or cfg.all_arms
    jobs = [Job(f"{a}-N-{n}", arm_job, job_config(cfg, a, n)) for a in arms for n in cfg.n_values]
    frame = pd.concat(run_jobs(jobs, cfg, ctx, "mixture-of-experts").values(), ignore_index=True)
    return pd.concat([frame, capacity_rows(frame, cfg)], ignore_index=True)


def capacity_rows(frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    test = frame[frame.split == "test"]
    rows = []
    for (arm, seed), g in test.groupby(["arm", "seed"], sort=False):
        by = dict(zip(g.metric, g.value, strict=True))
        facts = [by[f"facts_n{n}"] for n in cfg.n_values if f"facts_n{n}" in by]
        stored = [n for n in cfg.n_values if by.get(f"acc_n{n}", -1.0) >= cfg.saturated]
        step = int(g.step.max())
        learnt = max(by[f"acc_n{n}"] - by[f"chance_n{n}"] for n in cfg.n_values if f"acc_n{n}" in by)
        rows += [(arm, seed, step, "test", "facts_stored", max(facts)),
                 (arm, seed, step, "test", "n_saturated", max(stored) if stored else math.nan),
                 (arm, seed, step, "test", "acc_above_chance", learnt)]  # fmt: skip
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "split", "metric", "value"])


# --- cells across arms, claims --------------------------------------------------------------------------


def _experts(t: Table) -> list[tuple[int, str]]:
    return sorted((int(a.removeprefix("moe-")), a) for a in t if a.startswith("moe-") and a != DERIVED)


def _values(cell: Cell) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in cell["values"]], dtype=float)


def comparisons(t: Table) -> dict[str, Cell]:
    """Per seed: the slope of facts stored on log2 E over the MoE arms; the largest MoE and moe-1 minus
    dense-active (paired by seed: the same biographies)."""
    moe = [(e, a) for e, a in _experts(t) if "facts_stored" in t[a]]
    out: dict[str, Cell] = {}
    if len(moe) >= 2:
        x = np.log2([e for e, _ in moe])
        y = np.stack([_values(t[a]["facts_stored"]) for _, a in moe])  # [arms, seeds]
        xc = x - x.mean()
        out["facts_slope_log2e"] = describe((xc[:, None] * (y - y.mean(0))).sum(0) / (xc**2).sum())
    if "facts_stored" in t.get(DENSE_ACTIVE, {}) and "facts_stored" in t.get(DENSE_TOTAL, {}):
        total = _values(t[DENSE_TOTAL]["facts_stored"]) - _values(t[DENSE_ACTIVE]["facts_stored"])
        out["facts_dense_total_minus_active"] = describe(total)
    if moe and "facts_stored" in t.get(DENSE_ACTIVE, {}):
        dense = _values(t[DENSE_ACTIVE]["facts_stored"])
        out["facts_moe_minus_dense_active"] = describe(_values(t[moe[-1][1]]["facts_stored"]) - dense)
        if moe[0][0] == 1:
            out["facts_moe1_minus_dense_active"] = describe(_values(t[moe[0][1]]["facts_stored"]) - dense)
    return out


def derived(metrics: pd.DataFrame, cfg: Config) -> Table:
    from learnlab.reporting.stats import table_from_metrics

    cells = comparisons(table_from_metrics(metrics[metrics.split == "test"]))
    return {DERIVED: cells} if cells else {}


def _ci(cell: Cell) -> str:
    lo, hi = cell["ci95"]
    return f"{cell['mean']:+.1f} facts (95% CI {lo:+.1f} to {hi:+.1f}, {len(cell['values'])} seeds)"


def _stored(t: Table) -> str:
    return ", ".join(f"{a} {t[a]['facts_stored']['mean']:.0f}" for a in t if "facts_stored" in t[a])


def _nothing_learnt(t: Table) -> str | None:
    """Why the arms cannot be compared, if they cannot: no arm's accuracy rose LEARNT points above chance at
    any N (at this budget every arm stores ~nothing, and equal nothings say nothing about capacity)."""
    best = max((c["acc_above_chance"]["mean"] for c in t.values() if "acc_above_chance" in c), default=None)
    if best is not None and best < LEARNT:
        return (f"no arm learnt facts: the best mean accuracy is {100 * best:+.1f} points from chance "
                f"({100 * LEARNT:.0f} needed); train longer")  # fmt: skip
    return None


def _capacity_not_binding(t: Table) -> str | None:
    """Why the arms say nothing about capacity, if they do not: the manipulation check — the dense MLP with
    the largest MoE's total parameters stores more facts than the one with its active parameters (paired CI
    above 0) — fails or is missing. Where more MLP parameters store no more facts, the facts sit elsewhere
    (e.g. in name-token embeddings) and experts, which add MLP parameters, cannot show a capacity gain."""
    cell = t.get(DERIVED, {}).get("facts_dense_total_minus_active") or comparisons(t).get(
        "facts_dense_total_minus_active"
    )
    if cell is None:
        return f"no {DENSE_TOTAL} and {DENSE_ACTIVE} pair to check that the MLP limits the facts stored"
    if not above(cell):
        return (f"the MLP does not limit the facts stored at this scale: {DENSE_TOTAL} minus {DENSE_ACTIVE} "
                f"{_ci(cell)}, needed above 0; facts stored (means): {_stored(t)}")  # fmt: skip
    return None


def _rises_with_experts(t: Table) -> tuple[bool | None, str]:
    cell = t.get(DERIVED, {}).get("facts_slope_log2e") or comparisons(t).get("facts_slope_log2e")
    if cell is None:
        return None, "fewer than two moe-<E> arms with facts stored"
    if why := _nothing_learnt(t) or _capacity_not_binding(t):
        return None, why
    return above(cell), f"facts stored per doubling of E: {_ci(cell)}; facts stored (means): {_stored(t)}"


def _moe_beats_dense(t: Table) -> tuple[bool | None, str]:
    cell = t.get(DERIVED, {}).get("facts_moe_minus_dense_active") or comparisons(t).get("facts_moe_minus_dense_active")
    if cell is None:
        return None, f"no moe-<E> arm beside {DENSE_ACTIVE}"
    if why := _nothing_learnt(t) or _capacity_not_binding(t):
        return None, why
    return above(cell), f"largest MoE minus {DENSE_ACTIVE}: {_ci(cell)}; facts stored (means): {_stored(t)}"


CLAIMS = (
    Claim(
        "Memorisation capacity rises with the number of experts at equal active parameters (Jelassi et al. "
        "2024): the per-seed slope of facts stored on log2 E across the moe-<E> arms has a 95% t-interval "
        f"above 0 (judged where the MLP limits capacity: {DENSE_TOTAL} stores more than {DENSE_ACTIVE})",
        _rises_with_experts,
        min_seeds=CLAIM_SEEDS,
    ),
    Claim(
        f"At equal active parameters, the largest mixture of experts stores more facts than the dense MLP: "
        f"the paired difference with {DENSE_ACTIVE} has a 95% t-interval above 0 (judged where {DENSE_TOTAL} "
        f"stores more than {DENSE_ACTIVE})",
        _moe_beats_dense,
        min_seeds=CLAIM_SEEDS,
    ),
)


# --- the report ------------------------------------------------------------------------------------------


def _mean(t: Table, arm: str, metric: str, fmt: str = ".2f") -> str:
    m = t.get(arm, {}).get(metric, {}).get("mean")
    return "n/a" if m is None else f"{m:{fmt}}"


def notes(summary: dict[str, Any]) -> list[str]:
    t, cfg = summary["table"], summary["config"]
    arms = [a for a in t if a != DERIVED]
    out = [
        f"Facts stored at {cfg['steps']} steps (means over seeds, 6 attributes per individual): "
        + "; ".join(
            f"{a}: " + ", ".join(f"N={n} {_mean(t, a, f'facts_n{n}', '.0f')}" for n in cfg["n_values"]) for a in arms
        )
        + ".",
        "Largest N with accuracy ≥ "
        f"{cfg['saturated']:.0%}: " + ", ".join(f"{a} {_mean(t, a, 'n_saturated', '.0f')}" for a in arms) + ".",
    ]
    focus = cfg["focus_n"] or cfg["n_values"][0]
    forgot = [
        f"{a} {_mean(t, a, 'forgetting')} / {_mean(t, a, 'forgetting_100')}" for a in arms if "forgetting" in t[a]
    ]
    if forgot:
        out.append(
            f"Forgetting after fine-tuning on {cfg['ft_new']} new individuals (N = {focus}; old accuracy before "
            "minus after / minus its minimum within 100 steps): " + "; ".join(forgot) + "."
        )
    loads = [
        f"{a} {m.removeprefix('load_max_')} {_mean(t, a, m)}" for a in arms for m in t[a] if m.startswith("load_max_l")
    ]
    if loads:
        out.append("Expert-load imbalance, E × the busiest expert's share (1: balanced): " + ", ".join(loads) + ".")
    sanity = t.get(DERIVED, {}).get("facts_moe1_minus_dense_active")
    if sanity is not None:
        out.append(
            f"Sanity check, not a finding: moe-1 minus {DENSE_ACTIVE} {_ci(sanity)} (one expert is the dense MLP; "
            "the two differ only in their initial draws)."
        )
    out.append(
        "Published anchor (Jelassi et al. 2024, no number comparable to ours): at fixed active parameters, more "
        "experts store more facts, approaching a dense model of the same total size, while reasoning saturates."
    )
    return out


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    out: dict[str, Any] = {}
    ns = summary["config"]["n_values"]
    test = metrics[metrics.split == "test"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    seeds = 0
    for arm, g in test.groupby("arm", sort=False):
        per_n = [g[g.metric == f"acc_n{n}"]["value"].to_numpy() for n in ns]
        if not all(v.size for v in per_n):
            continue
        seeds = max(seeds, *(v.size for v in per_n))
        mean, std = np.array([v.mean() for v in per_n]), np.array([v.std(ddof=1) if v.size > 1 else 0 for v in per_n])
        ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=str(arm))
    ax.set(xscale="log", xlabel="individuals N", ylabel="attribute accuracy (every seen individual)",
           title="Facts stored against N", ylim=(0, 1))  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["accuracy_vs_n"] = captioned(
        fig,
        f"Attribute accuracy over every seen individual (held-out templates) after the same budget of steps, "
        f"against N, per arm; mean over up to {seeds} seeds, bars ±1 std.",
    )
    load = metrics[metrics.split == "load"]
    arms = [a for a in load.arm.unique() if load[load.arm == a].step.nunique() > 1]
    if arms:
        layers = sorted(load.metric.unique())
        fig, axes = plt.subplots(len(layers), len(arms), figsize=(2.6 * len(arms), 2.2 * len(layers)), squeeze=False)
        for j, arm in enumerate(arms):
            for i, layer in enumerate(layers):
                g = load[(load.arm == arm) & (load.metric == layer)]
                shares = np.stack([np.sort(s.sort_values("step").value.to_numpy())[::-1] for _, s in g.groupby("seed")])
                e = shares.shape[1]
                axes[i][j].bar(range(e), shares.mean(0), yerr=shares.std(0), capsize=2)
                axes[i][j].axhline(1 / e, color="grey", ls="--", lw=1)
                axes[i][j].set(title=f"{arm} · {layer.removeprefix('load_')}", xlabel="expert (busiest first)",
                               ylabel="share", ylim=(0, 1))  # fmt: skip
        fig.tight_layout()
        out["expert_load"] = captioned(
            fig,
            "Share of routed tokens per expert, per layer and MoE arm, at the focus N after training; experts "
            "sorted busiest first within each seed, mean over seeds, bars ±1 std; dashed: a balanced share 1/E.",
        )
    return out


STUDY = Study(
    name="mixture-of-experts",
    title="more experts, more facts at equal active parameters? (E3)",
    source="seeds/004; Jelassi et al. 2024, Mixture of Parrots",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),  # from the config: dense-active, dense-total and moe-<E> for each E of `experts`
    measure=measure,
    claims=CLAIMS,
    headline=((DERIVED, "facts_slope_log2e"), ("moe-8", "facts_stored"), (DENSE_ACTIVE, "facts_stored")),
    figures=figures,
    notes=notes,
    derived=derived,
    plain_metrics=(
        "facts_stored",
        "n_saturated",
        "facts_slope_log2e",
        "facts_moe_minus_dense_active",
        "facts_moe1_minus_dense_active",
        "load_max_l0",
        "load_max_l1",
    ),  # fmt: skip
    point_metrics=("acc_above_chance",),
)
