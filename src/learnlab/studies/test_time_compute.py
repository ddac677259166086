"""D5 `test-time-compute` — self-consistency: the majority vote over sampled answers against greedy.

Source: Wang et al. (2022), "Self-Consistency Improves Chain of Thought Reasoning in Language Models":
sample many reasoning paths and answer with the commonest final answer. PaLM-540B on GSM8K: greedy
chain of thought 56.5%, the vote over 40 samples 74.4% (+17.9 points; AQuA +12.2); most of the gain comes
by 5–10 samples; robust for temperatures 0.5–1.0.

Method. A small transformer (`EnsembleTransformer`, one member per seed) learns multi-operand addition
mod 10 with a scratchpad (`learnlab.tasks.chain_sum`): n digits (n from `min_operands` to
`max_operands`, n − 1 additions: the item's steps), then n pairs (pointer to an operand, running sum),
the operands taken in a uniformly random order — many paths to one answer — and each addition's sum
written wrong with probability `noise` (a uniform shift of 1 … 9), later sums continuing from the wrong
value. Loss: cross-entropy on the scratchpad tokens. On held-out items (per seed, from their own stream),
the model writes the scratchpad greedily and by sampling at each temperature T, restricted to the
format (a pointer, then a digit), and its answer is its last running sum. For each T, max(ks) samples are
drawn once per item (sample s of a seed from its own stream) and the vote over k samples uses the first
k, so every k is paired with every other and with greedy. A tie for the most votes earns 1/m when the
truth is one of the m tied answers (the expected accuracy of a uniformly random tie-break). The gain
at k is the per-seed difference acc(k) − greedy accuracy; the gain by steps is that difference on the
items with that many additions. Every interval is the t-interval over seeds.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator, stream_seed
from learnlab.engine.train import train_ensemble
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import self_consistency as sc
from learnlab.protocols.measurements import log_rows, member_rows
from learnlab.reporting.stats import Cell, Table, above, below, describe, points
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import chain_sum as cs

GREEDY = "greedy"
CLAIM_K = 10  # "most of the gain by k = 10"
MOST = 0.5  # "most": gain(10) ≥ MOST · gain(max k)
NO_GAIN = 0.01  # a gain whose whole CI lies below +1 point is no gain (the published one is +17.9)


class Config(StudyConfig):
    seeds: int = Field(8, ge=1, description="members of the ensemble, one per seed")
    min_operands: int = Field(2, ge=2, description="fewest digits in an item (1 addition)")
    max_operands: int = Field(6, ge=2, description=f"most digits in an item (at most {cs.MAX_OPERANDS})")
    modulus: int = Field(23, ge=2, description=f"the sums are taken mod this (digits 0 … modulus − 1; at most "
                         f"{cs.MAX_MODULUS})")  # fmt: skip
    noise: float = Field(0.1, ge=0, lt=1, description="probability that a training sum is written wrong")
    d_model: int = Field(32, gt=0, description="residual stream width")
    n_layers: int = Field(2, gt=0, description="transformer blocks")
    n_heads: int = Field(4, gt=0, description="attention heads (divide d_model)")
    d_mlp: int = Field(128, gt=0, description="MLP hidden width")
    steps: int = Field(1500, gt=0, description="training steps (Adam)")
    batch_size: int = Field(64, gt=0, description="items per step per seed")
    lr: float = Field(3e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam's L2 weight decay")
    eval_every: int = Field(250, gt=0, description="steps between learning-curve evaluations")
    test_items: int = Field(200, gt=0, description="held-out items per seed")
    ks: list[int] = Field(
        [1, 3, 5, 10, 20, 40], min_length=1, description="votes over the first k samples (max: samples drawn)"
    )
    temperatures: list[float] = Field([0.5, 0.7, 1.0], min_length=1, description="sampling temperatures")

    @field_validator("ks")
    @classmethod
    def _ks(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks) or len(set(ks)) < len(ks):
            raise ValueError(f"ks={ks}: sample counts must be distinct and >= 1")
        return sorted(ks)

    @field_validator("temperatures")
    @classmethod
    def _temperatures(cls, ts: list[float]) -> list[float]:
        if any(t <= 0 for t in ts) or len(set(ts)) < len(ts):
            raise ValueError(f"temperatures={ts}: temperatures must be distinct and > 0 (greedy is always run)")
        return sorted(ts)

    @model_validator(mode="after")
    def _fits(self) -> Config:
        try:
            cs.check(self.min_operands, self.max_operands, self.modulus)
        except ValueError as err:
            raise ValueError(f"{err}") from None
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": 2, "max_operands": 3, "modulus": 10, "d_model": 16, "n_heads": 2, "d_mlp": 32, "n_layers": 1,
              "steps": 30, "batch_size": 16, "eval_every": 10, "test_items": 24, "ks": [1, 3, 5],
              "temperatures": [0.7, 1.0]},
    # mod 23, 2-6 operands, 1500 steps: the model is still learning the addition table (teacher-forced sums
    # 90% right at the end, greedy answers ~80%), the regime where paths can disagree. With 5 seeds the run took
    # 186 s of CPU (user + system) on a shared machine, 8 seeds (for the paired CIs' power) 338 s: ~5.5 min alone.
    # At 1500 steps the seeds sit at different points of learning (greedy 3%-100%): gains come from the middle ones
    "laptop": {},
    "paper": {"seeds": 10, "max_operands": 8, "d_model": 64, "d_mlp": 256, "steps": 3000, "batch_size": 128,
              "test_items": 1000},
}  # fmt: skip


def arm(temperature: float) -> str:
    return f"T{temperature:g}"


# --- data and training ---------------------------------------------------------------------------------


def _rng(seed: int, purpose: str, step: int = 0) -> np.random.Generator:
    """A stateless stream per (seed, purpose, step): a resumed training draws the same batches."""
    return np.random.default_rng([stream_seed(seed, purpose), step])


class Batches:
    """batch(step): for every member its own items, as prompt + noisy scratchpad, and the loss mask."""

    def __init__(self, cfg: Config, seeds: list[int], purpose: str = "chain-train", noise: float | None = None):
        self.cfg, self.seeds, self.purpose = cfg, seeds, purpose
        self.noise = cfg.noise if noise is None else noise

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        c = self.cfg
        rows = []
        for s in self.seeds:
            rng = _rng(s, self.purpose, step)
            it = cs.items(rng, c.batch_size, c.min_operands, c.max_operands, c.modulus)
            rows.append(np.concatenate([cs.prompts(it), cs.solutions(rng, it, self.noise)], axis=1))
        tokens = torch.as_tensor(np.stack(rows), device=c.device)
        return tokens, tokens[:, :, cs.prompt_len(c.max_operands) :] != cs.blank(c.modulus)


def loss_fn(prompt_len: int, model: EnsembleTransformer, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Per member: mean cross-entropy of the scratchpad tokens (padding left out)."""
    tokens, mask = batch
    logits = model(tokens[:, :, :-1])[:, :, prompt_len - 1 :]
    target = tokens[:, :, prompt_len:]
    ce = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
    return (ce * mask).sum((1, 2)) / mask.sum((1, 2))


def evaluator(cfg: Config, seeds: list[int]) -> Any:
    """Teacher-forced accuracy of the running sums on clean solutions (a learning curve)."""
    tokens, mask = Batches(cfg.model_copy(update={"batch_size": 256}), seeds, "chain-eval", noise=0.0)(0)
    p = cs.prompt_len(cfg.max_operands)
    sums = mask & torch.as_tensor(~cs.is_pointer(np.arange(cs.scratch_len(cfg.max_operands))), device=mask.device)

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        guess = model(tokens[:, :, :-1])[:, :, p - 1 :].argmax(-1)
        right = (guess == tokens[:, :, p:]) & sums
        return {"sum_acc": right.sum((1, 2)).float() / sums.sum((1, 2))}

    return evaluate


def build(cfg: Config, seeds: list[int]) -> EnsembleTransformer:
    vocab = cs.vocab_size(cfg.modulus, cfg.max_operands)
    model = EnsembleTransformer(
        len(seeds), vocab, cs.seq_len(cfg.max_operands), d_model=cfg.d_model, n_layers=cfg.n_layers,
        n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, n_out=vocab,
    ).to(cfg.device)  # fmt: skip
    model.reset_parameters([generator(s, "init", cfg.device) for s in seeds])
    return model


def allowed_tokens(cfg: Config) -> Tensor:
    """The format [2·max_operands, vocab]: a pointer at even scratchpad positions, a digit at odd ones."""
    length, vocab = cs.scratch_len(cfg.max_operands), cs.vocab_size(cfg.modulus, cfg.max_operands)
    allowed = torch.zeros(length, vocab, dtype=torch.bool)
    allowed[0::2, cs.pointer0(cfg.modulus) :] = True
    allowed[1::2, : cfg.modulus] = True
    return allowed


# --- measurements --------------------------------------------------------------------------------------


def held_out_items(cfg: Config, seeds: list[int]) -> list[cs.Items]:
    return [cs.items(_rng(s, "chain-test"), cfg.test_items, cfg.min_operands, cfg.max_operands, cfg.modulus)
            for s in seeds]  # fmt: skip


def answers_of(scratch: Tensor, its: list[cs.Items]) -> np.ndarray:
    """Answers [K, ..., B] of scratchpads [K, ..., B, L] (the n-th running sum of each item)."""
    out = scratch.cpu().numpy()
    counts = np.stack([it.counts for it in its])  # [K, B]
    counts = counts.reshape(counts.shape[:1] + (1,) * (out.ndim - 3) + counts.shape[1:])
    return cs.read_answers(out, np.broadcast_to(counts, out.shape[:-1]))


def measure_votes(cfg: Config, model: EnsembleTransformer, seeds: list[int], ctx: RunContext) -> dict[str, Any]:
    """Per-item credit on the held-out items: {"greedy": [K, B], T: {k: [K, B]}}, and the items."""
    its = held_out_items(cfg, seeds)
    prompts = torch.as_tensor(np.stack([cs.prompts(it) for it in its]), device=cfg.device)
    truth = np.stack([it.answers for it in its])
    allowed = allowed_tokens(cfg)
    samples = max(cfg.ks)
    out: dict[str, Any] = {"items": its}
    with torch.no_grad():
        out[GREEDY] = (answers_of(sc.decode(model, prompts, allowed), its) == truth).astype(float)
        with ctx.progress(f"test-time-compute · sampling {samples} per item", len(cfg.temperatures)) as update:
            for i, t in enumerate(cfg.temperatures):
                drawn = sc.sample_answers(model, prompts, allowed, t, seeds, samples, f"chain-sample-{arm(t)}")
                answers = np.moveaxis(answers_of(drawn, its), 1, -1)  # [K, B, S]
                out[arm(t)] = sc.vote_accuracies(answers, truth, cfg.ks, cfg.modulus)
                update(i + 1)
    return out


def by_steps(credit: np.ndarray, its: list[cs.Items], steps: int) -> np.ndarray:
    """Per-member mean credit over the items with `steps` additions [K] (NaN where a member has none)."""
    out = []
    for row, it in zip(credit, its, strict=True):
        keep = it.steps == steps
        out.append(row[keep].mean() if keep.any() else np.nan)
    return np.array(out)


def vote_rows(cfg: Config, votes: dict[str, Any], seeds: list[int]) -> list[pd.DataFrame]:
    its, greedy = votes["items"], votes[GREEDY]
    step_values = range(cfg.min_operands - 1, cfg.max_operands)
    top = max(cfg.ks)

    def rows(name: str, metric: str, values: np.ndarray) -> pd.DataFrame:
        return member_rows([(name, s) for s in seeds], [cfg.steps], values[None], "test", metric)

    frames = [rows(GREEDY, "acc", greedy.mean(1))]
    frames += [rows(GREEDY, f"acc_steps{n}", by_steps(greedy, its, n)) for n in step_values]
    for t in cfg.temperatures:
        a, credit = arm(t), votes[arm(t)]
        for k in cfg.ks:
            frames.append(rows(a, f"acc_k{k}", credit[k].mean(1)))
            frames.append(rows(a, f"gain_k{k}", credit[k].mean(1) - greedy.mean(1)))
        for n in step_values:
            frames.append(rows(a, f"acc_k{top}_steps{n}", by_steps(credit[top], its, n)))
            frames.append(rows(a, f"gain_k{top}_steps{n}", by_steps(credit[top] - greedy, its, n)))
    return frames


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """Train the ensemble (one member per seed) on noisy scratchpads; then greedy and the votes."""
    seeds = cfg.seed_list
    model = build(cfg, seeds)
    with ctx.progress(f"test-time-compute · {len(seeds)} seeds", cfg.steps) as update:
        log = train_ensemble(
            model,
            Batches(cfg, seeds),
            functools.partial(loss_fn, cs.prompt_len(cfg.max_operands)),
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            evaluate=evaluator(cfg, seeds),
            eval_every=cfg.eval_every,
            on_step=update,
            checkpoint=ctx.checkpoint("chain"),
        )
    model.eval()
    ctx.keep_model("chain", model, [(GREEDY, s) for s in seeds])
    frames = log_rows([(GREEDY, s) for s in seeds], log)
    frames += vote_rows(cfg, measure_votes(cfg, model, seeds, ctx), seeds)
    return pd.concat(frames, ignore_index=True)


# --- claims --------------------------------------------------------------------------------------------

# Wang et al. (2022), Table 2, PaLM-540B on GSM8K, T = 0.7 (top-k 40), 40 sampled paths; compared at T0.7
REFERENCE: Table = {
    GREEDY: {"acc": {"mean": 0.565}},
    "T0.7": {"acc_k40": {"mean": 0.744}, "gain_k40": {"mean": 0.179}},
}


def temperature_arms(t: Table) -> list[str]:
    arms = sorted((a for a in t if a.startswith("T")), key=lambda a: float(a[1:]))
    if not arms:
        raise KeyError("a temperature arm")
    return arms


def ks_of(t: Table, a: str) -> list[int]:
    return sorted(int(m.removeprefix("acc_k")) for m in t[a] if m.startswith("acc_k") and "_" not in m[4:])


def _pts(cell: Cell) -> str:
    return "n/a" if cell["mean"] is None else points(cell)


def _values(cell: Cell) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in cell["values"]], dtype=float)


def _three_way(cell: Cell, bound: float = 0.0) -> bool | None:
    """True: the CI lies above `bound`; False: below it; None: it straddles (or cannot be told)."""
    return True if above(cell, bound) else False if below(cell, bound) else None


def _beats_greedy(t: Table) -> tuple[bool | None, str]:
    """The vote over the most samples beats greedy at every temperature: CI above 0; no gain (CI below
    +NO_GAIN) fails; in between cannot be told."""
    outcomes, parts = [], []
    for a in temperature_arms(t):
        top = max(ks_of(t, a))
        g = t[a][f"gain_k{top}"]
        outcomes.append(True if above(g) else False if below(g, NO_GAIN) else None)
        parts.append(f"{a}: k={top} {_pts(g)}")
    return every(outcomes), "vote − greedy (paired) — " + "; ".join(parts)


def _non_decreasing(t: Table) -> tuple[bool | None, str]:
    """No step up in k lowers accuracy: no paired CI of acc(k) − acc(previous k) lies below 0."""
    outcomes, parts = [], []
    for a in temperature_arms(t):
        ks = ks_of(t, a)
        if len(ks) < 2:
            raise KeyError(f"{a} at two values of k")
        for lo, hi in zip(ks, ks[1:], strict=False):
            d = describe(list(_values(t[a][f"acc_k{hi}"]) - _values(t[a][f"acc_k{lo}"])))
            drop = below(d)
            outcomes.append(None if drop is None else not drop)
            if drop or hi == ks[-1]:
                parts.append(f"{a} k {lo}→{hi}: {_pts(d)}")
    return every(outcomes), "; ".join(parts)


def _most_by_ten(t: Table) -> tuple[bool | None, str]:
    """gain(10) ≥ MOST · gain(max k): the paired CI of gain(10) − MOST · gain(max k) above 0 (below 0: fails);
    undetermined at a temperature with no gain to share (gain(max k)'s CI not above 0)."""
    outcomes, parts = [], []
    for a in temperature_arms(t):
        top = max(ks_of(t, a))
        g10, gtop = t[a][f"gain_k{CLAIM_K}"], t[a][f"gain_k{top}"]
        share = describe(list(_values(g10) - MOST * _values(gtop)))
        has_gain = above(gtop)
        outcomes.append(_three_way(share) if has_gain else None)
        ratio = "" if not gtop["mean"] else f", ratio of means {g10['mean'] / gtop['mean']:.2f}"
        parts.append(f"{a}: gain(10) {_pts(g10)}, gain({top}) {_pts(gtop)}{ratio}; gain(10) − {MOST}·gain({top}) "
                     f"{_pts(share)}" + ("" if has_gain else " (no gain to share: undetermined)"))  # fmt: skip
    return every(outcomes), "; ".join(parts)


def step_values(t: Table, a: str, top: int) -> list[int]:
    prefix = f"gain_k{top}_steps"
    return sorted(int(m.removeprefix(prefix)) for m in t[a] if m.startswith(prefix))


def gain_slope(t: Table, a: str) -> Cell:
    """The per-seed least-squares slope of gain(max k) against the item's steps, as a cell over seeds."""
    top = max(ks_of(t, a))
    steps = step_values(t, a, top)
    if len(steps) < 2:
        raise KeyError(f"{a} gains at two step counts")
    y = np.array([_values(t[a][f"gain_k{top}_steps{n}"]) for n in steps])  # [steps, seeds]
    x = np.array(steps, dtype=float)
    return describe([np.polyfit(x, col, 1)[0] if np.isfinite(col).all() else np.nan for col in y.T])


def _longer_gain_more(t: Table) -> tuple[bool | None, str]:
    """The slope of gain against steps: CI above 0 holds, below 0 fails, straddling cannot be told."""
    outcomes, parts = [], []
    for a in temperature_arms(t):
        s = gain_slope(t, a)
        outcomes.append(_three_way(s))
        parts.append(f"{a}: {_pts(s)} per step")
    return every(outcomes), "slope of gain(max k) against the item's additions — " + "; ".join(parts)


CLAIMS = (
    Claim("The majority vote over the most samples (40) beats greedy decoding at every temperature: the paired "
          "gain's 95% CI above 0 (not reproduced: below +1 point)", _beats_greedy, min_seeds=5),
    Claim("Accuracy does not fall as k grows: at no temperature does the paired 95% CI of acc(k) − acc(previous "
          "k) lie below 0", _non_decreasing, min_seeds=5),
    Claim(f"Most of the gain comes by k = {CLAIM_K}: gain({CLAIM_K}) ≥ {MOST}·gain(40), the paired 95% CI of "
          f"gain({CLAIM_K}) − {MOST}·gain(40) above 0 at every temperature", _most_by_ten, min_seeds=5),
    Claim("The gain is larger on items with more steps: the per-seed slope of gain(40) against the item's "
          "additions has a 95% CI above 0 at every temperature", _longer_gain_more, min_seeds=5),
)  # fmt: skip


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    out = []
    if GREEDY in t and t[GREEDY]["acc"]["mean"] is not None:
        out.append(f"Greedy accuracy {100 * t[GREEDY]['acc']['mean']:.1f}%.")
    for a in (x for x in t if x.startswith("T")):
        ks = ks_of(t, a)
        accs = ", ".join(f"k={k} {100 * t[a][f'acc_k{k}']['mean']:.1f}%" for k in ks)
        out.append(f"{a}: vote accuracy {accs}.")
    if GREEDY in t:
        greedy = ", ".join("n/a" if v is None else f"{100 * v:.0f}%" for v in t[GREEDY]["acc"]["values"])
        gains = "; ".join(
            f"{a} "
            + ", ".join("n/a" if v is None else f"{100 * v:+.1f}" for v in t[a][f"gain_k{max(ks_of(t, a))}"]["values"])
            for a in t
            if a.startswith("T")
        )
        out.append(
            f"Per seed, greedy accuracy {greedy}; gain of the largest vote in points: {gains}. A seed that has learned "
            "the task leaves no room to gain, one that has not learned it has no majority to find: the gain lives "
            "in seeds part-way through learning."
        )
    out.append(
        "The published accuracies (GSM8K, PaLM-540B) measure another task and model: only the gain and the shape "
        "of the curve in k are comparable. A tie earns 1/m of the m tied answers (the mean of a random tie-break)."
    )
    return out


# --- figures -------------------------------------------------------------------------------------------


def _band(ax: Any, x: list[float], cells: list[Cell], **kw: Any) -> None:
    mean = np.array([np.nan if c["mean"] is None else c["mean"] for c in cells], dtype=float)
    lo = np.array([np.nan if c["ci95"][0] is None else c["ci95"][0] for c in cells], dtype=float)
    hi = np.array([np.nan if c["ci95"][1] is None else c["ci95"][1] for c in cells], dtype=float)
    ax.plot(x, mean, "o-", **kw)
    ax.fill_between(x, lo, hi, color=kw.get("color"), alpha=0.2)


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"]
    arms = [a for a in t if a.startswith("T")]
    if not arms or GREEDY not in t:
        return {}
    seeds = len(summary["seeds"])
    fig, (ax, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i, a in enumerate(arms):
        ks = ks_of(t, a)
        _band(ax, ks, [t[a][f"acc_k{k}"] for k in ks], color=f"C{i}", label=f"vote, T = {a[1:]}")
        _band(right, ks, [t[a][f"gain_k{k}"] for k in ks], color=f"C{i}", label=f"T = {a[1:]}")
    g = t[GREEDY]["acc"]
    ax.axhline(g["mean"], color="black", lw=1, label="greedy")
    ax.axhspan(*g["ci95"], color="black", alpha=0.1)
    right.axhline(0, color="black", lw=1)
    ks = ks_of(t, arms[0])
    ax.set(ylabel="accuracy", title="Majority vote against k", ylim=(0, 1.02))
    right.set(ylabel="vote − greedy (paired, per seed)", title="Gain over greedy")
    for panel in (ax, right):
        panel.set(xscale="log", xlabel="samples k")
        panel.set_xticks(ks, [str(k) for k in ks])
        panel.minorticks_off()
        panel.legend(fontsize=7)
    fig.tight_layout()
    caption = (
        "Left: held-out accuracy of the majority vote over the first k sampled scratchpads, per temperature (log x), "
        "with greedy decoding as the black line; right: the per-seed paired gain over greedy. Means over "
        f"{seeds} seeds, bands: 95% t-intervals (left: of accuracy, which varies much between seeds; right: of the "
        "paired difference)."
    )
    out = {"accuracy_vs_k": captioned(fig, caption)}

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, a in enumerate(arms):
        top = max(ks_of(t, a))
        steps = step_values(t, a, top)
        _band(ax, steps, [t[a][f"gain_k{top}_steps{n}"] for n in steps], color=f"C{i}", label=f"T = {a[1:]}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="additions in the item", ylabel="vote − greedy accuracy", title="Gain by item steps")
    ax.set_xticks(step_values(t, arms[0], max(ks_of(t, arms[0]))))
    ax.legend(fontsize=7)
    fig.tight_layout()
    caption = (
        f"Gain of the vote over all samples drawn against greedy, by the item's number of additions; means over "
        f"{seeds} seeds of the per-seed paired difference, bands: 95% t-intervals."
    )
    out["gain_by_steps"] = captioned(fig, caption)
    return out


STUDY = Study(
    name="test-time-compute",
    title="self-consistency: the majority vote over sampled answers against greedy (D5)",
    source="Wang et al. (2022), self-consistency (GSM8K, PaLM-540B)",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),
    measure=measure,
    reference=REFERENCE,
    claims=CLAIMS,
    headline=((GREEDY, "acc"), ("T0.7", "acc_k40"), ("T0.7", "gain_k40")),
    figures=figures,
    notes=notes,
    point_metrics=tuple(f"gain_k{k}" for k in (1, 3, 5, 10, 20, 40))
    + tuple(f"gain_k40_steps{n}" for n in range(1, cs.MAX_OPERANDS)),
)
