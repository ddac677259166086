"""A3 `inductive-bias`: the delta LSTMs equal the source's modules, members are independent, smoke run, and
every claim's check on hand-built tables (one where it holds, one where it does not)."""

import pytest
import torch
from torch import nn

import learnlab
from learnlab.config import build_config
from learnlab.engine.context import RunContext
from learnlab.models.delta_lstm import DeltaLSTMEnsembles, EnsembleDeltaLSTM
from learnlab.reporting.stats import describe
from learnlab.studies import inductive_bias as ib

V, E, H = 50, 4, 8


def _to_torch_order(w: torch.Tensor) -> torch.Tensor:
    i, f, o, g = w.chunk(4, dim=-1)
    return torch.cat([i, f, g, o], dim=-1)


def source_model(model: EnsembleDeltaLSTM, k: int, tokens: torch.Tensor) -> torch.Tensor:
    """The source's StandardLSTM / NeighborDeltaLSTM / AnchorDeltaLSTM forward, with member k's weights."""
    lstm = nn.LSTM(model.w_ih.shape[1], H, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(_to_torch_order(model.w_ih[k]).T)
        lstm.weight_hh_l0.copy_(_to_torch_order(model.w_hh[k]).T)
        lstm.bias_ih_l0.copy_(_to_torch_order(model.b_ih[k]))
        lstm.bias_hh_l0.copy_(_to_torch_order(model.b_hh[k]))
        emb = model.embedding[k][tokens]
        if model.reference == "neighbor":
            emb = torch.cat([emb, emb - torch.cat([torch.zeros_like(emb[:, :1]), emb[:, :-1]], dim=1)], dim=2)
        elif model.reference == "anchor":
            emb = torch.cat([emb, emb - emb[:, :1].expand_as(emb)], dim=2)
        _, (hidden, _) = lstm(emb)
        return hidden[-1] @ model.w_out[k] + model.b_out[k]


@pytest.mark.parametrize("reference", [None, "neighbor", "anchor"])
def test_delta_lstm_equals_the_source_modules_and_ignores_padding(reference):
    k, b, t = 3, 5, 7
    model = EnsembleDeltaLSTM(k, V, E, H, reference)
    model.reset_parameters([torch.Generator().manual_seed(i) for i in range(k)])
    tokens = torch.randint(0, V, (k, b, t), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ours = model(tokens)
        for m in range(k):
            torch.testing.assert_close(ours[m], source_model(model, m, tokens[m]), rtol=1e-5, atol=1e-5)
        # member 1's batch right-aligned behind 4 padding columns: same logits
        padded = torch.cat([torch.full((k, b, 4), V), tokens], dim=2)
        padded[[0, 2], :, :4] = torch.randint(0, V, (2, b, 4))
        torch.testing.assert_close(model(padded)[1], ours[1], rtol=1e-6, atol=1e-6)


def test_groups_of_different_widths_train_as_one_ensemble():
    a = EnsembleDeltaLSTM(2, V, E, H, None)
    c = EnsembleDeltaLSTM(3, V, 2 * E, H, "anchor")
    for g in (a, c):
        g.reset_parameters([torch.Generator().manual_seed(i) for i in range(g.n_models)])
    tokens = torch.randint(0, V, (5, 4, 6), generator=torch.Generator().manual_seed(1))
    logits = DeltaLSTMEnsembles([a, c])(tokens)
    logits.sum().backward()
    with torch.no_grad():
        torch.testing.assert_close(logits[:2], a(tokens[:2]))
        torch.testing.assert_close(logits[2:], c(tokens[2:]))
    assert all(p.grad is not None for p in [*a.parameters(), *c.parameters()])


def _quiet() -> RunContext:
    from contextlib import contextmanager

    @contextmanager
    def progress(label, total):
        yield lambda n: None

    return RunContext(progress=progress)


def test_a_member_does_not_depend_on_what_else_shares_its_ensemble():
    overrides = {"steps": 12, "eval_every": 6, "eval_size": 8}
    alone = build_config(ib.Config, "inductive-bias", ib.PRESETS, "smoke", {**overrides, "seed": 1, "seeds": 1})
    alone.arms = ["pivot-anchor-delta", "zigzag-transformer"]
    together = build_config(ib.Config, "inductive-bias", ib.PRESETS, "smoke", {**overrides, "seeds": 2})
    a, b = ib.measure(alone, _quiet()), ib.measure(together, _quiet())
    rows = {}
    for arm in alone.arms:
        rows_a = a[(a.arm == arm) & (a.seed == 1)].reset_index(drop=True)
        rows_b = b[(b.arm == arm) & (b.seed == 1)].reset_index(drop=True)
        assert len(rows_a) == len(rows_b) > 0, arm
        rows[arm] = rows_a.value.to_numpy(), rows_b.value.to_numpy()
    assert (rows["pivot-anchor-delta"][0] == rows["pivot-anchor-delta"][1]).all()  # bit-identical
    # the transformer's forward is bit-identical too (test_transformer); its training may move a last bit
    assert abs(rows["zigzag-transformer"][0] - rows["zigzag-transformer"][1]).max() < 1e-6


def test_smoke_run_end_to_end(tmp_path):
    summary = learnlab.run("inductive-bias", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == list(ib.ARMS)
    for arm, cells in table.items():
        assert {"best", "final", "selected"} <= set(cells), arm
        for best, final, chosen in zip(*(cells[m]["values"] for m in ("best", "final", "selected")), strict=True):
            assert 0 <= final <= best <= 1 and chosen <= best
    assert len(summary["claims"]) == len(ib.CLAIMS)
    assert summary["notes"]
    assert (tmp_path / "r" / "accuracy_vs_step.png").is_file()


# --- the claims on hand-built tables ---------------------------------------------------------------

ZIGZAG, ANCHOR, ANCHOR_NEIGHBOR, NEIGHBOR_HURTS, SURVIVES, ATTENTION = ib.CLAIMS
EXPECTED = {  # the published pattern, best and final checkpoint: arm -> (best, final) mean accuracy
    "zigzag-standard": (0.60, 0.55),
    "zigzag-neighbor-delta": (0.96, 0.94),
    "zigzag-transformer": (0.96, 0.945),
    "pivot-standard": (0.89, 0.86),
    "pivot-neighbor-delta": (0.85, 0.82),
    "pivot-anchor-delta": (0.98, 0.97),
    "pivot-transformer": (0.975, 0.965),
}


def _table(seeds: int = 8, spread: float = 0.01, **changes: tuple[float, float]) -> dict:
    """Per-seed accuracies around each arm's (best, final) means, with a little seed noise of their own."""
    table = {}
    for k, (arm, means) in enumerate({**EXPECTED, **changes}.items()):
        noise = [spread * ((3 * i + k) % 5 - 2) for i in range(seeds)]
        table[arm] = {m: describe([mean + e for e in noise]) for m, mean in zip(("best", "final"), means, strict=True)}
    return table


def _verdict(claim, table) -> str:
    return claim.judge(table).as_dict()["verdict"]


IDS = ["zigzag", "anchor", "anchor-neighbor", "neighbor-hurts", "survives", "attention"]


@pytest.mark.parametrize("claim", ib.CLAIMS, ids=IDS)
def test_claim_reproduced_on_the_published_pattern(claim):
    assert _verdict(claim, _table()) == "reproduced"


FALSE = [
    (ZIGZAG, {"zigzag-neighbor-delta": (0.60, 0.55)}),  # no gain from the neighbour delta
    (ANCHOR, {"pivot-anchor-delta": (0.87, 0.86)}),  # the anchor delta below standard
    (ANCHOR_NEIGHBOR, {"pivot-anchor-delta": (0.85, 0.82)}),  # anchor ties neighbour
    (NEIGHBOR_HURTS, {"pivot-neighbor-delta": (0.89, 0.86)}),  # neighbour ties standard: not "below"
    (SURVIVES, {"zigzag-neighbor-delta": (0.96, 0.55)}),  # the zigzag gap is gone at the final checkpoint
    (ATTENTION, {"pivot-transformer": (0.90, 0.88)}),  # 9 points below the anchor delta
    (ATTENTION, {"zigzag-transformer": (0.99, 1.0)}),  # 6 points above: "matches" fails both ways
]


@pytest.mark.parametrize(
    ("claim", "change"), FALSE, ids=[f"{IDS[ib.CLAIMS.index(c)]}-{i}" for i, (c, _) in enumerate(FALSE)]
)
def test_claim_not_reproduced_when_false(claim, change):
    assert _verdict(claim, _table(**change)) == "not reproduced"


def test_claim_attention_no_evidence_of_a_gap_is_not_a_match():
    # the transformer's mean equals the delta's, but seeds scatter ±20 points: the CI is wide around 0, and
    # the old check ("not detectably below") passed this; an equivalence test does not
    noisy = _table()
    noise = [0.2, -0.2, 0.15, -0.15, 0.1, -0.1, 0.05, -0.05]
    for arm, delta in ib.MATCHES:
        noisy[arm]["final"] = describe([v + e for v, e in zip(noisy[delta]["final"]["values"], noise, strict=True)])
    assert _verdict(ATTENTION, noisy) == "not reproduced"


@pytest.mark.parametrize("claim", ib.CLAIMS, ids=IDS)
def test_claim_undetermined_below_its_seeds_or_without_its_arms(claim):
    assert _verdict(claim, _table(seeds=claim.min_seeds - 1)) == "undetermined"
    assert _verdict(claim, {"zigzag-standard": _table()["zigzag-standard"]}) == "undetermined"
