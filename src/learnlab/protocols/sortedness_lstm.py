"""A TinyLSTM learning "is this sequence sorted?": A1's training and test sets, and A2's generations.

The task (`learnlab.tasks.sortedness`): tokens 0..vocab_size-1; every training batch has one length
L ~ U{min_len..max_len} and `batch_size` sequences, each a positive (sorted distinct tokens) with
probability 1/2, otherwise a negative — a random sequence that is not non-decreasing, or with
probability `HARD_SHARE[arm]` a positive with one adjacent pair swapped. The model: TinyLSTM (Embedding,
LSTM, Linear → 1 logit), Adam, BCE; arms with the same seed share the initialisation and every random
draw except the choice of negative. The test sets: 500 sorted sequences against 500 negatives of each
kind (`evaluation_sets`). A2's chain (`generations`): generation 0 is the `concept` model; each later
generation a fresh TinyLSTM trained as long on mixture inputs labelled by the previous generation
(`LABELLINGS`: hard or soft labels, a share of real examples). A1 (`hard-negatives`) measures the
first, A2 (`model-collapse`) the second, A4 (`robustness`) perturbs the models of both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.engine.stream import ChunkedStream
from learnlab.engine.train import TrainLog, train_ensemble
from learnlab.models.lstm import EnsembleLSTMClassifier, select_members
from learnlab.tasks import sortedness as task

HARD_SHARE = {"baseline": 0.0, "hard25": 0.25, "hard50": 0.5, "hard75": 0.75, "concept": 1.0}  # A1's arms
LABELLINGS = {  # A2's arms: (soft labels, share of real examples)
    "hard-labels": (False, 0.0),
    "soft-labels": (True, 0.0),
    "real-10": (False, 0.1),
    "real-20": (False, 0.2),
    "real-30": (False, 0.3),
    "real-50": (False, 0.5),
}
DATA_CHUNK = 100  # training steps generated at once per seed (part of the data stream's definition)
CURVE_SETS = ("easy", "hard")  # learning curves are measured on these
LABEL_STEPS = 10  # steps of a chunk the teacher labels per call (bounds the memory of one call)


class SortednessConfig(StudyConfig):
    """The task, the TinyLSTM and its training: shared by the studies built on A1's protocol."""

    steps: int = Field(1600, gt=0)
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(32, gt=0)
    vocab_size: int = Field(50, ge=8)
    embed_dim: int = Field(8, gt=0)
    hidden_size: int = Field(32, gt=0)
    min_len: int = Field(6, ge=2)
    max_len: int = Field(12, ge=2)
    eval_len: int = Field(20, ge=6, description="length of the easy/hard/multi-error test sets")
    extrap_len: int = Field(40, ge=2, description="length of the extrapolation test set")
    eval_size: int = Field(500, gt=0, description="test sequences per class")

    @model_validator(mode="after")
    def _lengths_fit(self) -> SortednessConfig:
        if self.max_len < self.min_len:
            raise ValueError(f"max_len ({self.max_len}) must be >= min_len ({self.min_len})")
        longest = max(self.max_len, self.eval_len, self.extrap_len)
        if longest > self.vocab_size:
            raise ValueError(f"sorted sequences of length {longest} need vocab_size >= {longest}")
        return self


# --- data ------------------------------------------------------------------------------------------


class TrainingStream(ChunkedStream):
    """Every member's batches. Each seed draws from its own generator, DATA_CHUNK steps at a time."""

    def __init__(
        self, cfg: SortednessConfig, seeds: list[int], member_seed: Tensor, member_share: Tensor, purpose: str = "data"
    ):
        super().__init__([generator(s, purpose, cfg.device) for s in seeds], DATA_CHUNK, cfg.steps)
        self.cfg, self.member_seed = cfg, member_seed
        self.member_share = member_share[:, None, None]

    def _draw(self, gen: torch.Generator) -> dict[str, Tensor]:
        c, n = self.cfg, DATA_CHUNK * self.cfg.batch_size
        lengths = torch.randint(c.min_len, c.max_len + 1, (DATA_CHUNK,), generator=gen, device=gen.device)
        rows = lengths.repeat_interleave(c.batch_size)
        # a row is either a positive or a one-swap negative, so one sorted draw serves both
        ordered = task.sorted_sequences(rows, c.max_len, c.vocab_size, gen)
        return {
            "lengths": lengths,
            "pos": ordered,
            "hard": task.adjacent_swaps(ordered, rows, 1, gen),
            "easy": task.random_unsorted(rows, c.max_len, c.vocab_size, gen),
            "is_pos": torch.rand(n, generator=gen, device=gen.device) < 0.5,
            "u_hard": torch.rand(n, generator=gen, device=gen.device),
        }

    def draw(self) -> dict[str, Any]:
        draws = [self._draw(g) for g in self.gens]
        widths = torch.stack([d["lengths"] for d in draws]).amax(dim=0).tolist()  # per step, over seeds
        return {**self._assemble(draws), "widths": widths}

    def _per_member(self, draws: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The seeds' draws as member arrays [K, S, B, ...] (member k gets its seed's draw)."""
        shape = (len(self.member_seed), DATA_CHUNK, self.cfg.batch_size)
        per_seed = {key: torch.stack([d[key] for d in draws])[self.member_seed] for key in draws[0] if key != "lengths"}
        return {key: value.view(*shape, -1).squeeze(-1) for key, value in per_seed.items()}

    def _assemble(self, draws: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Members' tokens [K, S, B, W] and labels [K, S, B]. Each (seed, hard share) pair is assembled
        once, as the seed's own arrays, and then copied to its members (one copy, not one per array)."""
        shares = self.member_share.flatten().tolist()
        seeds = self.member_seed.tolist()
        made: dict[tuple[int, float], Tensor] = {}
        for seed, share in dict.fromkeys(zip(seeds, shares, strict=True)):
            d = draws[seed]
            negative = torch.where((d["u_hard"] < share)[:, None], d["hard"], d["easy"])
            made[seed, share] = torch.where(d["is_pos"][:, None], d["pos"], negative)
        shape = (len(seeds), DATA_CHUNK, self.cfg.batch_size)
        tokens = torch.stack([made[key] for key in zip(seeds, shares, strict=True)]).view(*shape, -1)
        labels = torch.stack([draws[seed]["is_pos"] for seed in seeds]).view(shape).float()
        return {"tokens": tokens, "labels": labels}

    def batch(self, data: dict[str, Any], i: int) -> tuple[Tensor, Tensor]:
        """Step i's tokens [K, B, width] (the step's longest sequence sets the width) and labels [K, B]."""
        return data["tokens"][:, i, :, self.cfg.max_len - data["widths"][i] :], data["labels"][:, i]


def evaluation_sets(cfg: SortednessConfig, seed: int, purpose: str, size: int) -> dict[str, tuple[Tensor, Tensor]]:
    """One seed's test sets: the same `size` positives against `size` negatives of each kind: `easy`
    (random, L=eval_len), `hard` (one swap), `swap2`/`swap3` (2 or 3 non-overlapping adjacent swaps),
    `distant` (one swap of two non-adjacent positions) and `extrap` (one swap, L=extrap_len)."""
    gen = generator(seed, purpose, cfg.device)

    def lengths(length: int) -> Tensor:
        return torch.full((size,), length, device=cfg.device)

    short, long_ = lengths(cfg.eval_len), lengths(cfg.extrap_len)
    pos = task.sorted_sequences(short, cfg.eval_len, cfg.vocab_size, gen)
    base = task.sorted_sequences(short, cfg.eval_len, cfg.vocab_size, gen)
    pos_long = task.sorted_sequences(long_, cfg.extrap_len, cfg.vocab_size, gen)
    base_long = task.sorted_sequences(long_, cfg.extrap_len, cfg.vocab_size, gen)
    negatives = {
        "easy": task.random_unsorted(short, cfg.eval_len, cfg.vocab_size, gen),
        "hard": task.adjacent_swaps(base, short, 1, gen),
        "swap2": task.adjacent_swaps(base, short, 2, gen),
        "swap3": task.adjacent_swaps(base, short, 3, gen),
        "distant": task.distant_swap(base, short, gen),
    }
    labels = torch.cat([torch.ones(size), torch.zeros(size)]).to(cfg.device)
    sets = {name: (torch.cat([pos, neg]), labels) for name, neg in negatives.items()}
    sets["extrap"] = (torch.cat([pos_long, task.adjacent_swaps(base_long, long_, 1, gen)]), labels)
    return sets


def stack_sets(
    per_seed: list[dict[str, tuple[Tensor, Tensor]]], member_seed: Tensor, names: tuple[str, ...]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Each member gets its seed's sets: tokens [K, N, T]; labels [N] are shared."""
    return {n: (torch.stack([s[n][0] for s in per_seed])[member_seed], per_seed[0][n][1]) for n in names}


def member_seeds(cfg: StudyConfig, members: list[tuple[str, int]]) -> Tensor:
    """Member k's index among the seeds (members are (arm, seed) pairs)."""
    seeds = cfg.seed_list
    return torch.tensor([seeds.index(s) for _, s in members], device=cfg.device)


def final_sets(
    cfg: SortednessConfig, members: list[tuple[str, int]], names: tuple[str, ...]
) -> dict[str, tuple[Tensor, Tensor]]:
    """The test sets `names` (`evaluation_sets` of `eval_size` per class), each member its seed's."""
    per_seed = [evaluation_sets(cfg, s, "test", cfg.eval_size) for s in cfg.seed_list]
    return stack_sets(per_seed, member_seeds(cfg, members), names)


# --- training and evaluation ---------------------------------------------------------------------------


def bce_per_model(model: EnsembleLSTMClassifier, batch: tuple[Tensor, Tensor]) -> Tensor:
    tokens, labels = batch
    return F.binary_cross_entropy_with_logits(model(tokens), labels, reduction="none").mean(dim=1)


def bce_fused(model: EnsembleLSTMClassifier, batch: tuple[Tensor, Tensor]) -> Tensor | None:
    """`bce_per_model` and its backward in one native call (None where the kernel cannot run)."""
    return model.bce_step(*batch)


def accuracy(model: EnsembleLSTMClassifier, tokens: Tensor, labels: Tensor, chunk: int = 500) -> Tensor:
    """Per-member accuracy on its own test set; tokens [K, N, T], labels [N]."""
    truth = labels > 0.5
    correct = [(model(tokens[:, i : i + chunk]) > 0) == truth[i : i + chunk] for i in range(0, len(labels), chunk)]
    return torch.cat(correct, dim=1).float().mean(dim=1)


def train(
    cfg: SortednessConfig, arms: list[str], ctx: RunContext, curve_eval_size: int = 0, eval_every: int = 0
) -> tuple[EnsembleLSTMClassifier, list[tuple[str, int]], TrainLog]:
    """Train every (arm, seed) of these A1 arms (`HARD_SHARE`) as one ensemble; member k is members[k].

    With curve_eval_size > 0 the log also holds learning curves on CURVE_SETS of that size per class,
    every eval_every steps and at the end.
    """
    seeds = cfg.seed_list
    members = [(arm, seed) for arm in arms for seed in seeds]
    member_seed = member_seeds(cfg, members)
    member_share = torch.tensor([HARD_SHARE[a] for a, _ in members], device=cfg.device)

    model = EnsembleLSTMClassifier(len(members), cfg.vocab_size, cfg.embed_dim, cfg.hidden_size)
    model.to(cfg.device).reset_parameters([generator(s, "init", cfg.device) for _, s in members])
    stream = TrainingStream(cfg, seeds, member_seed, member_share)
    curve_sets: dict[str, tuple[Tensor, Tensor]] = {}
    if curve_eval_size:
        per_seed = [evaluation_sets(cfg, s, "curve", curve_eval_size) for s in seeds]
        curve_sets = stack_sets(per_seed, member_seed, CURVE_SETS)

    def curve_metrics(m: EnsembleLSTMClassifier) -> dict[str, Tensor]:
        return {name: accuracy(m, x, y) for name, (x, y) in curve_sets.items()}

    ctx.snapshot("train", 0, model)
    with ctx.progress(f"hard-negatives · {len(members)} models", cfg.steps) as update:

        def on_step(step: int) -> None:
            ctx.snapshot("train", step, model)
            update(step)

        log = train_ensemble(
            model,
            stream,
            bce_per_model,
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            evaluate=curve_metrics if curve_eval_size else None,
            eval_every=eval_every,
            on_step=on_step,
            checkpoint=ctx.checkpoint("train"),
            fused_step=bce_fused,
        )
    ctx.keep_model("train", model, members)
    return model, members, log


# --- A2's chain: generations trained on the previous generation's labels ---------------------------------


class SyntheticStream(TrainingStream):
    """One generation's student batches: mixture inputs labelled by the teacher; real rows carry truth."""

    def __init__(
        self,
        cfg: SortednessConfig,
        seeds: list[int],
        member_seed: Tensor,
        arms: list[str],
        generation: int,
        teacher: EnsembleLSTMClassifier,
    ):
        no_share = torch.zeros(len(member_seed), device=cfg.device)
        super().__init__(cfg, seeds, member_seed, no_share, purpose=f"data-g{generation}")
        self.teacher = teacher
        self.soft = torch.tensor([LABELLINGS[a][0] for a in arms], device=cfg.device)[:, None]
        self.real_share = torch.tensor([LABELLINGS[a][1] for a in arms], device=cfg.device)[:, None, None]

    def _draw(self, gen: torch.Generator) -> dict[str, Tensor]:
        c, n = self.cfg, DATA_CHUNK * self.cfg.batch_size
        lengths = torch.randint(c.min_len, c.max_len + 1, (DATA_CHUNK,), generator=gen, device=gen.device)
        rows = lengths.repeat_interleave(c.batch_size)
        ordered = task.sorted_sequences(rows, c.max_len, c.vocab_size, gen)
        return {
            "lengths": lengths,
            "sorted": ordered,
            "swapped": task.adjacent_swaps(ordered, rows, 1, gen),
            "random": task.random_unsorted(rows, c.max_len, c.vocab_size, gen),
            "u_kind": torch.rand(n, generator=gen, device=gen.device),
            "u_real": torch.rand(n, generator=gen, device=gen.device),
            "real_pos": torch.rand(n, generator=gen, device=gen.device) < 0.5,
        }

    def _assemble(self, draws: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        d = self._per_member(draws)
        u = d["u_kind"][..., None]
        mixture = torch.where(u < 0.33, d["sorted"], torch.where(u < 0.66, d["random"], d["swapped"]))
        real = torch.where(d["real_pos"][..., None], d["sorted"], d["swapped"])
        is_real = d["u_real"] < self.real_share
        tokens = torch.where(is_real[..., None], real, mixture)
        return {"tokens": tokens, "labels": d["real_pos"].float(), "is_real": is_real}  # labels: the truth

    @torch.no_grad()
    def draw(self) -> dict[str, Any]:
        """The chunk's inputs, labelled by the teacher except on real rows, which carry the truth.

        The teacher labels the whole chunk here, LABEL_STEPS steps per call, off the training thread.
        Its label for a sequence does not depend on what else is in the call: leading padding leaves
        the LSTM state exactly zero, and each member's rows are computed independently.
        """
        data = super().draw()
        tokens, truth = data["tokens"], data["labels"]
        k, steps, b, width = tokens.shape
        p = torch.cat(
            [
                torch.sigmoid(self.teacher(tokens[:, s : s + LABEL_STEPS].reshape(k, -1, width))).view(k, -1, b)
                for s in range(0, steps, LABEL_STEPS)
            ],
            dim=1,
        )
        target = torch.where(self.soft[..., None], p, (p > 0.5).float())
        data["labels"] = torch.where(data["is_real"], truth, target)
        return data


def generations(
    cfg: SortednessConfig, arms: list[str], ctx: RunContext, last: int
) -> tuple[list[EnsembleLSTMClassifier], list[tuple[str, int]], list[Tensor]]:
    """Every arm's chains (`LABELLINGS`) from generation 0 through generation `last`.

    Returns generation g's ensemble (member k is members[k]; generation 0 is shared by every arm) and its
    training losses [steps, K], for g = 0..last.
    """
    seeds = cfg.seed_list
    members = [(arm, seed) for arm in arms for seed in seeds]
    member_seed = member_seeds(cfg, members)
    models: list[EnsembleLSTMClassifier] = []
    losses: list[Tensor] = []

    with ctx.progress(
        f"model-collapse · {len(members)} models · {last + 1} generations", (last + 1) * cfg.steps
    ) as update:

        def generation(
            g: int, chain_seeds: list[int], init: str, stream: Callable[[int], Any]
        ) -> tuple[EnsembleLSTMClassifier, Tensor]:
            """A fresh ensemble (one member per chain seed) trained on `stream`; returns it and its losses."""
            model = EnsembleLSTMClassifier(len(chain_seeds), cfg.vocab_size, cfg.embed_dim, cfg.hidden_size)
            model.to(cfg.device).reset_parameters([generator(s, init, cfg.device) for s in chain_seeds])
            ctx.snapshot(f"gen{g}", 0, model)

            def on_step(s: int) -> None:
                ctx.snapshot(f"gen{g}", s, model)
                update(g * cfg.steps + s)

            log = train_ensemble(
                model,
                stream,
                bce_per_model,
                steps=cfg.steps,
                lr=cfg.lr,
                weight_decay=cfg.weight_decay,
                on_step=on_step,
                checkpoint=ctx.checkpoint(f"gen{g}"),
                fused_step=bce_fused,
            )
            return model, log.losses

        # generation 0: A1's concept models, one per chain, shared by every arm
        per_chain = torch.arange(len(seeds), device=cfg.device)
        truth = TrainingStream(cfg, seeds, per_chain, torch.ones(len(seeds), device=cfg.device))
        gen0, gen0_losses = generation(0, seeds, "init", truth)
        ctx.keep_model("gen0", gen0, [("concept", s) for s in seeds])  # every arm's chain starts from it
        models.append(select_members(gen0, member_seed).eval())
        losses.append(gen0_losses[:, member_seed.cpu()])

        for g in range(1, last + 1):
            stream = SyntheticStream(cfg, seeds, member_seed, [a for a, _ in members], g, models[-1])
            student, student_losses = generation(g, [s for _, s in members], f"init-g{g}", stream)
            ctx.keep_model(f"gen{g}", student, members)
            models.append(student.eval())
            losses.append(student_losses)
    return models, members, losses
