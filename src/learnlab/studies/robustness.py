"""A4 `robustness` — do boundaries learned from real data survive quantization and dropout?

Source: the learning-by-negation article (seeds/000), section 2, items 6–7. Claim: boundaries learned from
rich real data survive weight quantization (INT8, INT4) while boundaries learned from synthetic data
break; dropout tests how redundantly the learned constraints are stored. The article gives no numbers.

Method. The models are A1's and A2's, trained by their protocol (`sortedness_lstm`) with the same seeds, data and
step counts: `a1-baseline` (random negatives: a shortcut), `a1-concept` (one-swap negatives: the rule),
and A2's hard-label chain at `a2-gen0` (trained on real labels; by construction the same model as
`a1-concept`, which the run confirms) and `a2-gen2` (two generations of training on the previous
generation's hard labels: the synthetic-data model). Every weight matrix of each model (embedding,
W_ih, W_hh, the output weights; biases stay float) is then (a) quantized, symmetric round-to-nearest with
scale max|w| / (2^(b-1) - 1), at b = 8, 6, 4, 3 bits, per tensor (`tensor`) or per channel (`channel`:
one scale per token row of the embedding, per output unit of W_ih and W_hh, and one for the single
output unit of the head); (b) damaged by DropConnect at p = 0.1, 0.2, 0.3, 0.5: each weight dropped with
probability p, the rest scaled by 1/(1-p), one mask for the whole test set, averaged over several masks.
DropConnect rather than dropout on activations: the article's question is whether the constraints
stored in the weights are redundant, and DropConnect, like quantization, perturbs only the weights —
it needs nothing from the LSTM's fused kernel and applies unchanged to any model. Masks come from each
seed's own generators, nested across p (a weight dropped at 0.1 is dropped at 0.3), and shared by the
arms of a seed, so arms are compared on the same damage. Tested on A1's `hard` and `easy` sets (the
same 500 sorted against 500 one-swap or 500 random sequences, L=20). Metrics: `hard_clean`,
`hard_int{b}_{tensor|channel}`, `hard_dropout{100p}` (accuracy; DropConnect's is the mean over the
masks) and `drop_hard_...` = that accuracy minus `hard_clean` (fraction points; negative = accuracy
lost), and the same for `easy`. Judged per channel at 4 bits (the usual INT4 scheme; per tensor is
reported beside) and at p = 0.3: the real-data boundary (`a1-concept`) survives if the 95% CI of its
hard-accuracy change at INT8 and at INT4 lies inside ±2 points (an equivalence test); the synthetic one
breaks if Gen2's change at INT4 has its 95% CI below -2 points and the per-seed paired difference of
changes, Gen2 minus Gen0 (the same chain, test set and damage), has a 95% CI below zero; DropConnect
exposes it if that paired difference at p = 0.3 is below zero. Gen2 starts nearer chance and has less
to lose, so the evidence also gives each drop as a share of the clean margin above chance (50%).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator
from torch import Tensor

from learnlab.config import check_arms
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.interventions import dropconnect_copy, quantized_copy
from learnlab.models.lstm import EnsembleLSTMClassifier, select_members
from learnlab.protocols import sortedness_lstm as sl
from learnlab.protocols.measurements import member_rows
from learnlab.reporting.stats import Table, below, describe, difference, pct, within
from learnlab.studies.base import Claim, Study, every

ARMS = {  # arm: (source study, the model within it)
    "a1-baseline": ("a1", "baseline"),
    "a1-concept": ("a1", "concept"),
    "a2-gen0": ("a2", 0),
    "a2-gen2": ("a2", 2),
}
A2_ARM = "hard-labels"  # the source's chain: each generation trained on the previous one's hard labels
TEST_SETS = ("hard", "easy")
WEIGHTS = ("embedding", "w_ih", "w_hh", "w_out")  # every weight matrix; biases stay float
SCHEMES: dict[str, dict[str, int | None]] = {  # scheme: {parameter: per-channel axis, None = one scale}
    "tensor": dict.fromkeys(WEIGHTS),
    "channel": {"embedding": 1, "w_ih": -1, "w_hh": -1, "w_out": None},  # the head has one output unit
}
JUDGED_BITS, JUDGED_SCHEME, JUDGED_P = 4, "channel", 0.3
SURVIVES = 0.02  # "survives": the 95% CI of the change inside ±2 points; "breaks": wholly below -2 points
MARGIN_FLOOR = 0.05  # clean accuracy must exceed chance by this much for a share of the margin


class Config(sl.SortednessConfig):
    bits: list[int] = Field([8, 6, 4, 3], min_length=1, description="quantization widths (2..16 bits)")
    dropout: list[float] = Field([0.1, 0.2, 0.3, 0.5], min_length=1, description="DropConnect probabilities")
    dropout_samples: int = Field(8, gt=0, description="random masks averaged per seed and probability")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)

    @field_validator("bits")
    @classmethod
    def _bits(cls, bits: list[int]) -> list[int]:
        if any(not 2 <= b <= 16 for b in bits) or len(set(bits)) < len(bits):
            raise ValueError("bits must be distinct integers in 2..16")
        return bits

    @field_validator("dropout")
    @classmethod
    def _dropout(cls, ps: list[float]) -> list[float]:
        if any(not 0 < p < 1 or abs(100 * p - round(100 * p)) > 1e-9 for p in ps) or len(set(ps)) < len(ps):
            raise ValueError("dropout probabilities must be distinct whole percentages in (0, 1)")
        return ps


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 40, "seeds": 2, "eval_size": 50, "dropout_samples": 2},
    "laptop": {"seeds": 10},  # A1's and A2's 1600 steps; 10 seeds
    "paper": {},  # 20 seeds
}


def dropout_name(p: float) -> str:
    return f"dropout{round(100 * p)}"


def settings(bits: list[int], dropout: list[float]) -> list[str]:
    """Intervention names in table order: clean, each width and scheme, each dropout probability."""
    quant = [f"int{b}_{scheme}" for b in sorted(bits, reverse=True) for scheme in SCHEMES]
    return ["clean", *quant, *(dropout_name(p) for p in sorted(dropout))]


# --- protocol --------------------------------------------------------------------------------------


def trained_models(cfg: Config, arms: list[str], ctx: RunContext) -> dict[str, EnsembleLSTMClassifier]:
    """Each arm's models (member i = seed i), trained by A1's and A2's protocol (`sortedness_lstm`)."""
    out: dict[str, EnsembleLSTMClassifier] = {}
    a1_arms = [ARMS[a][1] for a in arms if ARMS[a][0] == "a1"]
    if a1_arms:
        model, members, _ = sl.train(cfg, a1_arms, ctx)
        for arm in a1_arms:
            index = torch.tensor([k for k, (a, _) in enumerate(members) if a == arm], device=cfg.device)
            out[f"a1-{arm}"] = select_members(model, index)
    generations = [ARMS[a][1] for a in arms if ARMS[a][0] == "a2"]
    if generations:
        models, _, _ = sl.generations(cfg, [A2_ARM], ctx, max(generations))  # one arm: member i is chain i
        out.update({f"a2-gen{g}": models[g] for g in generations})
    return {arm: out[arm] for arm in arms}


def concatenate(parts: list[EnsembleLSTMClassifier]) -> EnsembleLSTMClassifier:
    """One ensemble holding every member of `parts`, in order (members never interact, so nothing changes)."""
    first = parts[0]
    n = sum(len(p.b_out) for p in parts)
    out = EnsembleLSTMClassifier(n, first.vocab_size, first.embedding.shape[-1], first.hidden_size)
    out.to(first.embedding.device)
    with torch.no_grad():
        for name, q in out.named_parameters():
            q.copy_(torch.cat([p.get_parameter(name) for p in parts]))
    return out.eval()


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    arms = cfg.arms or list(ARMS)
    seeds = cfg.seed_list
    members = [(arm, seed) for arm in arms for seed in seeds]
    model = concatenate(list(trained_models(cfg, arms, ctx).values()))
    sets = sl.final_sets(cfg, members, TEST_SETS)

    def accuracy(m: torch.nn.Module) -> dict[str, Tensor]:
        """Per member, in float64 and exactly correct/n, so that equal accuracies give drops of exactly 0."""
        out = {}
        with torch.no_grad():
            for name, (x, y) in sets.items():
                out[name] = (sl.accuracy(m, x, y).cpu().double() * len(y)).round() / len(y)
        return out

    names = settings(cfg.bits, cfg.dropout)
    results: dict[str, dict[str, Tensor]] = {}
    with ctx.progress(f"robustness · {len(members)} models · {len(names)} settings", len(names)) as update:
        results["clean"] = accuracy(model)
        update(1)
        for bits in sorted(cfg.bits, reverse=True):
            for scheme, axes in SCHEMES.items():
                results[f"int{bits}_{scheme}"] = accuracy(quantized_copy(model, bits, axes))
                update(len(results))
        for p in sorted(cfg.dropout):
            samples = []
            for i in range(cfg.dropout_samples):
                # restarted for every p: the same uniforms, so masks are nested across p
                gens = [generator(seed, f"dropconnect-{i}", cfg.device) for _, seed in members]
                samples.append(accuracy(dropconnect_copy(model, p, WEIGHTS, gens)))
            results[dropout_name(p)] = {n: torch.stack([s[n] for s in samples]).mean(dim=0) for n in TEST_SETS}
            update(len(results))

    frames = []
    for prefix in ("", "drop_"):
        for test in TEST_SETS:
            for setting in names[1:] if prefix else names:
                value = results[setting][test] - (results["clean"][test] if prefix else 0)
                metric = f"{prefix}{test}_{setting}"
                frames.append(member_rows(members, [cfg.steps], value.numpy()[None], "test", metric))
    return pd.concat(frames, ignore_index=True)


# --- the article's claims --------------------------------------------------------------------------

INT4 = f"int{JUDGED_BITS}_{JUDGED_SCHEME}"
INT4_TENSOR = f"int{JUDGED_BITS}_tensor"
DROPOUT = dropout_name(JUDGED_P)


def _points(cell: dict[str, Any], unit: str = " points") -> str:
    lo, hi = cell["ci95"]
    return f"{100 * cell['mean']:+.1f}{unit} (95% CI {100 * lo:+.1f} to {100 * hi:+.1f})"


def _survives(t: Table) -> tuple[bool | None, str]:
    """An equivalence test: "survives" is no change, so each CI must lie inside ±2 points (a CI that only
    stays above -2 points would let a gain of any size pass, and a wide CI is no evidence of survival)."""
    parts, outcomes = [], []
    for setting in ("int8_channel", INT4):
        cell = t["a1-concept"][f"drop_hard_{setting}"]
        outcomes.append(within(cell, SURVIVES))
        parts.append(f"{setting}: {_points(cell)}")
    tensor = t["a1-concept"][f"drop_hard_{INT4_TENSOR}"]
    return every(outcomes), (
        f"real-data model (a1-concept = a2-gen0), change in hard accuracy: {'; '.join(parts)}; "
        f"judged: each CI inside ±{100 * SURVIVES:.0f} points; per tensor at {JUDGED_BITS} bits {_points(tensor)}"
    )


def _margin_lost(t: Table, arm: str, setting: str) -> np.ndarray | None:
    """Per seed, the share of the clean hard accuracy above chance that an intervention removes (negative:
    lost). A model nearer chance has less to lose, so absolute drops alone would favour it; None where a
    seed's clean accuracy is within MARGIN_FLOOR of chance and the share is not defined."""
    margin = _margin(t, arm)
    return None if margin is None else np.asarray(t[arm][f"drop_hard_{setting}"]["values"], dtype=float) / margin


def _margin(t: Table, arm: str) -> np.ndarray | None:
    margin = np.asarray(t[arm]["hard_clean"]["values"], dtype=float) - 0.5  # None (missing) becomes NaN
    return None if not (margin >= MARGIN_FLOOR).all() else margin


def _synthetic_breaks_more(setting: str, what: str, breaks: bool) -> Any:
    """A directional test paired over chains (Gen0 and Gen2 of one chain share the test set and the damage):
    the CI of Gen2's change minus Gen0's below zero. With `breaks`, Gen2's own change must also have its CI
    below -2 points, the complement of "survives". Judged on absolute drops; the share of the above-chance
    margin lost is reported beside."""

    def check(t: Table) -> tuple[bool | None, str]:
        metric = f"drop_hard_{setting}"
        gen2 = t["a2-gen2"][metric]
        gap = difference(t, metric, "a2-gen2", "a2-gen0")
        outcomes = [below(gap), below(gen2, -SURVIVES) if breaks else True]
        judged = f"Gen2's CI below {-100 * SURVIVES:.0f} points and " if breaks else ""
        evidence = (
            f"{what}: Gen2 (synthetic labels) {_points(gen2)}, Gen0 (real labels) "
            f"{_points(t['a2-gen0'][metric])}; Gen2 − Gen0 {_points(gap)}; judged: {judged}Gen2 − Gen0's CI "
            f"below 0; clean hard accuracy Gen2 {pct(t['a2-gen2']['hard_clean'])}, "
            f"Gen0 {pct(t['a2-gen0']['hard_clean'])}"
        )
        lost = {arm: _margin_lost(t, arm, setting) for arm in ("a2-gen2", "a2-gen0")}
        if lost["a2-gen2"] is not None and lost["a2-gen0"] is not None:
            share = describe(lost["a2-gen2"] - lost["a2-gen0"])
            evidence += (
                f"; as a share of the margin above chance, Gen2 changes by {100 * lost['a2-gen2'].mean():+.0f}%, "
                f"Gen0 by {100 * lost['a2-gen0'].mean():+.0f}% (Gen2 − Gen0 {_points(share, '%')})"
            )
        return every(outcomes), evidence

    return check


# Seeds: the directional tests need 5 chains; an equivalence within ±2 points needs about 10 (fewer leave
# a CI wider than the margin, which fails for want of power and would read as "not reproduced").
CLAIMS = (
    Claim(
        "Boundaries learned from real data survive INT8 and INT4 quantization (per channel: the 95% CI of the "
        "change in hard accuracy lies inside ±2 points)",
        _survives,
        min_seeds=10,
    ),
    Claim(
        "Boundaries learned from synthetic data break under INT4 (per channel): A2 Gen2 loses more than 2 points "
        "of hard accuracy (95% CI), and more than Gen0 (paired 95% CI of Gen2 − Gen0 below 0)",
        _synthetic_breaks_more(INT4, f"INT{JUDGED_BITS} per channel, change in hard accuracy", breaks=True),
        min_seeds=5,
    ),
    Claim(
        "Dropout exposes the synthetic boundary as less redundant: at DropConnect p=0.3 Gen2 loses more hard "
        "accuracy than Gen0 (paired 95% CI of Gen2 − Gen0 below 0)",
        _synthetic_breaks_more(DROPOUT, f"DropConnect p={JUDGED_P}, change in hard accuracy", breaks=False),
        min_seeds=5,
    ),
)


def notes(summary: dict[str, Any]) -> list[str]:
    """Beyond the claims: per model, the narrowest width that keeps hard accuracy within 2 points and the
    DropConnect curve; Gen0 against Gen2 relative to their margins; whether a2-gen0 reproduced a1-concept."""
    t = summary["table"]
    cfg = summary["config"]
    out = []
    for arm in (a for a in ARMS if a in t):
        cells = t[arm]
        kept = {
            scheme: [b for b in sorted(cfg["bits"]) if cells[f"drop_hard_int{b}_{scheme}"]["mean"] > -SURVIVES]
            for scheme in SCHEMES
        }
        widths = ", ".join(f"{s} {min(b)} bits" if b else f"{s} none" for s, b in kept.items())
        dropouts = ", ".join(
            f"p={p} {100 * cells['drop_hard_' + dropout_name(p)]['mean']:+.1f}" for p in sorted(cfg["dropout"])
        )
        out.append(
            f"{arm}: clean hard {100 * cells['hard_clean']['mean']:.1f}%, "
            f"easy {100 * cells['easy_clean']['mean']:.1f}%; narrowest width within 2 points of clean hard "
            f"accuracy (mean): {widths}; DropConnect hard change (points): {dropouts}."
        )
    if all(arm in t and _margin(t, arm) is not None for arm in ("a2-gen0", "a2-gen2")):
        cells = []
        for setting in settings(cfg["bits"], cfg["dropout"])[1:]:
            gen0, gen2 = (_margin_lost(t, arm, setting) for arm in ("a2-gen0", "a2-gen2"))
            cells.append(f"{setting} {100 * gen0.mean():+.0f}% / {100 * gen2.mean():+.0f}%")
        out.append(
            "Change in hard accuracy as a share of the clean margin above chance (Gen0 / Gen2; Gen2 starts "
            f"nearer chance, so it has less to lose in points): {', '.join(cells)}."
        )
    if "a1-concept" in t and "a2-gen0" in t:
        same = _same_model(t)
        out.append(
            "a2-gen0 and a1-concept are the same model trained twice (A2's generation 0 is A1's concept model): "
            + ("every measurement agrees exactly." if same else "their measurements differ — a determinism bug.")
        )
    return out


def _same_model(t: Table) -> bool:
    """Whether a2-gen0 measured exactly as a1-concept (it is the same model, trained by each study's code)."""
    return "a1-concept" in t and "a2-gen0" in t and t["a1-concept"] == t["a2-gen0"]


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """Hard and easy accuracy against bits (per tensor solid, per channel dashed) and against DropConnect p."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"]
    cfg = summary["config"]
    same = _same_model(t)
    arms = [a for a in ARMS if a in t and not (same and a == "a2-gen0")]
    bits = sorted(cfg["bits"])
    ps = sorted(cfg["dropout"])
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharey="row")
    for row, test in enumerate(TEST_SETS):
        for i, arm in enumerate(arms):
            color = f"C{i}"
            label = "a1-concept = a2-gen0" if same and arm == "a1-concept" else arm
            clean = t[arm][f"{test}_clean"]
            for scheme, style in (("tensor", "-"), ("channel", "--")):
                mean = [t[arm][f"{test}_int{b}_{scheme}"]["mean"] for b in bits] + [clean["mean"]]
                axes[row, 0].plot(
                    [*bits, 32], mean, style, color=color, marker="o", ms=3, label=label if scheme == "tensor" else None
                )
            cells = [clean] + [t[arm][f"{test}_{dropout_name(p)}"] for p in ps]
            mean = np.array([c["mean"] for c in cells])
            ci = np.array([c["ci95"] for c in cells])
            axes[row, 1].errorbar(
                [0, *ps],
                mean,
                yerr=[mean - ci[:, 0], ci[:, 1] - mean],
                color=color,
                marker="o",
                ms=3,
                capsize=2,
                label=label,
            )
        axes[row, 0].set(ylabel=f"{test} accuracy", xscale="log", xticks=[*bits, 32], xticklabels=[*bits, "float"])
        axes[row, 0].minorticks_off()
        for ax in axes[row]:
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    axes[0, 0].set_title("weight quantization (solid: per tensor, dashed: per channel)", fontsize=9)
    axes[0, 1].set_title("DropConnect (mean over masks, 95% CI over seeds)", fontsize=9)
    axes[1, 0].set_xlabel("bits")
    axes[1, 1].set_xlabel("drop probability p")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    caption = (
        "Hard (top: 500 sorted vs 500 one-swap, L=20) and easy (bottom: vs 500 random negatives) test accuracy "
        "of each model: left, against the width of symmetric round-to-nearest weight quantization (solid per "
        "tensor, dashed per channel; 'float' = unquantized), mean over "
        f"{len(summary['seeds'])} seeds, no band; right, against the DropConnect probability p (each seed's "
        "accuracy averaged over its masks), mean over seeds, bars = 95% CI of the mean (t-interval); dotted "
        "line = chance."
    )
    return {"robustness": captioned(fig, caption)}


STUDY = Study(
    name="robustness",
    title="do boundaries learned from real data survive quantization and dropout? (A4)",
    source="seeds/000 (learning by negation), section 2, items 6-7",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=tuple(ARMS),
    measure=measure,
    claims=CLAIMS,
    headline=(("a2-gen0", f"drop_hard_{INT4}"), ("a2-gen2", f"drop_hard_{INT4}"), ("a2-gen2", f"drop_hard_{DROPOUT}")),
    figures=figures,
    notes=notes,
)
