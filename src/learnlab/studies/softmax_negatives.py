"""A5 `softmax-negatives` — the gradient of softmax is a negation operator.

Source: the learning-by-negation article (seeds/000), section 7. Claims: for softmax, ∂P_i/∂s_j =
δ_ij·P_i − P_i·P_j, so raising one logit lowers every other probability in proportion to it — close
competitors (high P_j, near in the embedding space: "orange" for "apple") are pushed away, far ones
("galaxy") ignored; temperature sets how hard the boundaries are; in word2vec's negative sampling, the
negatives are random at first, but as similar words come together the random draws start to hit hard
negatives — an implicit easy → hard curriculum.

Two of these are identities, not findings: the Jacobian's closed form, and a negative's gradient in
negative sampling, ∂L/∂v⁻ = σ(u·v⁻)·u, proportional to its probability by construction. The lab
checks them as sanity lines. The claims it tests are the ones that could fail: that near competitors
receive more gradient than far ones (which needs the trained geometry to make them probable), that
the hard share rises because similar words come together (not because the whole space crowds into one
direction), and the temperature ordering.

Method. (a) Arm `jacobian`: per seed, 8 random logit vectors of 10 classes (N(0, 3²), float64); the
closed form diag(P) − P·Pᵀ against `torch.autograd.functional.jacobian` of softmax — metric
`max_abs_error` — and the cross-entropy gradient P − onehot against autograd — `ce_grad_error`;
`max_offdiag` is the largest off-diagonal entry (≤ 0: a logit's rise lowers every other probability).
(b) Arm `skipgram`: a toy grammar (8 clusters of 8 interchangeable words — people, animals, foods,
places, two verb kinds, adjectives, times — plus 5 function words; 6 sentence templates) generates each
seed's corpus of 2000 sentences. A skip-gram model with negative sampling (input and output embeddings
of dimension 32, window 2, 5 negatives per pair drawn from the unigram distribution to the power 0.75,
Adam lr 0.01, batches of 256 pairs, 1500 steps; one member per seed, all seeds one ensemble) trains on
it. On a fixed probe of 2000 (center, context) pairs and their sampled negatives: `hard_share_start` /
`hard_share_end`, the share of negatives whose output vector has cosine similarity above 0.5 with the
positive context word's, before and after training (`hard_share` over training in the curves);
`hard_share_far_start` / `_end` (`hard_share_far` in the curves), the same share among the negatives
from another cluster than the context's — the control: a rise there is the space crowding together,
not similar words coming together; `same_cluster_share`, the share of negatives drawn from the
positive's own cluster (what a perfect model would call hard); `grad_near_far_ratio_start` / `_end`,
the mean norm of the gradient a near negative's output vector receives (same cluster as the context,
another word) over a far one's (another cluster); `grad_prob_corr`, the Pearson correlation, over the
probe's negatives, between the norm of that gradient and the negative's probability σ(u·v) (near 1 by
construction: only ‖u‖ varies); `grad_top10_share_start` / `_end`, the share of all negative-gradient
mass received by the 10% most probable negatives. (c) Arms `temp-0.5`, `temp-1`, `temp-2` and
`random`: the trained skip-gram read as a fill-in-the-blank model — a word x fills a blank with
probability softmax(v_x · mean of the window's input vectors / T). For 1000 blanks per seed, 20
samples each at each temperature T: `neighbour_rate`, the share of wrong samples that are among the
right word's 5 nearest neighbours (cosine of input embeddings), and `wrong_share`, the share of samples
that are wrong; arm `random` draws a uniformly random wrong word (the reference rate, 5/(V−1)).
Samples at all temperatures share their uniform draws (a paired design), and every arm's seed is the
same skip-gram model.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from learnlab.config import StudyConfig, check_arms
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.engine.train import train_ensemble
from learnlab.protocols.measurements import member_rows
from learnlab.reporting.stats import Table, above, describe, points
from learnlab.studies.base import Claim, Study, every
from learnlab.tasks import grammar as task

TEMPERATURES = {"temp-0.5": 0.5, "temp-1": 1.0, "temp-2": 2.0}
ARMS = ("jacobian", "skipgram", *TEMPERATURES, "random")
TRAINED = ("skipgram", *TEMPERATURES, "random")  # arms that need the trained skip-gram
PAIR_CHUNK = 100  # training steps of pairs drawn at once per seed (part of the data stream's definition)
DECILES = 10


class Config(StudyConfig):
    seeds: int = Field(20, ge=1)
    n_logits: int = Field(10, ge=2, description="classes of the random logit vectors in (a)")
    n_vectors: int = Field(8, ge=1, description="random logit vectors per seed in (a)")
    logit_scale: float = Field(3.0, gt=0)
    cluster_size: int = Field(8, ge=2, description="interchangeable words per content cluster")
    sentences: int = Field(2000, gt=0, description="corpus sentences per seed")
    window: int = Field(2, ge=1)
    embed_dim: int = Field(32, gt=0)
    negatives: int = Field(5, ge=1, description="negatives per (center, context) pair")
    ns_power: float = Field(0.75, ge=0, description="negatives ~ unigram ** ns_power")
    batch_size: int = Field(256, gt=0)
    steps: int = Field(1500, gt=0)
    lr: float = Field(0.01, gt=0)
    hard_threshold: float = Field(0.5, gt=-1, lt=1, description="cosine above which a negative is hard")
    probe_pairs: int = Field(2000, gt=0)
    eval_every: int = Field(100, ge=0, description="steps between hard-share evaluations (0: off)")
    blanks: int = Field(1000, gt=0, description="fill-in-the-blank positions per seed in (c)")
    samples: int = Field(20, gt=0, description="samples per blank and temperature")
    neighbours: int = Field(5, ge=1, description="a wrong word is near if among the right word's top-k")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        return check_arms(arms, ARMS)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": 3, "sentences": 300, "steps": 150, "eval_every": 50, "probe_pairs": 300, "blanks": 200},
    "laptop": {},  # 20 seeds: well under a minute on 2 cores
    "paper": {"seeds": 50, "sentences": 10000, "embed_dim": 64, "steps": 5000, "blanks": 5000},
}


# --- (a) the softmax Jacobian ----------------------------------------------------------------------


def softmax_jacobian(logits: Tensor) -> Tensor:
    """∂P_i/∂s_j = δ_ij·P_i − P_i·P_j for a logit vector [n] (the closed form the article states)."""
    p = torch.softmax(logits, dim=-1)
    return torch.diag(p) - torch.outer(p, p)


def jacobian_errors(cfg: Config, seed: int) -> dict[str, float]:
    gen = generator(seed, "logits")
    logits = cfg.logit_scale * torch.randn(cfg.n_vectors, cfg.n_logits, generator=gen, dtype=torch.float64)
    labels = torch.randint(cfg.n_logits, (cfg.n_vectors,), generator=gen)
    jac_err = ce_err = 0.0
    offdiag = -float("inf")
    for z, y in zip(logits, labels, strict=True):
        closed = softmax_jacobian(z)
        auto = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, dim=-1), z)
        jac_err = max(jac_err, float((closed - auto).abs().max()))
        offdiag = max(offdiag, float(closed[~torch.eye(cfg.n_logits, dtype=torch.bool)].max()))
        leaf = z.clone().requires_grad_()
        (grad,) = torch.autograd.grad(F.cross_entropy(leaf[None], y[None]), leaf)
        ce_err = max(ce_err, float((grad - (torch.softmax(z, -1) - F.one_hot(y, cfg.n_logits))).abs().max()))
    return {"max_abs_error": jac_err, "ce_grad_error": ce_err, "max_offdiag": offdiag}


# --- (b) skip-gram with negative sampling ----------------------------------------------------------


class EnsembleSkipGram(nn.Module):
    """K skip-gram models: input and output embeddings [K, V, d]; member k reads rows of its own tables."""

    def __init__(self, k: int, vocab_size: int, dim: int):
        super().__init__()
        self.k, self.vocab_size = k, vocab_size
        self.inp = nn.Parameter(torch.empty(k, vocab_size, dim))
        self.out = nn.Parameter(torch.empty(k, vocab_size, dim))

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """Both tables N(0, 1/d) from member k's generator (both random, so cosines exist from step 0)."""
        std = self.inp.shape[-1] ** -0.5
        for k, gen in enumerate(generators):
            self.inp[k].normal_(0.0, std, generator=gen)
            self.out[k].normal_(0.0, std, generator=gen)

    def _rows(self, table: Tensor, words: Tensor) -> Tensor:
        """table[k, words[k, ...]] for every member: words [K, ...] -> [K, ..., d]."""
        offset = torch.arange(self.k, device=words.device).view(-1, *[1] * (words.dim() - 1)) * self.vocab_size
        return F.embedding(words + offset, table.reshape(-1, table.shape[-1]))

    def vectors(self, centers: Tensor, contexts: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self._rows(self.inp, centers), self._rows(self.out, contexts), self._rows(self.out, negatives)


def sgns_loss(u: Tensor, v_pos: Tensor, v_neg: Tensor) -> Tensor:
    """Per-member mean of −log σ(u·v⁺) − Σ log σ(−u·v⁻) over the batch: u, v_pos [K, B, d], v_neg [K, B, n, d]."""
    pos = F.logsigmoid((u * v_pos).sum(-1))
    neg = F.logsigmoid(-(u[:, :, None] * v_neg).sum(-1)).sum(-1)
    return -(pos + neg).mean(dim=1)


class Corpus:
    """One seed's corpus: sentences, skip-gram pairs, and the negative-sampling distribution."""

    def __init__(self, cfg: Config, grammar: task.Grammar, seed: int):
        self.tokens = task.sentences(grammar, cfg.sentences, generator(seed, "corpus"))
        self.pairs = task.skipgram_pairs(self.tokens, cfg.window)
        self.noise = task.unigram(self.tokens, grammar.vocab_size) ** cfg.ns_power
        self.noise /= self.noise.sum()

    def draw(self, n: int, negatives: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """n random pairs [n, 2] and their negatives [n, negatives]."""
        pairs = self.pairs[torch.randint(len(self.pairs), (n,), generator=gen)]
        neg = torch.multinomial(self.noise, n * negatives, replacement=True, generator=gen).view(n, negatives)
        return pairs, neg


class PairBatches:
    """Every member's batches; steps [c·N, (c+1)·N) come from generator (seed, "pairs{c}"): a pure function
    of the step, so a resumed run redraws exactly."""

    def __init__(self, cfg: Config, seeds: list[int], corpora: list[Corpus]):
        self.cfg, self.seeds, self.corpora = cfg, seeds, corpora
        self.chunk = -1

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        c, b = step // PAIR_CHUNK, self.cfg.batch_size
        if c != self.chunk:
            draws = [
                corpus.draw(PAIR_CHUNK * b, self.cfg.negatives, generator(seed, f"pairs{c}"))
                for seed, corpus in zip(self.seeds, self.corpora, strict=True)
            ]
            self.chunk = c
            self.pairs = torch.stack([p.view(PAIR_CHUNK, b, 2) for p, _ in draws]).to(self.cfg.device)
            self.negs = torch.stack([n.view(PAIR_CHUNK, b, -1) for _, n in draws]).to(self.cfg.device)
        i = step % PAIR_CHUNK
        return self.pairs[:, i], self.negs[:, i]


def sgns_per_model(model: EnsembleSkipGram, batch: tuple[Tensor, Tensor]) -> Tensor:
    pairs, negs = batch
    return sgns_loss(*model.vectors(pairs[..., 0], pairs[..., 1], negs))


def neighbourhoods(cluster: Tensor, pairs: Tensor, negs: Tensor) -> dict[str, Tensor]:
    """Per negative [K, P, n]: `near` (the context's cluster, another word: a genuine near-miss) and `far`
    (another cluster). A negative that is the context word itself is neither."""
    same = cluster[negs] == cluster[pairs[..., 1]][..., None]
    return {"near": same & (negs != pairs[..., 1, None]), "far": ~same}


def hard_shares(
    model: EnsembleSkipGram, pairs: Tensor, negs: Tensor, far: Tensor, threshold: float
) -> dict[str, Tensor]:
    """Per member: the share of negatives whose output vector's cosine with the positive context's exceeds
    threshold (`hard_share`), and the same share among far negatives only (`hard_share_far`, the control)."""
    _, v_pos, v_neg = model.vectors(pairs[..., 0], pairs[..., 1], negs)
    hard = (F.cosine_similarity(v_neg, v_pos[:, :, None], dim=-1) > threshold).float()
    far = far.float()
    return {
        "hard_share": hard.flatten(1).mean(dim=1),
        "hard_share_far": (hard * far).flatten(1).sum(1) / far.flatten(1).sum(1).clamp(min=1),
    }


def negative_gradients(model: EnsembleSkipGram, pairs: Tensor, negs: Tensor) -> tuple[Tensor, Tensor]:
    """Per negative occurrence: its probability σ(u·v) and the norm of the loss gradient its output vector
    receives (∂L/∂v⁻ = σ(u·v⁻)·u for this one term). Both [K, P·n]."""
    u, v_pos, v_neg = model.vectors(pairs[..., 0], pairs[..., 1], negs)
    u, v_pos, v_neg = u.detach(), v_pos.detach(), v_neg.detach().requires_grad_()
    (grad,) = torch.autograd.grad(sgns_loss(u, v_pos, v_neg).sum(), v_neg)
    prob = torch.sigmoid((u[:, :, None] * v_neg).sum(-1))
    return prob.detach().flatten(1), grad.norm(dim=-1).flatten(1)


def gradient_stats(prob: Tensor, grad: Tensor, near: Tensor, far: Tensor) -> dict[str, Tensor]:
    """Per member: Pearson r(grad, prob), the gradient share of the 10% most probable negatives, and the
    mean gradient of a near negative over a far one's (near, far: [K, P·n] masks)."""
    pc, gc = prob - prob.mean(1, keepdim=True), grad - grad.mean(1, keepdim=True)
    corr = (pc * gc).sum(1) / (pc.norm(dim=1) * gc.norm(dim=1))
    top = prob.shape[1] // DECILES
    order = prob.argsort(dim=1, descending=True, stable=True)
    top_share = grad.gather(1, order[:, :top]).sum(1) / grad.sum(1)
    near, far = near.float(), far.float()
    ratio = ((grad * near).sum(1) / near.sum(1)) / ((grad * far).sum(1) / far.sum(1))
    return {"grad_prob_corr": corr, "grad_top10_share": top_share, "grad_near_far_ratio": ratio}


def decile_means(prob: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """Mean probability and mean gradient norm in each probability decile, per member: [K, 10] each."""
    order = prob.argsort(dim=1, stable=True)
    bins = torch.tensor_split(order, DECILES, dim=1)
    return (
        torch.stack([prob.gather(1, b).mean(1) for b in bins], 1),
        torch.stack([grad.gather(1, b).mean(1) for b in bins], 1),
    )


# --- (c) temperature ------------------------------------------------------------------------------


def blanks(cfg: Config, grammar: task.Grammar, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Fresh sentences with one blank each: (target word [N], window words [N, 2w], window mask [N, 2w])."""
    gen = generator(seed, "blanks")
    tokens = task.sentences(grammar, cfg.blanks, gen)
    lengths = (tokens != task.PAD).sum(1)
    pos = (torch.rand(cfg.blanks, generator=gen) * lengths).long()
    offsets = torch.tensor([o for o in range(-cfg.window, cfg.window + 1) if o])
    at = pos[:, None] + offsets
    ok = (at >= 0) & (at < lengths[:, None])
    words = tokens.gather(1, at.clamp(0, tokens.shape[1] - 1))
    return tokens.gather(1, pos[:, None]).squeeze(1), torch.where(ok, words, 0), ok


def nearest(emb: Tensor, k: int) -> Tensor:
    """[V, V] bool: x is among word w's k nearest neighbours by cosine (w itself excluded)."""
    unit = F.normalize(emb, dim=-1)
    sim = unit @ unit.T
    sim.fill_diagonal_(-float("inf"))
    near = torch.zeros_like(sim, dtype=torch.bool)
    return near.scatter_(1, sim.topk(k, dim=1).indices, True)


def temperature_sweep(
    model: EnsembleSkipGram, cfg: Config, seeds: list[int], grammar: task.Grammar
) -> dict[str, dict[str, Tensor]]:
    """{arm: {"neighbour_rate", "wrong_share"}: [K]} for every temperature arm and `random`."""
    out: dict[str, dict[str, list[float]]] = {
        a: {"neighbour_rate": [], "wrong_share": []} for a in (*TEMPERATURES, "random")
    }
    v = grammar.vocab_size
    for k, seed in enumerate(seeds):
        target, window, ok = blanks(cfg, grammar, seed)
        inp, outv = model.inp[k].detach().cpu().double(), model.out[k].detach().cpu().double()
        context = (inp[window] * ok[..., None]).sum(1) / ok.sum(1, keepdim=True)
        scores = context @ outv.T  # [N, V]
        near = nearest(inp, cfg.neighbours)[target]  # [N, V]: neighbours of the right word
        gen = generator(seed, "sampling")
        u = torch.rand(cfg.blanks, cfg.samples, generator=gen, dtype=torch.float64)
        for arm, temp in TEMPERATURES.items():
            cdf = torch.softmax(scores / temp, dim=-1).cumsum(-1)
            x = torch.searchsorted(cdf, u).clamp(max=v - 1)
            wrong = x != target[:, None]
            is_near = near.gather(1, x) & wrong
            out[arm]["neighbour_rate"].append(float(is_near.sum() / wrong.sum().clamp(min=1)))
            out[arm]["wrong_share"].append(float(wrong.double().mean()))
        r = torch.randint(v - 1, (cfg.blanks, cfg.samples), generator=gen)
        x = r + (r >= target[:, None]).long()  # uniform over the V − 1 wrong words
        out["random"]["neighbour_rate"].append(float(near.gather(1, x).double().mean()))
        out["random"]["wrong_share"].append(1.0)
    return {a: {m: torch.tensor(vals) for m, vals in cells.items()} for a, cells in out.items()}


# --- protocol --------------------------------------------------------------------------------------


def measure(cfg: Config, ctx: RunContext) -> pd.DataFrame:
    arms = cfg.arms or list(ARMS)
    seeds = cfg.seed_list
    frames: list[pd.DataFrame] = []
    if "jacobian" in arms:
        errors = [jacobian_errors(cfg, s) for s in seeds]
        members = [("jacobian", s) for s in seeds]
        for metric in errors[0]:
            frames.append(member_rows(members, [0], [[e[metric] for e in errors]], "test", metric))
    if not any(a in TRAINED for a in arms):
        return pd.concat(frames, ignore_index=True)

    grammar = task.toy_grammar(cfg.cluster_size)
    corpora = [Corpus(cfg, grammar, s) for s in seeds]
    probes = [
        c.draw(cfg.probe_pairs, cfg.negatives, generator(s, "probe")) for s, c in zip(seeds, corpora, strict=True)
    ]
    probe_pairs = torch.stack([p for p, _ in probes]).to(cfg.device)
    probe_negs = torch.stack([n for _, n in probes]).to(cfg.device)
    cluster = grammar.cluster_of.to(cfg.device)
    same_cluster = (cluster[probe_negs] == cluster[probe_pairs[..., 1]][..., None]).float().flatten(1).mean(1)
    kinds = neighbourhoods(cluster, probe_pairs, probe_negs)
    near, far = kinds["near"].flatten(1), kinds["far"].flatten(1)

    model = EnsembleSkipGram(len(seeds), grammar.vocab_size, cfg.embed_dim).to(cfg.device)
    model.reset_parameters([generator(s, "init", cfg.device) for s in seeds])

    def curve(m: EnsembleSkipGram) -> dict[str, Tensor]:
        with torch.no_grad():
            return hard_shares(m, probe_pairs, probe_negs, kinds["far"], cfg.hard_threshold)

    shares_start = curve(model)
    grads_start = gradient_stats(*negative_gradients(model, probe_pairs, probe_negs), near, far)
    with ctx.progress(f"softmax-negatives · {len(seeds)} skip-gram models", cfg.steps) as update:
        log = train_ensemble(
            model,
            PairBatches(cfg, seeds, corpora),
            sgns_per_model,
            steps=cfg.steps,
            lr=cfg.lr,
            evaluate=curve,
            eval_every=cfg.eval_every,
            on_step=update,
            checkpoint=ctx.checkpoint("skipgram"),
        )
    built = {"k": len(seeds), "vocab_size": grammar.vocab_size, "dim": cfg.embed_dim}
    ctx.keep_model("skipgram", model, [("skipgram", s) for s in seeds], kwargs=built, members_kwarg="k")
    prob, grad = negative_gradients(model, probe_pairs, probe_negs)
    grads_end = gradient_stats(prob, grad, near, far)

    members = [("skipgram", s) for s in seeds]
    if "skipgram" in arms:
        frames.append(member_rows(members, list(range(1, cfg.steps + 1)), log.losses.numpy(), "train", "loss"))
        steps = [0] + [s for s, _ in log.evals]
        for metric, start in shares_start.items():
            values = np.stack([start.cpu().numpy()] + [m[metric].numpy() for _, m in log.evals])
            frames.append(member_rows(members, steps, values, "eval", metric))
        shares_end = log.evals[-1][1]
        final = {
            "hard_share_start": shares_start["hard_share"],
            "hard_share_end": shares_end["hard_share"],
            "hard_share_far_start": shares_start["hard_share_far"],
            "hard_share_far_end": shares_end["hard_share_far"],
            "same_cluster_share": same_cluster,
            "grad_prob_corr": grads_end["grad_prob_corr"],
            "grad_top10_share_start": grads_start["grad_top10_share"],
            "grad_top10_share_end": grads_end["grad_top10_share"],
            "grad_near_far_ratio_start": grads_start["grad_near_far_ratio"],
            "grad_near_far_ratio_end": grads_end["grad_near_far_ratio"],
        }
        frames += [member_rows(members, [cfg.steps], v.cpu().numpy()[None], "test", m) for m, v in final.items()]
        prob_d, grad_d = decile_means(prob, grad)
        for d in range(DECILES):
            frames.append(
                member_rows(members, [cfg.steps], prob_d[:, d].cpu().numpy()[None], "probe", f"prob_d{d + 1}")
            )
            frames.append(
                member_rows(members, [cfg.steps], grad_d[:, d].cpu().numpy()[None], "probe", f"grad_d{d + 1}")
            )
    sweep = temperature_sweep(model, cfg, seeds, grammar)
    for arm in (a for a in arms if a in sweep):
        arm_members = [(arm, s) for s in seeds]
        frames += [member_rows(arm_members, [cfg.steps], v.numpy()[None], "test", m) for m, v in sweep[arm].items()]
    return pd.concat(frames, ignore_index=True)


# --- the claims ------------------------------------------------------------------------------------


def _paired(t: Table, a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any]:
    """describe() of the per-seed difference cell a − cell b, cells given as (arm, metric)."""
    return describe(np.asarray(t[a[0]][a[1]]["values"], float) - np.asarray(t[b[0]][b[1]]["values"], float))


def _points(cell: dict[str, Any]) -> str:
    return points(cell)


def _curriculum(t: Table) -> tuple[bool | None, str]:
    """The rise of the hard share, and its excess over the rise among far negatives (the control: if the
    whole space crowded into one direction, far negatives would turn 'hard' as fast)."""
    s = t["skipgram"]
    rise = _paired(t, ("skipgram", "hard_share_end"), ("skipgram", "hard_share_start"))
    control = _paired(t, ("skipgram", "hard_share_far_end"), ("skipgram", "hard_share_far_start"))
    excess = describe(np.asarray(rise["values"], float) - np.asarray(control["values"], float))
    held = every([above(rise), above(excess)])
    return held, (
        f"hard negatives (cosine > threshold) {100 * s['hard_share_start']['mean']:.1f}% of sampled negatives "
        f"at the start, {100 * s['hard_share_end']['mean']:.1f}% at the end: {_points(rise)}; among far "
        f"negatives (another cluster) {100 * s['hard_share_far_start']['mean']:.1f}% → "
        f"{100 * s['hard_share_far_end']['mean']:.1f}%: {_points(control)}; rise beyond the control "
        f"{_points(excess)} (criterion: both CIs above 0)"
    )


def _near_pushed(t: Table) -> tuple[bool | None, str]:
    """Near competitors (same cluster) against far ones: the gradient each receives after training."""
    end, start = t["skipgram"]["grad_near_far_ratio_end"], t["skipgram"]["grad_near_far_ratio_start"]
    return above(end, 1.0), (
        f"mean gradient on a near negative ÷ on a far one: {end['mean']:.2f} after training "
        f"(95% CI {end['ci95'][0]:.2f}–{end['ci95'][1]:.2f}; criterion: above 1), {start['mean']:.2f} at "
        "initialisation"
    )


def _temperature(t: Table) -> tuple[bool | None, str]:
    """Every adjacent step of the ordering, as a paired difference over seeds; all must hold."""
    names = [*TEMPERATURES, "random"]
    gaps = {(a, b): _paired(t, (a, "neighbour_rate"), (b, "neighbour_rate")) for a, b in pairwise(names)}
    rates = ", ".join(f"{a} {100 * t[a]['neighbour_rate']['mean']:.1f}%" for a in names)
    steps = "; ".join(f"{a} − {b} {_points(g)}" for (a, b), g in gaps.items())
    return every(above(g) for g in gaps.values()), (
        f"wrong samples among the right word's nearest neighbours: {rates}; paired: {steps} "
        "(criterion: every step's CI above 0)"
    )


CLAIMS = (
    Claim(
        "Close competitors are pushed away, far ones ignored: after training, a negative from the context's "
        "own cluster receives more gradient than one from another cluster (ratio's 95% CI above 1)",
        _near_pushed,
        min_seeds=5,
    ),
    Claim(
        "Negative sampling is an implicit curriculum: as similar words come together, the share of hard "
        "negatives rises — by more than among negatives from other clusters (the control for the whole space "
        "crowding together)",
        _curriculum,
        min_seeds=5,
    ),
    Claim(
        "Lower temperature: wrong samples are more often near neighbours of the right word (0.5 > 1 > 2 > random, "
        "each step a paired difference)",
        _temperature,
        min_seeds=5,
    ),
)


def _sanity(t: Table) -> list[str]:
    """The identities of section 7, checked numerically: sanity lines, not findings."""
    out = []
    if "jacobian" in t:
        cells = t["jacobian"]
        out.append(
            "Sanity check (an identity, not a claim): the softmax Jacobian diag(P) − P·Pᵀ against autograd, max "
            f"error {max(cells['max_abs_error']['values']):.1e}; the cross-entropy gradient P − onehot, max error "
            f"{max(cells['ce_grad_error']['values']):.1e} (float64); largest off-diagonal entry "
            f"{max(cells['max_offdiag']['values']):.1e} (≤ 0: raising one logit lowers every other probability)."
        )
    corr = t.get("skipgram", {}).get("grad_prob_corr")
    if corr:
        out.append(
            "Sanity check (an identity, not a claim): a negative's gradient is ∂L/∂v⁻ = σ(u·v⁻)·u, proportional to "
            f"its probability by construction; over the probe, r(gradient norm, σ) = {corr['mean']:.3f} (below 1 "
            "only because the centre vector's norm ‖u‖ varies). Whether near competitors get the gradient "
            "depends on whether they are the probable ones: the first claim."
        )
    return out


def notes(summary: dict[str, Any]) -> list[str]:
    t = summary["table"]
    out = _sanity(t)
    if "skipgram" in t:
        s = t["skipgram"]
        out.append(
            f"Hard share at the end {100 * s['hard_share_end']['mean']:.1f}% against "
            f"{100 * s['same_cluster_share']['mean']:.1f}% of negatives drawn from the positive's own cluster."
        )
        out.append(
            "Gradient mass on the 10% most probable negatives: "
            f"{100 * s['grad_top10_share_start']['mean']:.1f}% at initialisation, "
            f"{100 * s['grad_top10_share_end']['mean']:.1f}% after training."
        )
    if all(a in t for a in TEMPERATURES):
        cells = ", ".join(f"{a} {100 * t[a]['wrong_share']['mean']:.1f}%" for a in TEMPERATURES)
        out.append(f"Share of samples that are wrong at all: {cells}.")
    return out


def _curriculum_figure(t: Table, metrics: pd.DataFrame) -> Any:
    """Hard share over training (all sampled negatives, and far ones: the control); gradient by decile."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    curves = metrics[(metrics.split == "eval") & metrics.metric.isin(["hard_share", "hard_share_far"])]
    probe = metrics[metrics.split == "probe"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = {"hard_share": "all sampled negatives", "hard_share_far": "far negatives (control)"}
    for metric, group in curves.groupby("metric", sort=True):
        wide = group.pivot_table(index="seed", columns="step", values="value")
        mean, std = wide.mean().to_numpy(), wide.std().fillna(0).to_numpy()
        (line,) = ax.plot(wide.columns, mean, marker="o", ms=3, label=labels[str(metric)])
        ax.fill_between(wide.columns, mean - std, mean + std, alpha=0.2, color=line.get_color())
    if "same_cluster_share" in t.get("skipgram", {}):
        ax.axhline(t["skipgram"]["same_cluster_share"]["mean"], color="grey", ls=":", label="same cluster")
    ax.set(xlabel="step", ylabel="share with cosine > threshold", title="Random negatives become hard")
    ax.legend(fontsize=8)
    if len(probe):
        wide = probe.pivot_table(index="seed", columns="metric", values="value")
        for d in range(1, DECILES + 1):
            ax2.scatter(wide[f"prob_d{d}"], wide[f"grad_d{d}"], s=8, alpha=0.5, color=plt.cm.viridis(d / DECILES))
        ax2.set(
            xlabel="σ(s): the negative's probability (decile mean)",
            ylabel="gradient norm (decile mean)",
            title="Gradient ∝ probability (by construction)",
        )
    fig.tight_layout()
    seeds = curves.seed.nunique()
    return captioned(
        fig,
        "Left: share of the probe's sampled negatives whose output vector has cosine above the threshold with the "
        f"positive context's, over training — all negatives, and far ones (another cluster: the control); mean "
        f"over {seeds} seeds, band = ±1 std; dotted: share drawn from the context's own cluster. Right: mean "
        "gradient norm against mean probability σ(s) in each probability decile of the probe's negatives after "
        "training, one point per seed and decile (proportional by construction: ∂L/∂v⁻ = σ(s)·u).",
    )


def _temperature_figure(t: Table) -> Any:
    """Neighbour rate of wrong samples against temperature, with the random-word reference."""
    import matplotlib.pyplot as plt

    from learnlab.reporting.figures import captioned

    fig, ax = plt.subplots(figsize=(5, 3.6))
    temps = [a for a in TEMPERATURES if a in t]
    means = np.array([t[a]["neighbour_rate"]["mean"] for a in temps])
    ci = np.array([t[a]["neighbour_rate"]["ci95"] for a in temps])
    x = [TEMPERATURES[a] for a in temps]
    ax.errorbar(x, means, yerr=[means - ci[:, 0], ci[:, 1] - means], marker="o", capsize=3, label="sampled")
    if "random" in t:
        ax.axhline(t["random"]["neighbour_rate"]["mean"], color="red", ls="--", lw=1, label="random wrong word")
    ax.set(
        xscale="log",
        xticks=x,
        xticklabels=[str(v) for v in x],
        xlabel="temperature",
        ylim=(0, 1),
        ylabel="wrong samples that are near neighbours",
        title="Temperature sets the boundary",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    seeds = len(t[temps[0]]["neighbour_rate"]["values"])
    return captioned(
        fig,
        "Share of wrong fill-in-the-blank samples that are among the right word's nearest neighbours, against "
        f"the sampling temperature; mean over {seeds} seeds, bars = 95% CI (t-interval); dashed: a uniformly "
        "random wrong word.",
    )


def figures(summary: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """Hard share over training; gradient norm against probability; neighbour rate against temperature."""
    t = summary["table"]
    out: dict[str, Any] = {}
    if ((metrics.split == "eval") & (metrics.metric == "hard_share")).any():
        out["curriculum"] = _curriculum_figure(t, metrics)
    if any(a in TEMPERATURES for a in t):
        out["temperature"] = _temperature_figure(t)
    return out


STUDY = Study(
    name="softmax-negatives",
    title="the softmax gradient as negation: Jacobian, negative sampling's curriculum, temperature (A5)",
    source="seeds/000 (learning by negation), section 7",
    method=__doc__.split("Method.", 1)[1].strip(),
    config=Config,
    presets=PRESETS,
    arms=ARMS,
    measure=measure,
    claims=CLAIMS,
    headline=(("skipgram", "hard_share_end"), ("skipgram", "grad_near_far_ratio_end"), ("temp-0.5", "neighbour_rate")),
    figures=figures,
    notes=notes,
    plain_metrics=("grad_prob_corr", "grad_near_far_ratio_start", "grad_near_far_ratio_end"),
)
