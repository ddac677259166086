"""Long-format measurements (arm, seed, step, split, metric, value): the rows every protocol returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from learnlab.engine.train import TrainLog


def member_rows(members: list[tuple[str, int]], steps: list[int], values: Any, split: str, metric: str) -> pd.DataFrame:
    """Long rows for a [len(steps), K] array of per-member values (member k = members[k])."""
    values = np.asarray(values, dtype=float).reshape(len(steps), len(members))
    arms = [arm for arm, _ in members]
    seeds = [seed for _, seed in members]
    return pd.DataFrame(
        {
            "arm": np.tile(arms, len(steps)),
            "seed": np.tile(seeds, len(steps)),
            "step": np.repeat(steps, len(members)),
            "split": split,
            "metric": metric,
            "value": values.reshape(-1),
        }
    )


def curves(log: TrainLog) -> tuple[list[int], dict[str, np.ndarray]]:
    """The evaluation steps of a training log and each metric's curve [evaluations, K]."""
    steps = [s for s, _ in log.evals]
    return steps, {name: np.stack([m[name].numpy() for _, m in log.evals]) for name in log.evals[0][1]}


def log_rows(members: list[tuple[str, int]], log: TrainLog, train: bool = True) -> list[pd.DataFrame]:
    """A training's rows: its loss at every step (split "train", unless `train` is False) and every
    evaluated metric (split "eval")."""
    frames = []
    if train:
        frames.append(member_rows(members, list(range(1, len(log.losses) + 1)), log.losses.numpy(), "train", "loss"))
    steps, values = curves(log)
    return frames + [member_rows(members, steps, v, "eval", name) for name, v in values.items()]
