"""The ensemble training loop.

K independent models live in one module with stacked parameters [K, ...]. The loss is the *sum* of the
per-model losses, so each model's gradient is exactly its own; Adam's update is element-wise, so one
optimizer over the stacked parameters equals K independent optimizers. (Anything that mixes models —
a global gradient-norm clip, averaging the loss over models — would break this and is not done here.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[nn.Module, Batch], Tensor]  # returns per-model losses [K]
EvalFn = Callable[[nn.Module], dict[str, Tensor]]  # returns per-model metrics {name: [K]}


@dataclass
class TrainLog:
    losses: Tensor  # [steps, K], the per-model training loss at every step
    evals: list[tuple[int, dict[str, Tensor]]] = field(default_factory=list)  # (step, {metric: [K]})


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
    on_step: Callable[[int], None] | None = None,
) -> TrainLog:
    """Train all members of `model` together with Adam; `batch(step)` gives every member its own batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    losses: list[Tensor] = []
    log = TrainLog(losses=torch.empty(0))
    for step in range(steps):
        per_model = loss_fn(model, batch(step))
        optimizer.zero_grad(set_to_none=True)
        per_model.sum().backward()
        optimizer.step()
        losses.append(per_model.detach())
        if evaluate is not None and eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            log.evals.append((step + 1, _evaluate(model, evaluate)))
        if on_step is not None:
            on_step(step + 1)
    if evaluate is not None:
        log.evals.append((steps, _evaluate(model, evaluate)))
    log.losses = torch.stack(losses).cpu() if losses else torch.empty(0)
    return log


def _evaluate(model: nn.Module, evaluate: EvalFn) -> dict[str, Tensor]:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = {name: value.detach().cpu() for name, value in evaluate(model).items()}
    model.train(was_training)
    return metrics
