"""A6 subliminal: the smoke run end to end, the ensemble MLP against plain PyTorch, the data and the loss,
and every claim's check on hand-built tables (one where it holds, one where it does not)."""

import pytest
import torch
from torch import nn

import learnlab
from learnlab.engine.rng import generator
from learnlab.engine.train import train_ensemble
from learnlab.models.mlp import EnsembleMLP
from learnlab.reporting.stats import describe
from learnlab.studies import subliminal as a6
from learnlab.tasks import digits


def test_smoke_run_reports_every_arm_and_chance(tmp_path):
    summary = learnlab.run("subliminal", preset="smoke", out=tmp_path / "r", progress=False)
    assert summary["chance"] == 0.1
    assert list(summary["table"]) == ["teacher", "same-init", "different-init", "all-logits"]
    assert all(set(cells) == {"accuracy"} for cells in summary["table"].values())
    assert all(len(c["accuracy"]["values"]) == 3 for c in summary["table"].values())
    assert summary["table"]["teacher"]["accuracy"]["mean"] > 0.5  # even 100 steps learn digits
    assert len(summary["claims"]) == len(a6.CLAIMS)
    assert (tmp_path / "r" / "accuracy_vs_chance.png").is_file()


def test_ensemble_mlp_equals_separately_trained_mlps():
    sizes, seeds, steps = (6, 5, 4, 3), [0, 1, 7], 5
    model = EnsembleMLP(len(seeds), sizes)
    model.reset_parameters([generator(s, "init") for s in seeds], "normal")
    model.double()
    refs = [model.member(k) for k in range(len(seeds))]
    gen = torch.Generator().manual_seed(3)
    xs = torch.randn(steps, len(seeds), 8, sizes[0], generator=gen, dtype=torch.float64)
    ys = torch.randn(steps, len(seeds), 8, sizes[-1], generator=gen, dtype=torch.float64)

    def mse(m, batch):
        x, y = batch
        return ((m(x) - y) ** 2).mean(dim=(1, 2))

    train_ensemble(model, lambda step: (xs[step], ys[step]), mse, steps=steps, lr=1e-2)
    for k, ref in enumerate(refs):
        opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
        for step in range(steps):
            loss = ((ref(xs[step, k]) - ys[step, k]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        trained = model.member(k)
        for ours, theirs in zip(trained.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_member_init_depends_only_on_its_generator():
    alone = EnsembleMLP(1, (4, 3, 2))
    alone.reset_parameters([generator(5, "init")])
    crowd = EnsembleMLP(3, (4, 3, 2))
    crowd.reset_parameters([generator(1, "init"), generator(5, "init"), generator(2, "init")])
    for a, c in zip(alone.parameters(), crowd.parameters(), strict=True):
        assert torch.equal(a[0], c[1])
    assert isinstance(alone.member(0)[0], nn.Linear)


def test_aux_distillation_never_touches_the_class_logits():
    model = EnsembleMLP(2, (4, 6, 13))
    model.reset_parameters([generator(0, "init"), generator(1, "init")])
    mask = torch.ones(2, 1, 13, dtype=torch.bool)
    mask[0, 0, :10] = False  # member 0 distils the auxiliary logits only
    x, target = torch.randn(2, 5, 4), torch.randn(2, 5, 13)
    for kind in ("kl", "mse"):
        model.zero_grad()
        a6.distillation(mask, kind)(model, (x, target)).sum().backward()
        last_w, last_b = model.weights[-1].grad, model.biases[-1].grad
        assert torch.all(last_w[0, :, :10] == 0) and torch.all(last_b[0, :, :10] == 0)
        assert last_w[0, :, 10:].abs().sum() > 0 and last_w[1, :, :10].abs().sum() > 0
    # matching outputs give zero loss
    same = model(x).detach()
    assert torch.allclose(a6.distillation(mask, "kl")(model, (x, same)), torch.zeros(2), atol=1e-6)


def test_digit_split_is_fixed_stratified_and_disjoint():
    x_train, y_train, x_test, y_test = digits.split()
    again = digits.split()
    assert torch.equal(x_test, again[2]) and torch.equal(y_train, again[1])
    assert len(x_train) + len(x_test) == 1797 and x_train.shape[1] == digits.N_PIXELS
    assert set(y_test.tolist()) == set(range(10))
    counts = torch.bincount(y_test, minlength=10).float() / torch.bincount(torch.cat([y_train, y_test])).float()
    assert torch.all((counts - 0.3).abs() < 0.01)
    assert x_train.min() >= -1 and x_train.max() <= 1
    rows = {tuple(r) for r in x_train.tolist()}
    assert not any(tuple(r) in rows for r in x_test.tolist())  # no held-out image is a training image
    noise = digits.noise((4, 5), generator(0, "noise0"))
    assert noise.shape == (4, 5, 64) and noise.min() >= -1 and noise.max() <= 1


# --- the claims on hand-built tables ---------------------------------------------------------------

ABOVE, SHARED, NEAR_CHANCE = a6.CLAIMS


def _table(same: float = 0.5, different: float = 0.1, spread: float = 0.02, seeds: int = 6) -> dict:
    """Accuracies per seed around the given means (same-init and different-init move together by seed)."""
    noise = [spread * (i - (seeds - 1) / 2) for i in range(seeds)]
    return {
        "teacher": {"accuracy": describe([0.9 + e / 4 for e in noise])},
        "same-init": {"accuracy": describe([same + e for e in noise])},
        "different-init": {"accuracy": describe([different + e / 2 for e in noise])},
    }


def _verdict(claim, table) -> str:
    return claim.judge(table).as_dict()["verdict"]


@pytest.mark.parametrize("claim", a6.CLAIMS, ids=["above-chance", "shared-init", "near-chance"])
def test_claim_reproduced_on_the_expected_pattern(claim):
    assert _verdict(claim, _table()) == "reproduced"


@pytest.mark.parametrize(
    ("claim", "table"),
    [
        (ABOVE, _table(same=0.1)),  # same-init students at chance
        (SHARED, _table(same=0.12, different=0.12)),  # no gap between the initialisations
        (SHARED, _table(same=0.3, different=0.4)),  # different-init better
        (NEAR_CHANCE, _table(different=0.35)),  # different-init far above chance
        (NEAR_CHANCE, _table(different=0.15, spread=0.12)),  # mean near chance, but too noisy to say so
    ],
    ids=["at-chance", "no-gap", "reversed", "far-above", "too-wide"],
)
def test_claim_not_reproduced_when_false(claim, table):
    assert _verdict(claim, table) == "not reproduced"


@pytest.mark.parametrize("claim", a6.CLAIMS, ids=["above-chance", "shared-init", "near-chance"])
def test_claim_undetermined_below_its_seeds_or_without_its_arm(claim):
    assert _verdict(claim, _table(seeds=claim.min_seeds - 1)) == "undetermined"
    assert _verdict(claim, {"teacher": _table()["teacher"]}) == "undetermined"
