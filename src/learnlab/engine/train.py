"""The ensemble training loop.

K independent models live in one module with stacked parameters [K, ...]. The loss is the *sum* of the
per-model losses, so each model's gradient is exactly its own; Adam's update is element-wise, so one
optimizer over the stacked parameters equals K independent optimizers. (Anything that mixes models —
a global gradient-norm clip, averaging the loss over models — would break this and is not done here.)

Training evaluates on a schedule of steps (`eval_steps`: step 0, before the first update, and any others,
uniform or log-spaced: `multiples`, `log_spaced`) and keeps the weights at the steps of another
(`snapshot_steps`, into a `Snapshots` store), so a study asks for the curve it reports instead of
working around a fixed period.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from learnlab.engine.adam import adam, set_lr
from learnlab.errors import LearnlabError
from learnlab.tracking import evaluated

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[nn.Module, Batch], Tensor]  # returns per-model losses [K]
EvalFn = Callable[[nn.Module], dict[str, Tensor]]  # returns per-model metrics {name: [K]}
# per-model losses [K] with the gradients of their sum already in .grad, or None to fall back on autograd
FusedStep = Callable[[nn.Module, Batch], Tensor | None]
State = dict[int, dict[str, Tensor]]  # step -> a model's state dict


@dataclass
class Checkpoint:
    """Where and how often training saves its state, so that an interrupted run resumes exactly.

    Saved at step boundaries only (an interruption mid-step leaves the last consistent state): the
    model, the optimizer, the log so far, and the batch source's state if it has `state_dict()`.
    """

    path: Path
    every: int = 200

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        state = load_state(self.path)
        if not isinstance(state, dict) or not set(STATE_KEYS) <= state.keys():
            raise LearnlabError(f"checkpoint {str(self.path)!r} is not a training checkpoint; it is left as it was")
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Atomically: the previous checkpoint stays whole until the new one is complete."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        try:  # written by Python: a full disk is an OSError (ENOSPC), not a RuntimeError from torch's writer
            tmp.write_bytes(buffer.getbuffer())
            os.replace(tmp, self.path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError) and err.filename is None:
                err.filename = str(self.path)  # for the message: which file the disk had no room for
            raise


STATE_KEYS = ("step", "model", "optimizer", "batch", "losses", "evals")


def load_state(path: Path) -> Any:
    """What `torch.save` wrote to `path`, as data only: tensors, numbers, strings and containers
    (weights_only, whatever torch's default: a file that pickles code is refused, never run). A file
    that cannot be loaded is a LearnlabError naming it, and is left as it was."""
    try:
        return torch.load(path, weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged zip, a truncated pickle, ...: torch has no common base
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0]
        problem = f"{type(err).__name__}: {first}" if first else type(err).__name__
        if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
            problem = "it holds more than tensors and numbers: refused, as loading it could run code"
    raise LearnlabError(f"checkpoint {str(path)!r} cannot be loaded ({problem}); it is left as it was")


@dataclass
class TrainLog:
    losses: Tensor  # [steps, K], the per-model training loss at every step
    evals: list[tuple[int, dict[str, Tensor]]] = field(default_factory=list)  # (step, {metric: [K]})
    snapshots: State = field(default_factory=dict)  # step -> the ensemble's state dict, on the CPU


def multiples(every: int, last: int, after: int = -1) -> list[int]:
    """The multiples of `every` in (after, last]: step 0 among them unless `after` >= 0."""
    first = every * (after // every + 1)
    return list(range(first, last + 1, every))


def log_spaced(last: int, points: int) -> list[int]:
    """Step 0 and `points` steps from 1 to `last` evenly spaced in log (rounded; fewer where they coincide)."""
    if points < 2 or last < 1:
        return sorted({0, max(last, 0)})
    return sorted({0, *(round(last ** (i / (points - 1))) for i in range(points))})


class Snapshots:
    """Weights kept along a training: {step: state dict on the CPU} in memory and, given a directory (a
    run's work directory), on disk as step-NNNNNNN.pt, where a resumed training (which continues from its
    last checkpoint, without the weights kept before it) finds the earlier ones."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory
        self.states: State = {}
        if directory is not None and directory.is_dir():
            for file in sorted(directory.glob("step-*.pt")):
                self.states[int(file.stem.removeprefix("step-"))] = load_state(file)

    def __call__(self, step: int, model: nn.Module) -> None:
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.states[step] = state
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f"step-{step:07d}.pt.tmp"
            torch.save(state, tmp)
            tmp.replace(self.directory / f"step-{step:07d}.pt")


def train_ensemble(
    model: nn.Module,
    batch: Callable[[int], Batch],
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    evaluate: EvalFn | None = None,
    eval_every: int = 0,
    eval_steps: Sequence[int] | None = None,
    snapshot_steps: Sequence[int] = (),
    snapshots: Callable[[int, nn.Module], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    fused_step: FusedStep | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    decoupled_weight_decay: bool = False,
    lr_schedule: Callable[[int], float] | None = None,
    cpu_threads: int | None = 1,
    stop_when: Callable[[TrainLog], bool] | None = None,
) -> TrainLog:
    """Train all members of `model` together with Adam; `batch(step)` gives every member its own batch.

    With a checkpoint, training resumes from it when one exists and saves one every `checkpoint.every`
    steps; a resumed run gives exactly the result of an uninterrupted one. `fused_step`, where given and
    able to run, replaces the loss, zero_grad and backward with one call (the same gradients).
    decoupled_weight_decay=True trains with AdamW; `lr_schedule(step)` multiplies lr at each step.
    cpu_threads: PyTorch's threads while training on a CPU (None: unchanged; models with large matmuls).

    `evaluate` runs at the steps of `eval_steps` (0: before the first update; s: after update s) and
    always at the last step; `eval_every=k` is the shorthand for every k-th step. Scheduled evaluations
    run inside training (under `cpu_threads`); step 0's runs before it starts, and the final one, where the
    schedule leaves out the last step, after it ends. `stop_when(log)`, asked after each evaluation but
    step 0's, ends training early when it returns True (the log's losses then stop at that step, and the
    final evaluation is the one just made). The weights at the steps of `snapshot_steps` go to
    `snapshots(step, model)` (default: a new in-memory `Snapshots`, returned as `log.snapshots`). A resumed
    training evaluates and keeps weights at the same steps as an uninterrupted one: the evaluations so far
    are in the checkpoint, the weights kept so far only in a `Snapshots` with a directory.
    """
    when = _schedule(eval_steps, eval_every, steps)
    keep_at = set(snapshot_steps)
    if keep_at and snapshots is None:
        snapshots = Snapshots()
    # Adam and AdamW treat every member alike
    optimizer = adam(model.parameters(), lr, weight_decay, betas, decoupled=decoupled_weight_decay)
    losses: Tensor | None = None  # [steps, K], filled in as training goes
    log = TrainLog(losses=torch.empty(0))
    start = 0
    if checkpoint is not None and (state := checkpoint.load()) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if hasattr(batch, "load_state_dict"):
            batch.load_state_dict(state["batch"])
        losses, log.evals, start = state["losses"], state["evals"], state["step"]
        for at, metrics in log.evals:  # a resumed run's tracker gets the whole curve
            evaluated(at, metrics, _loss_at(losses, at))
    if start == 0 and 0 in keep_at and snapshots is not None:
        snapshots(0, model)
    if start == 0 and 0 in when and evaluate is not None:
        log.evals.append((0, _evaluate(model, evaluate)))
        evaluated(*log.evals[-1])
    with _cpu_threads(model, cpu_threads):
        for step in range(start, steps):
            if lr_schedule is not None:
                set_lr(optimizer, lr * lr_schedule(step))
            data = batch(step)
            per_model = fused_step(model, data) if fused_step is not None else None
            if per_model is None:
                per_model = loss_fn(model, data)
                optimizer.zero_grad(set_to_none=True)
                per_model.sum().backward()
            optimizer.step()
            if losses is None:
                losses = per_model.new_zeros(steps, len(per_model))
            losses[step] = per_model.detach()
            if step + 1 in keep_at and snapshots is not None:
                snapshots(step + 1, model)
            if evaluate is not None and step + 1 in when:
                log.evals.append((step + 1, _evaluate(model, evaluate)))
                evaluated(*log.evals[-1], losses[step])
                if stop_when is not None and stop_when(log):
                    steps = step + 1
                    break
            if on_step is not None:  # before the checkpoint: a resume never skips a step's side effects
                on_step(step + 1)
            if checkpoint is not None and (step + 1) % checkpoint.every == 0 and step + 1 < steps:
                checkpoint.save(
                    {
                        "step": step + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "batch": batch.state_dict() if hasattr(batch, "state_dict") else None,
                        "losses": losses,
                        "evals": log.evals,
                    }
                )
    if evaluate is not None and (not log.evals or log.evals[-1][0] != steps):
        log.evals.append((steps, _evaluate(model, evaluate)))
        evaluated(*log.evals[-1], _loss_at(losses, steps))
    log.losses = losses[:steps].cpu() if losses is not None else torch.empty(0)
    if isinstance(snapshots, Snapshots):
        log.snapshots = snapshots.states
    return log


def _schedule(eval_steps: Sequence[int] | None, eval_every: int, steps: int) -> set[int]:
    """The steps to evaluate at, besides the last one (eval_every: the multiples before it)."""
    if eval_steps is not None and eval_every:
        raise ValueError("give eval_steps or eval_every, not both")
    if eval_steps is not None:
        return set(eval_steps)
    return set(multiples(eval_every, steps - 1, after=0)) if eval_every else set()


def warmup_cosine(steps: int, warmup: int = 0) -> Callable[[int], float]:
    """An `lr_schedule`: linear warm-up from 1/warmup to 1 over `warmup` steps, then cosine decay to 0 at `steps`."""

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return multiplier


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's CPU threads inside the block (None: unchanged), restored after it."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu_threads(model: nn.Module, threads: int | None) -> AbstractContextManager[None]:
    """On a CPU, PyTorch runs `threads` threads while training: 1 for tiny models, whose ops are too
    small to split and whose idle pool threads would take the cores the native kernels run on."""
    cpu = all(p.device.type == "cpu" for p in model.parameters())
    return torch_threads(threads if cpu else None)


def _loss_at(losses: Tensor | None, step: int) -> Tensor | None:
    """The per-model training loss of the update that ended at `step` (None before any)."""
    return losses[step - 1] if losses is not None and 0 < step <= len(losses) else None


def _evaluate(model: nn.Module, evaluate: EvalFn) -> dict[str, Tensor]:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = {name: value.detach().cpu() for name, value in evaluate(model).items()}
    model.train(was_training)
    return metrics
