"""B1 `looped-introspection` — does looping bring a transformer's words closer to what it knows?

Source: Chen, Liu, Shao (2026), "Loop as a Bridge" (arXiv 2601.10242), on the Ouro looped LMs: with more
loops a model's own verbal self-verification comes closer to what a linear probe reads from its hidden
states — partly because the probe gets worse — and injected concepts are noticed mainly in the last loop.
No per-loop numbers are public; the claims are qualitative.

Method. A looped transformer (`learnlab.models.looped`: one shared pre-norm block applied L times, the
final LayerNorm and unembedding read out after every loop, the input embedding re-injected at every
loop but the first) is trained per seed on k-hop pointer chasing over a random permutation of n nodes
(`learnlab.tasks.pointer_chasing`), in two formats over one vocabulary and one sequence: solve (the
answer read at `=`) and verify (`… = c ?` → Y/N, c the true answer or a uniformly drawn other node, a
fair coin each); the loss is the mean over loops of the two formats' cross-entropies. On held-out
problems (per seed, split in halves: a probe is fit on the first and every score is taken on the
second), for every loop t: task accuracy P_TP(t), the answer read after loop t; self-verification
P_SV(t), the model's own Y/N after loop t on the verify prompt whose candidate is its own loop-t answer
(accuracy and F1, positive = the answer is right); a probe P_RR(t), a scikit-learn logistic regression
(standardised inputs) on the residual stream after loop t at the `?` position of that same prompt,
predicting whether the answer is right (accuracy, F1, AUROC), beside the same probe fit on shuffled
labels (its AUROC should sit at 0.5); self-verification's AUROC, its P(Y) ranking right above wrong
answers; and the gap P_RR − P_SV per seed, in accuracy and in AUROC (the claim of a shrinking gap uses
AUROC: accuracy has a floor, the majority verdict, that moves as answers get more right). Concept injection:
on the prompts with the model's final answer, the difference of means of the loop-t residual at `?`
between right and wrong answers (fit half) is added there at loop t, times each of a few scales, and
the final verdict compared with the uninjected one; the flip rate stands beside that of a random
direction of the same norm. Claims use the smallest scale (the largest pushes every verdict to Y wherever
it is added: the flip rate saturates at the share of N verdicts). A trend over loops is the per-seed
least-squares slope against t, with its t-interval over seeds. No claim is judged (each is undetermined)
unless the model has learned the task: at the last loop, task accuracy minus the trivial floor measured on
the same problems (answering the start node, or the commonest answer, whichever scores more), per seed,
has a 95% CI above +5 points. With `baselines`, two non-looped transformers train on the same batches and
loss with one readout — `flat-params` (block_layers layers: the looped model's parameters) and `flat-flops`
(block_layers · loops layers: its compute) — and report task accuracy and self-verification at that
readout, in the table only.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator, stream_seed
from learnlab.engine.train import TrainLog, train_ensemble
from learnlab.models.looped import LoopedTransformer
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols.measurements import log_rows, member_rows
from learnlab.reporting.stats import Table, above, below, describe, pct, points
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import pointer_chasing as pc

ARM = "looped"
FLAT_ARMS = ("flat-params", "flat-flops")  # non-looped baselines: block_layers layers; block_layers·loops layers
FLAT_SLOPE = 0.01  # "does not rise": the slope's whole CI below +1 point of probe accuracy per loop
LEARNED_MARGIN = 0.05  # "learned the task": last-loop accuracy's CI above the trivial floor + 5 points


class Config(StudyConfig):
    seeds: int = Field(5, ge=1, description="members of the ensemble, one per seed")
    n_nodes: int = Field(8, ge=2, description=f"nodes of the permutation (at most {pc.MAX_NODES})")
    hops: int = Field(4, ge=1, le=64, description="pointer hops k: the answer is f^k(start)")
    loops: int = Field(4, ge=1, le=16, description="times the shared block is applied (L)")
    block_layers: int = Field(1, ge=1, le=4, description="distinct layers in the shared block")
    reinject: bool = Field(True, description="add the input embedding at the start of every loop after the first")
    d_model: int = Field(64, gt=0, description="residual stream width")
    n_heads: int = Field(4, gt=0, description="attention heads (divide d_model)")
    d_mlp: int = Field(256, gt=0, description="MLP hidden width")
    steps: int = Field(2000, gt=0, description="training steps (Adam)")
    batch_size: int = Field(64, gt=0, description="problems per step per seed, each in both formats")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam's L2 weight decay")
    eval_every: int = Field(200, gt=0, description="steps between evaluations of the learning curves")
    baselines: bool = Field(True, description="also train the non-looped baselines (flat-params, flat-flops)")
    test_problems: int = Field(1000, ge=40, description="held-out problems per seed (half fit the probes)")
    injection_scales: list[float] = Field(
        [1.0, 2.0, 4.0],
        min_length=1,
        description="multiples of the difference of means injected (claims: the smallest)",
    )

    @model_validator(mode="after")
    def _fits(self) -> Config:
        try:
            pc.check(self.n_nodes, self.hops)
        except ValueError as err:
            raise ValueError(f"{err}") from None
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if any(s <= 0 for s in self.injection_scales):
            raise ValueError("injection_scales must be positive")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": 2, "n_nodes": 5, "hops": 2, "loops": 2, "d_model": 16, "n_heads": 2, "d_mlp": 32,
              "steps": 20, "batch_size": 16, "eval_every": 10, "test_problems": 80, "injection_scales": [1.0, 4.0]},
    # 6 nodes, 3 hops, 4 loops: loop 1 sits at the "answer = start" floor (a start on a cycle of length 1 or 3:
    # 1/3), loops 2-4 at 55-58% after 2000 steps; 9.5 min alone on 2 cores (0.27 s/step), 5 seeds
    # baselines off: they would double the 10-minute budget
    "laptop": {"baselines": False, "seeds": 5, "n_nodes": 6, "hops": 3, "loops": 4, "steps": 2000, "lr": 1e-3,
               "batch_size": 128, "eval_every": 250},
    "paper": {"seeds": 10, "n_nodes": 16, "hops": 8, "loops": 8, "d_model": 128, "n_heads": 4, "d_mlp": 512,
              "steps": 20000, "batch_size": 256, "eval_every": 500, "test_problems": 4000},
}  # fmt: skip


def arm(t: int) -> str:
    """The arm of loop t (1-based)."""
    return f"loop-{t}"


# --- data and training ---------------------------------------------------------------------------------


def _rng(seed: int, purpose: str, step: int = 0) -> np.random.Generator:
    """A stateless stream per (seed, purpose, step): a resumed training draws the same batches."""
    return np.random.default_rng([stream_seed(seed, purpose), step])


class Batches:
    """batch(step): for every member its own problems, as rows of both formats, with both targets."""

    def __init__(self, cfg: Config, seeds: list[int], device: str, purpose: str = "pointer-train"):
        self.cfg, self.seeds, self.device, self.purpose = cfg, seeds, device, purpose

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        rows, targets = [], []
        for s in self.seeds:
            rng = _rng(s, self.purpose, step)
            p = pc.problems(rng, self.cfg.batch_size, self.cfg.n_nodes, self.cfg.hops)
            tokens, verdicts = pc.verify_batch(rng, p)
            rows.append(tokens)
            targets.append(np.stack([p.answers, verdicts], axis=-1))
        as_tensor = functools.partial(torch.as_tensor, device=self.device)
        return as_tensor(np.stack(rows)), as_tensor(np.stack(targets))


def readouts(model: EnsembleTransformer, tokens: Tensor, n_nodes: int, hooks: Any = None) -> tuple[Tensor, Tensor]:
    """Per loop: solve logits over the nodes [L, K, B, n] and verify logits over (N, Y) [L, K, B, 2] (a
    non-looped transformer has one readout: L = 1)."""
    if isinstance(model, LoopedTransformer):
        out = model.forward_loops(tokens, hooks)
    else:
        out = model(tokens, hooks=hooks)[None]
    solve = out[..., pc.eq_pos(n_nodes), :n_nodes]
    verify = out[..., pc.q_pos(n_nodes), :][..., [pc.NO, pc.YES]]
    return solve, verify


def loss_fn(n_nodes: int, model: EnsembleTransformer, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Per member: the mean over loops of (solve CE + verify CE) / 2."""
    tokens, targets = batch
    solve, verify = readouts(model, tokens, n_nodes)
    loops = solve.shape[0]
    answers = targets[..., 0].expand(loops, -1, -1)
    verdicts = (targets[..., 1] == pc.YES).long().expand(loops, -1, -1)
    ce_solve = F.cross_entropy(solve.flatten(0, 2), answers.flatten(), reduction="none").view(answers.shape)
    ce_verify = F.cross_entropy(verify.flatten(0, 2), verdicts.flatten(), reduction="none").view(answers.shape)
    return (ce_solve + ce_verify).mean(dim=(0, 2)) / 2


def evaluator(cfg: Config, seeds: list[int], device: str) -> Any:
    """Accuracy of both formats at the last loop on a fixed batch of training-distribution problems."""
    tokens, targets = Batches(cfg.model_copy(update={"batch_size": 256}), seeds, device, "pointer-eval")(0)

    def evaluate(model: EnsembleTransformer) -> dict[str, Tensor]:
        solve, verify = readouts(model, tokens, cfg.n_nodes)
        return {
            "solve_acc": (solve[-1].argmax(-1) == targets[..., 0]).float().mean(-1),
            "verify_acc": ((verify[-1].argmax(-1) == 1) == (targets[..., 1] == pc.YES)).float().mean(-1),
        }

    return evaluate


def build(cfg: Config, seeds: list[int]) -> LoopedTransformer:
    model = LoopedTransformer(
        len(seeds), pc.VOCAB_SIZE, pc.seq_len(cfg.n_nodes), d_model=cfg.d_model, loops=cfg.loops,
        block_layers=cfg.block_layers, n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, n_out=pc.VOCAB_SIZE,
        reinject=cfg.reinject,
    ).to(cfg.device)  # fmt: skip
    model.reset_parameters([generator(s, "init", cfg.device) for s in seeds])
    return model


def flat_layers(cfg: Config, name: str) -> int:
    """Layers of a non-looped baseline: equal parameters (the block once) or equal FLOPs (block · loops)."""
    return cfg.block_layers if name == "flat-params" else cfg.block_layers * cfg.loops


def build_flat(cfg: Config, seeds: list[int], name: str) -> EnsembleTransformer:
    model = EnsembleTransformer(
        len(seeds), pc.VOCAB_SIZE, pc.seq_len(cfg.n_nodes), d_model=cfg.d_model, n_layers=flat_layers(cfg, name),
        n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, n_out=pc.VOCAB_SIZE,
    ).to(cfg.device)  # fmt: skip
    model.reset_parameters([generator(s, f"init-{name}", cfg.device) for s in seeds])
    return model


def measure_flat(cfg: Config, model: EnsembleTransformer, seeds: list[int]) -> dict[str, np.ndarray]:
    """A non-looped baseline at its single readout, on the looped model's held-out problems, {metric: [K]}:
    task accuracy, the trivial floor, and self-verification on its own answers (score half)."""
    n = cfg.n_nodes
    probs = [pc.problems(_rng(s, "pointer-test"), cfg.test_problems, n, cfg.hops) for s in seeds]
    score = slice(cfg.test_problems // 2, None)

    def prompts(candidates: np.ndarray) -> Tensor:
        rows = [pc.sequences(p, c) for p, c in zip(probs, candidates, strict=True)]
        return torch.as_tensor(np.stack(rows), device=cfg.device)

    with torch.no_grad():
        truth = np.stack([p.answers for p in probs])
        solve, _ = readouts(model, prompts(np.zeros_like(truth)), n)
        answers = solve[-1].argmax(-1).cpu().numpy()
        _, verify = readouts(model, prompts(answers), n)
    yes = (verify[-1].argmax(-1) == 1).cpu().numpy()
    p_yes = verify[-1].float().softmax(-1)[..., 1].cpu().numpy()
    right = answers == truth
    rows = [
        {"task_acc": y.mean(), "floor_acc": trivial_floor(p), "sv_acc": (v[score] == y[score]).mean(),
         "sv_f1": f1(v[score], y[score]), "sv_auroc": auroc(y[score], q[score])}
        for y, v, q, p in zip(right, yes, p_yes, probs, strict=True)
    ]  # fmt: skip
    return {name: np.array([r[name] for r in rows], dtype=float) for name in rows[0]}


# --- probes and injection ------------------------------------------------------------------------------


def probe_scores(x_fit: np.ndarray, y_fit: np.ndarray, x_score: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """A logistic regression (standardised inputs) fit on one set and scored on another: accuracy, F1 and
    AUROC (NaN where a set holds one class only: there is nothing to separate, or to rank)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    nan = {"acc": float("nan"), "f1": float("nan"), "auroc": float("nan")}
    if len(np.unique(y_fit)) < 2:
        return nan
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(x_fit, y_fit)
    guess = probe.predict(x_score)
    out = {"acc": float((guess == y_score).mean()), "f1": float(f1_score(y_score, guess, zero_division=0.0))}
    two = len(np.unique(y_score)) == 2
    out["auroc"] = float(roc_auc_score(y_score, probe.predict_proba(x_score)[:, 1])) if two else float("nan")
    return out


def auroc(truth: np.ndarray, score: np.ndarray) -> float:
    """The AUROC of `score` ranking right (True) above wrong answers; NaN with one class only."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score)) if len(np.unique(truth)) == 2 else float("nan")


def f1(guess: np.ndarray, truth: np.ndarray) -> float:
    """F1 with positive = True (0 where there is no true or guessed positive)."""
    tp = float((guess & truth).sum())
    denom = float(guess.sum() + truth.sum())
    return 2 * tp / denom if denom else 0.0


def inject(model: LoopedTransformer, tokens: Tensor, n_nodes: int, loop: int, direction: Tensor) -> Tensor:
    """Final verdicts (True: Y) [K, B] with `direction` [K, d_model] added to the residual after loop
    `loop` (0-based) at the `?` position."""
    q = pc.q_pos(n_nodes)

    def add(x: Tensor, _: str) -> Tensor:
        x = x.clone()
        x[:, :, q] += direction[:, None, :]
        return x

    _, verify = readouts(model, tokens, n_nodes, {f"loops.{loop}.hook_resid_post": add})
    return verify[-1].argmax(-1) == 1


def _resid_cache(model: LoopedTransformer, tokens: Tensor, n_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Solve and verify logits per loop, and the residual at `?` after every layer of every loop
    [L, block_layers, K, B, d_model] (the last layer's is the loop's output, `loops.{t}.hook_resid_post`)."""
    cache: dict[tuple[int, int], Tensor] = {}
    q, layers = pc.q_pos(n_nodes), len(model.blocks)

    def keep(where: tuple[int, int]) -> Any:
        return lambda x, _: cache.__setitem__(where, x[:, :, q].detach())

    hooks = {f"loops.{t}.blocks.{i}.hook_resid_post": keep((t, i)) for t in range(model.loops) for i in range(layers)}
    solve, verify = readouts(model, tokens, n_nodes, hooks)
    resid = torch.stack([torch.stack([cache[t, i] for i in range(layers)]) for t in range(model.loops)])
    return solve, verify, resid


def trivial_floor(p: pc.Problems) -> float:
    """The best accuracy of an answer that ignores the chase: the start node itself, or the commonest answer."""
    start = float((p.answers == p.starts).mean())
    commonest = float(np.bincount(p.answers).max() / len(p))
    return max(start, commonest)


def measure_loops(cfg: Config, model: LoopedTransformer, seeds: list[int]) -> dict[str, np.ndarray]:
    """Every per-loop metric on held-out problems, {metric: [L, K]}."""
    n, loops, k = cfg.n_nodes, cfg.loops, len(seeds)
    probs = [pc.problems(_rng(s, "pointer-test"), cfg.test_problems, n, cfg.hops) for s in seeds]
    half = cfg.test_problems // 2
    fit, score = slice(0, half), slice(half, None)
    answers_true = np.stack([p.answers for p in probs])  # [K, B]

    def prompts(candidates: np.ndarray) -> Tensor:  # candidates [K, B]
        rows = [pc.sequences(p, c) for p, c in zip(probs, candidates, strict=True)]
        return torch.as_tensor(np.stack(rows), device=cfg.device)

    out: dict[str, np.ndarray] = {}

    def put(name: str, t: int, m: int, value: float) -> None:
        out.setdefault(name, np.full((loops, k), np.nan))[t, m] = value

    with torch.no_grad():
        solve, _ = readouts(model, prompts(np.zeros_like(answers_true)), n)
        answers = solve.argmax(-1).cpu().numpy()  # [L, K, B]
        correct = answers == answers_true[None]
        for t in range(loops):
            _, verify, resid = _resid_cache(model, prompts(answers[t]), n)
            says_yes = (verify[t].argmax(-1) == 1).cpu().numpy()
            p_yes = verify[t].float().softmax(-1)[..., 1].cpu().numpy()
            hidden = resid[t, -1].cpu().numpy()
            inner = resid[t, :-1].cpu().numpy()  # [block_layers - 1, K, B, d]: the heat-map's other rows
            for m in range(k):
                y, yes = correct[t, m], says_yes[m]
                put("task_acc", t, m, y.mean())
                put("floor_acc", t, m, trivial_floor(probs[m]))
                put("score_correct_frac", t, m, y[score].mean())
                put("sv_acc", t, m, (yes[score] == y[score]).mean())
                put("sv_f1", t, m, f1(yes[score], y[score]))
                put("sv_auroc", t, m, auroc(y[score], p_yes[m, score]))
                real = probe_scores(hidden[m, fit], y[fit], hidden[m, score], y[score])
                shuffled_labels = np.random.default_rng(stream_seed(seeds[m], f"shuffle-{t}")).permutation(y[fit])
                shuffled = probe_scores(hidden[m, fit], shuffled_labels, hidden[m, score], y[score])
                for name, value in real.items():
                    put(f"probe_{name}", t, m, value)
                put("probe_auroc_shuffled", t, m, shuffled["auroc"])
                put(f"probe_auroc_layer{len(inner) + 1}", t, m, real["auroc"])
                for i, h in enumerate(inner):
                    layer = probe_scores(h[m, fit], y[fit], h[m, score], y[score])
                    put(f"probe_auroc_layer{i + 1}", t, m, layer["auroc"])
        out["gap_acc"] = out["probe_acc"] - out["sv_acc"]
        out["gap_f1"] = out["probe_f1"] - out["sv_f1"]
        out["gap_auroc"] = out["probe_auroc"] - out["sv_auroc"]
        out |= injection(cfg, model, prompts(answers[-1]), correct[-1], seeds, fit, score)
    return out


def injection(
    cfg: Config,
    model: LoopedTransformer,
    tokens: Tensor,
    correct: np.ndarray,
    seeds: list[int],
    fit: slice,
    score: slice,
) -> dict[str, np.ndarray]:
    """Flip rates of the final verdict, {flip_true|flip_random[_x<scale>]: [L, K]}: the difference of means
    (right − wrong, fit half) at loop t, or a random direction of its norm, added at loop t (score half)."""
    n, loops, k = cfg.n_nodes, cfg.loops, len(seeds)
    _, verify, resid = _resid_cache(model, tokens, n)
    base = (verify[-1].argmax(-1) == 1)[:, score]
    right = torch.as_tensor(correct[:, fit], device=resid.device)
    scored = tokens[:, score]
    out: dict[str, np.ndarray] = {}
    claimed = min(cfg.injection_scales)
    for t in range(loops):
        h = resid[t, -1][:, fit]  # [K, B_fit, d]
        counts = right.sum(1, keepdim=True), (~right).sum(1, keepdim=True)
        usable = ((counts[0] > 0) & (counts[1] > 0)).squeeze(1).cpu().numpy()
        mean_right = (h * right[..., None]).sum(1) / counts[0].clamp(min=1)
        mean_wrong = (h * ~right[..., None]).sum(1) / counts[1].clamp(min=1)
        direction = mean_right - mean_wrong  # [K, d]
        noise = torch.stack([torch.randn(h.shape[-1], generator=generator(s, f"injection-{t}")) for s in seeds]).to(
            direction.device
        )
        random = noise / noise.norm(dim=-1, keepdim=True) * direction.norm(dim=-1, keepdim=True)
        for scale in cfg.injection_scales:
            for kind, vec in (("true", direction), ("random", random)):
                flips = (inject(model, scored, n, t, scale * vec) != base).float().mean(-1).cpu().numpy()
                flips = np.where(usable, flips, np.nan)
                out.setdefault(f"flip_{kind}_x{scale:g}", np.full((loops, k), np.nan))[t] = flips
                if scale == claimed:
                    out.setdefault(f"flip_{kind}", np.full((loops, k), np.nan))[t] = flips
    return out


def train(cfg: Config, ctx: RunContext, model: EnsembleTransformer, name: str, title: str) -> TrainLog:
    """Train `model` (one member per seed) on both formats, checkpointed under `name`; leave it in eval mode."""
    seeds = cfg.seed_list
    with ctx.progress(title, cfg.steps) as update:
        log = train_ensemble(
            model,
            Batches(cfg, seeds, cfg.device),
            functools.partial(loss_fn, cfg.n_nodes),
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            evaluate=evaluator(cfg, seeds, cfg.device),
            eval_every=cfg.eval_every,
            on_step=update,
            checkpoint=ctx.checkpoint(name),
        )
    model.eval()
    return log


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    """Train the looped ensemble (one member per seed) on both formats; then every per-loop metric."""
    seeds = cfg.seed_list
    model = build(cfg, seeds)
    members = [(ARM, s) for s in seeds]
    log = train(cfg, ctx, model, "looped", f"looped-introspection · {len(seeds)} seeds, {cfg.loops} loops")
    ctx.keep_model("looped", model, members, kwargs=model.kwargs)
    frames = log_rows(members, log)
    for name, values in measure_loops(cfg, model, seeds).items():
        for t in range(cfg.loops):
            rows = [(arm(t + 1), s) for s in seeds]
            frames.append(member_rows(rows, [cfg.steps], values[t][None], "test", name))
    if cfg.baselines:
        for flat in FLAT_ARMS:
            frames += measure_baseline(cfg, ctx, flat)
    return pd.concat(frames, ignore_index=True)


def measure_baseline(cfg: Config, ctx: RunContext, name: str) -> list[pd.DataFrame]:
    """Train a non-looped baseline on the same batches and loss (one readout), keep it, measure it."""
    seeds = cfg.seed_list
    model = build_flat(cfg, seeds, name)
    members = [(name, s) for s in seeds]
    log = train(cfg, ctx, model, name, f"looped-introspection · {name} ({flat_layers(cfg, name)} layers)")
    ctx.keep_model(name, model, members)
    frames = log_rows(members, log)
    for metric, values in measure_flat(cfg, model, seeds).items():
        frames.append(member_rows(members, [cfg.steps], values[None], "test", metric))
    return frames


# --- claims --------------------------------------------------------------------------------------------


def loop_arms(t: Table) -> list[str]:
    return sorted((a for a in t if a.startswith("loop-")), key=lambda a: int(a.removeprefix("loop-")))


def slope(t: Table, metric: str) -> dict[str, Any]:
    """The per-seed least-squares slope of `metric` against the loop, as a cell over seeds."""
    arms = loop_arms(t)
    if len(arms) < 2:
        raise KeyError(f"{metric} at 2 loops or more")
    x = np.array([int(a.removeprefix("loop-")) for a in arms], dtype=float)
    y = np.array([[np.nan if v is None else v for v in t[a][metric]["values"]] for a in arms], dtype=float)
    slopes = [np.polyfit(x, col, 1)[0] if np.isfinite(col).all() else np.nan for col in y.T]
    return describe(slopes)


def paired(t: Table, a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any]:
    """Per-seed difference of cell a = (arm, metric) minus cell b."""
    va = np.array(t[a[0]][a[1]]["values"], dtype=float)
    vb = np.array(t[b[0]][b[1]]["values"], dtype=float)
    return describe(va - vb)


def _pct(cell: dict[str, Any]) -> str:
    """`pct`, or "n/a" where no seed has a value (e.g. every answer right: no probe, no direction)."""
    return "n/a" if cell["mean"] is None else pct(cell)


def _points(cell: dict[str, Any]) -> str:
    return "n/a" if cell["mean"] is None else points(cell)


def _num(cell: dict[str, Any]) -> str:
    return "n/a" if cell["mean"] is None else f"{cell['mean']:.2f}"


def _diff(cell: dict[str, Any]) -> str:
    """A difference of AUROCs with its CI: '+0.082 (95% CI +0.017 to +0.148)'."""
    if cell["mean"] is None:
        return "n/a"
    lo, hi = cell["ci95"]
    return f"{cell['mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"


def _sign(cell: dict[str, Any]) -> bool | None:
    """True: CI above 0; False: CI below 0; None: it straddles 0 (or cannot be told)."""
    return True if above(cell) else False if below(cell) else None


def _probe_beats_words(t: Table) -> tuple[bool | None, str]:
    arms = loop_arms(t)
    if not arms:
        raise KeyError("loop-1")
    outcomes = [_sign(t[a]["gap_acc"]) for a in arms]
    parts = [f"{a}: {_points(t[a]['gap_acc'])}" for a in arms]
    return every(outcomes), "P_RR − P_SV (accuracy) — " + "; ".join(parts)


def _gap_shrinks(t: Table) -> tuple[bool | None, str]:
    s = slope(t, "gap_auroc")
    held = None if _sign(s) is None else not _sign(s)
    acc = slope(t, "gap_acc") if all("gap_acc" in t[a] for a in loop_arms(t)) else None
    also = "" if acc is None else f" (accuracy gap, not judged: {_points(acc)} per loop)"
    return held, f"slope of the AUROC gap P_RR − P_SV against loops {_diff(s)} per loop{also}"


def _probe_flat(t: Table) -> tuple[bool | None, str]:
    s = slope(t, "probe_acc")
    held = False if above(s) else True if below(s, FLAT_SLOPE) else None
    return held, f"slope of probe accuracy against loops {_points(s)} per loop (flat: below +{100 * FLAT_SLOPE:.0f})"


def _last_loop_injection(t: Table) -> tuple[bool | None, str]:
    arms = loop_arms(t)
    if len(arms) < 2:
        raise KeyError("flip_true at 2 loops or more")
    last = arms[-1]
    earlier = [_sign(paired(t, (last, "flip_true"), (a, "flip_true"))) for a in arms[:-1]]
    control = paired(t, (last, "flip_true"), (last, "flip_random"))
    parts = [f"{a}: {_pct(t[a]['flip_true'])} (random {_pct(t[a]['flip_random'])})" for a in arms]
    evidence = "flip rate by injection loop — " + "; ".join(parts) + f"; last − random {_points(control)}"
    return every([*earlier, _sign(control)]), evidence


def learned(t: Table) -> tuple[bool, str]:
    """Has the model learned the task? Last-loop task accuracy minus the trivial floor (per seed), its 95%
    CI above LEARNED_MARGIN. Without it every claim is about a model that guesses, so none is judged."""
    arms = loop_arms(t)
    if not arms:
        raise KeyError("loop-1")
    last = arms[-1]
    lead = paired(t, (last, "task_acc"), (last, "floor_acc"))
    ok = bool(above(lead, LEARNED_MARGIN)) if lead["mean"] is not None else False
    return ok, (f"{last} task accuracy {_pct(t[last]['task_acc'])} against the trivial floor "
                f"{_pct(t[last]['floor_acc'])} (start node or commonest answer): lead {_points(lead)}, "
                f"needs a 95% CI above +{100 * LEARNED_MARGIN:.0f}")  # fmt: skip


def guarded(check: Any) -> Any:
    """`check`, judged only when the model has `learned` the task; else undetermined, saying why."""

    @functools.wraps(check)
    def judge(t: Table) -> tuple[bool | None, str]:
        ok, why = learned(t)
        if not ok:
            return None, f"the model has not learned the task: {why}"
        return check(t)

    return judge


CLAIMS = (
    Claim("The probe reads correctness better than the model says it: P_RR > P_SV (accuracy) at every loop, "
          "each gap's 95% CI above 0", guarded(_probe_beats_words), min_seeds=5),
    Claim("The gap P_RR − P_SV shrinks with loops, in AUROC (the probe's against that of the model's own P(Y) "
          "as a score; free of the base rate, unlike accuracy): its per-seed slope against loops has a 95% CI "
          "below 0", guarded(_gap_shrinks), min_seeds=5),
    Claim("The probe does not improve with loops: the per-seed slope of probe accuracy has a 95% CI below "
          f"+{100 * FLAT_SLOPE:.0f} point per loop (and not above 0)", guarded(_probe_flat), min_seeds=5),
    Claim("Injection is noticed mainly at the last loop: the true direction flips more verdicts there than at "
          "every earlier loop and than a random direction of its norm (paired 95% CIs above 0)",
          guarded(_last_loop_injection), min_seeds=5),
)  # fmt: skip


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    out = []
    for a in loop_arms(t):
        c = t[a]
        if c["task_acc"]["mean"] is None:
            continue
        out.append(
            f"{a}: task {_pct(c['task_acc'])}, self-verification {_pct(c['sv_acc'])}, probe {_pct(c['probe_acc'])} "
            f"(AUROC {_num(c['probe_auroc'])} against self-verification's {_num(c.get('sv_auroc', {'mean': None}))}, "
            "shuffled labels "
            f"{_num(c['probe_auroc_shuffled'])}), flip rate {_pct(c['flip_true'])} against "
            f"{_pct(c['flip_random'])} for a random direction."
        )
    out.append("The probe and self-verification are scored on the same held-out half; the probe is fit on the other.")
    base = [(a, t[a]["score_correct_frac"]["mean"]) for a in loop_arms(t) if "score_correct_frac" in t[a]]
    if base and all(p is not None for _, p in base):
        floors = ", ".join(f"{a} {100 * max(p, 1 - p):.0f}%" for a, p in base)
        out.append(
            f"Accuracy has a floor that moves with the task: always saying the majority verdict scores {floors}. "
            "A gap in accuracy that shrinks as answers approach 50% right may be this floor moving; AUROC has none."
        )
    return out


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    t = summary["table"]
    arms = loop_arms(t)
    if not arms:
        return {}
    x = [int(a.removeprefix("loop-")) for a in arms]
    seeds = len(summary["seeds"])

    def band(ax: Any, metric: str, label: str, color: str) -> None:
        cells = [t[a][metric] for a in arms]
        mean = np.array([np.nan if c["mean"] is None else c["mean"] for c in cells], dtype=float)
        lo, hi = (
            np.array([np.nan if c["ci95"][i] is None else c["ci95"][i] for c in cells], dtype=float) for i in (0, 1)
        )
        ax.plot(x, mean, "o-", color=color, label=label)
        ax.fill_between(x, lo, hi, color=color, alpha=0.2)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    lines = (
        ("task_acc", "P_TP task", "C0"),
        ("sv_acc", "P_SV self-verification", "C1"),
        ("probe_acc", "P_RR probe", "C2"),
        ("probe_auroc_shuffled", "probe AUROC, shuffled", "grey"),
    )
    for metric, label, color in lines:
        band(axes[0], metric, label, color)
    axes[0].set(xlabel="loop", ylabel="accuracy", title="Per loop", ylim=(0, 1.02))
    band(axes[1], "gap_acc", "P_RR − P_SV, accuracy", "C3")
    if all("gap_auroc" in t[a] for a in arms):
        band(axes[1], "gap_auroc", "P_RR − P_SV, AUROC", "C5")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set(xlabel="loop", ylabel="probe minus self-verification", title="The gap")
    band(axes[2], "flip_true", "difference of means", "C4")
    band(axes[2], "flip_random", "random, same norm", "grey")
    axes[2].set(xlabel="injection loop", ylabel="verdict flip rate", title="Concept injection", ylim=(0, 1.02))
    for ax in axes:
        ax.set_xticks(x)
        ax.legend(fontsize=7)
    fig.tight_layout()
    scale = min(summary["config"]["injection_scales"])
    caption = (
        f"Left: task accuracy, self-verification accuracy and probe accuracy after each loop, and the AUROC of the "
        f"probe fit on shuffled labels (chance 0.5); middle: probe minus self-verification, in accuracy and in "
        f"AUROC (self-verification's score: its P(Y)); right: the rate "
        f"at which the final Y/N verdict flips when the difference-of-means direction (times {scale:g}) or a random "
        f"direction of its norm is added after that loop. Lines: means over {seeds} seeds; bands: 95% t-intervals."
    )
    return {"per_loop": captioned(fig, caption), **probe_heatmap(t, arms, seeds)}


def probe_heatmap(t: Table, arms: list[str], seeds: int) -> dict[str, Any]:
    """The probe's AUROC by loop and layer inside the block (one row per layer; one row if the block has one)."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    layers = sorted(int(m.removeprefix("probe_auroc_layer")) for m in t[arms[0]] if m.startswith("probe_auroc_layer"))
    if not layers:
        return {}
    grid = np.array([[t[a][f"probe_auroc_layer{i}"]["mean"] for a in arms] for i in layers], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(arms), 1.4 + 0.6 * len(layers)))
    image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, "–" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8, color="w")
    ax.set(
        xticks=range(len(arms)),
        xticklabels=[a.removeprefix("loop-") for a in arms],
        xlabel="loop",
        yticks=range(len(layers)),
        yticklabels=layers,
        ylabel="layer in the block",
        title="Probe AUROC",
    )
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    caption = (
        "AUROC of the correctness probe fit on the residual stream at `?` after each layer of the shared block, "
        f"in each loop (the top row is the loop's output, the probe of the per-loop figure); means over {seeds} "
        "seeds, 0.5 is chance."
    )
    return {"probe_heatmap": captioned(fig, caption)}


STUDY = Study(
    name="looped-introspection",
    title="does looping bring a transformer's words closer to what it knows? (B1)",
    source="seeds/001 (Chen, Liu, Shao 2026, 'Loop as a Bridge'), per-loop P_TP, P_SV, P_RR and injection",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=(),
    measure=measure,
    claims=CLAIMS,
    headline=(("loop-1", "task_acc"), ("loop-4", "task_acc"), ("loop-4", "gap_acc"), ("loop-4", "flip_true")),
    figures=figures,
    notes=notes,
    point_metrics=("gap_acc", "gap_f1"),
    plain_metrics=("gap_auroc",),
)
