"""train_ensemble's evaluation schedule (step 0, log-spaced steps) and snapshots, resumed exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnlab.engine.rng import generator
from learnlab.engine.train import Checkpoint, Snapshots, log_spaced, multiples, train_ensemble
from learnlab.models.mlp import EnsembleMLP

STEPS = 12


def batch(step: int):
    gen = torch.Generator().manual_seed(step)
    return torch.randn(2, 8, 4, generator=gen), torch.randint(0, 3, (2, 8), generator=gen)


def loss(model, data):
    x, y = data
    return nn.functional.cross_entropy(model(x).transpose(1, 2), y, reduction="none").mean(-1)


def fresh() -> EnsembleMLP:
    model = EnsembleMLP(2, [4, 8, 3])
    model.reset_parameters([generator(s, "init") for s in (0, 1)])
    return model


def probe(model) -> dict[str, torch.Tensor]:
    return {"loss": loss(model, batch(10_000))}


def train(model=None, **kw):
    model = model or fresh()
    return model, train_ensemble(model, batch, loss, steps=STEPS, lr=0.01, evaluate=probe, **kw)


def steps_of(log) -> list[int]:
    return [s for s, _ in log.evals]


def test_schedules():
    assert multiples(10, 100)[:3] == [0, 10, 20] and multiples(10, 100)[-1] == 100
    assert multiples(50, 250, after=100) == [150, 200, 250]
    assert multiples(5, 19, after=0) == [5, 10, 15]
    assert log_spaced(1000, 4) == [0, 1, 10, 100, 1000]
    assert log_spaced(10, 20) == list(range(11))  # coinciding points once


def test_eval_steps_start_at_step_0_and_end_at_the_last_step():
    model, log = train(eval_steps=log_spaced(STEPS, 4))
    assert steps_of(log) == [0, 1, 2, 5, STEPS]
    assert torch.equal(log.evals[0][1]["loss"], probe(fresh())["loss"])  # before the first update
    assert torch.equal(log.evals[-1][1]["loss"], probe(model)["loss"])
    assert len(log.losses) == STEPS


def test_eval_every_is_a_shorthand_for_its_multiples():
    _, every = train(eval_every=5)
    _, listed = train(eval_steps=multiples(5, STEPS - 1, after=0))
    assert steps_of(every) == steps_of(listed) == [5, 10, STEPS]
    assert all(torch.equal(a["loss"], b["loss"]) for (_, a), (_, b) in zip(every.evals, listed.evals, strict=True))
    with pytest.raises(ValueError, match="not both"):
        train(eval_every=5, eval_steps=[0, 5])


def test_the_schedule_changes_no_weight():
    plain, _ = train()
    scheduled, _ = train(eval_steps=range(STEPS + 1), snapshot_steps=range(STEPS + 1))
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), scheduled.parameters(), strict=True))


def test_snapshots_hold_the_weights_at_their_steps():
    model, log = train(snapshot_steps=[0, 3, STEPS])
    assert sorted(log.snapshots) == [0, 3, STEPS]
    assert all(torch.equal(v, fresh().state_dict()[k]) for k, v in log.snapshots[0].items())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in log.snapshots[STEPS].items())
    assert not torch.equal(log.snapshots[3]["weights.0"], log.snapshots[0]["weights.0"])
    seen = []
    _, log = train(snapshot_steps=[2, 4], snapshots=lambda step, m: seen.append(step))  # any callback
    assert seen == [2, 4] and log.snapshots == {}


def test_stop_when_is_not_asked_at_step_0():
    asked = []
    _, log = train(eval_steps=[0, 4, 8], stop_when=lambda log: asked.append(log.evals[-1][0]) or True)
    assert asked == [4] and steps_of(log) == [0, 4] and len(log.losses) == 4


def test_a_resumed_training_evaluates_and_keeps_weights_at_the_same_steps(tmp_path):
    schedule = dict(eval_steps=[0, 1, 3, 5, 7], snapshot_steps=[0, 2, 5, STEPS])
    checkpoint = Checkpoint(tmp_path / "train.ckpt", every=4)

    def interrupt_at_6(step: int) -> None:
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(checkpoint=checkpoint, on_step=interrupt_at_6, snapshots=Snapshots(tmp_path / "snap"), **schedule)
    assert torch.load(checkpoint.path)["step"] == 4
    resumed, log = train(checkpoint=checkpoint, snapshots=Snapshots(tmp_path / "snap"), **schedule)
    whole, whole_log = train(**schedule)
    assert steps_of(log) == steps_of(whole_log) == [0, 1, 3, 5, 7, STEPS]
    assert all(torch.equal(a["loss"], b["loss"]) for (_, a), (_, b) in zip(log.evals, whole_log.evals, strict=True))
    assert sorted(log.snapshots) == sorted(whole_log.snapshots) == [0, 2, 5, STEPS]
    for step, state in whole_log.snapshots.items():
        assert all(torch.equal(v, log.snapshots[step][k]) for k, v in state.items()), step
    assert torch.equal(log.losses, whole_log.losses)
    assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), whole.parameters(), strict=True))
