"""A5 softmax-negatives: the smoke run, the Jacobian by hand, the toy grammar, the per-negative gradient,
and every claim's check on hand-built tables (one where it holds, one where it does not)."""

import math
from contextlib import contextmanager

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import learnlab
from learnlab.engine.context import RunContext
from learnlab.engine.rng import generator
from learnlab.reporting.stats import describe
from learnlab.studies import softmax_negatives as a5
from learnlab.tasks import grammar as g


def test_smoke_run_reports_every_arm(tmp_path):
    summary = learnlab.run("softmax-negatives", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == list(a5.ARMS)
    assert set(table["jacobian"]) == {"max_abs_error", "ce_grad_error", "max_offdiag"}
    assert {
        "hard_share_start",
        "hard_share_end",
        "hard_share_far_start",
        "hard_share_far_end",
        "grad_prob_corr",
        "grad_near_far_ratio_end",
        "same_cluster_share",
    } <= set(table["skipgram"])
    assert all(set(table[a]) == {"neighbour_rate", "wrong_share"} for a in (*a5.TEMPERATURES, "random"))
    assert max(table["jacobian"]["max_abs_error"]["values"]) < 1e-12
    assert summary["notes"][0].startswith("Sanity check")  # the identity is a sanity line, not a verdict
    assert len(summary["claims"]) == len(a5.CLAIMS)
    assert all(c["verdict"] == "undetermined" for c in summary["claims"])  # 3 smoke seeds < min_seeds
    assert (tmp_path / "r" / "curriculum.png").is_file() and (tmp_path / "r" / "temperature.png").is_file()


def test_jacobian_by_hand_for_two_logits():
    p1, p2 = 0.25, 0.75  # logits (0, ln 3)
    expected = torch.tensor([[p1 - p1 * p1, -p1 * p2], [-p1 * p2, p2 - p2 * p2]], dtype=torch.float64)
    jac = a5.softmax_jacobian(torch.tensor([0.0, math.log(3.0)], dtype=torch.float64))
    torch.testing.assert_close(jac, expected)  # [[3/16, -3/16], [-3/16, 3/16]]
    assert jac.sum(dim=0).abs().max() < 1e-15  # probabilities still sum to one


@contextmanager
def _quiet(desc, total):
    yield lambda n: None


def test_a_member_does_not_depend_on_its_ensemble():
    cfg = a5.Config(**{**a5.PRESETS["smoke"], "arms": ["skipgram", "temp-1"]})
    alone = a5.measure(cfg.model_copy(update={"seeds": 1}), RunContext(_quiet))
    crowd = a5.measure(cfg.model_copy(update={"seeds": 2}), RunContext(_quiet))
    first = crowd[crowd.seed == 0].reset_index(drop=True)
    torch.testing.assert_close(torch.tensor(alone.value.to_numpy()), torch.tensor(first.value.to_numpy()))


def test_a_negative_gets_gradient_sigma_times_center_vector():
    model = a5.EnsembleSkipGram(2, 10, 4)
    model.reset_parameters([generator(0, "init"), generator(1, "init")])
    pairs = torch.randint(10, (2, 3, 2), generator=torch.Generator().manual_seed(0))
    negs = torch.randint(10, (2, 3, 4), generator=torch.Generator().manual_seed(1))
    prob, grad = a5.negative_gradients(model, pairs, negs)
    u = model.vectors(pairs[..., 0], pairs[..., 1], negs)[0].detach()
    expected = prob.view(2, 3, 4) * u.norm(dim=-1)[..., None] / 3  # the loss averages over the batch of 3
    torch.testing.assert_close(grad, expected.flatten(1))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**31), size=st.integers(2, 6), window=st.integers(1, 3))
def test_sentences_follow_the_grammar(n, seed, size, window):
    grammar = g.toy_grammar(size)
    tokens = g.sentences(grammar, n, torch.Generator().manual_seed(seed))
    assert torch.equal(tokens, g.sentences(grammar, n, torch.Generator().manual_seed(seed)))
    valid = tokens != g.PAD
    lengths = valid.sum(1)
    assert torch.equal(valid, torch.arange(tokens.shape[1]) < lengths[:, None])  # padding only at the end
    clusters = torch.where(valid, grammar.cluster_of[tokens.clamp(min=0)], g.PAD)
    templates = {tuple(row) for row in grammar.slots.tolist()}
    assert all(tuple(row) in templates for row in clusters.tolist())  # each sentence instantiates a template
    assert len(grammar.words) == grammar.vocab_size == 8 * size + 5
    pairs = g.skipgram_pairs(tokens, window)
    expected = sum(2 * sum(max(0, int(L) - o) for o in range(1, window + 1)) for L in lengths)
    assert len(pairs) == expected and (pairs >= 0).all()
    freq = g.unigram(tokens, grammar.vocab_size)
    assert abs(float(freq.sum()) - 1) < 1e-9


# --- the claims on hand-built tables ---------------------------------------------------------------

SEEDS = 6


def _cells(**metrics: list[float]) -> dict:
    return {m: describe(v) for m, v in metrics.items()}


def _jitter(base: float, step: float = 0.01) -> list[float]:
    return [base + step * (i - SEEDS / 2) for i in range(SEEDS)]


def _table(*, ratio=2.0, far_rise=0.05, rise=0.2, rates=(0.6, 0.5, 0.4, 0.1), seeds=SEEDS) -> dict:
    """A table where every claim holds by default; each keyword moves one claim's evidence."""
    take = slice(0, seeds)
    skipgram = _cells(
        hard_share_start=_jitter(0.02, 0.002)[take],
        hard_share_end=_jitter(0.02 + rise)[take],
        hard_share_far_start=_jitter(0.001, 0.0005)[take],
        hard_share_far_end=_jitter(0.001 + far_rise, 0.005)[take],
        grad_near_far_ratio_start=_jitter(1.0, 0.02)[take],
        grad_near_far_ratio_end=_jitter(ratio, 0.05)[take],
    )
    arms = dict(zip((*a5.TEMPERATURES, "random"), rates, strict=True))
    return {"skipgram": skipgram, **{a: _cells(neighbour_rate=_jitter(r)[take]) for a, r in arms.items()}}


NEAR, CURRICULUM, TEMPERATURE = a5.CLAIMS
FALSE = [
    (NEAR, {"ratio": 1.0}),  # near and far negatives get the same gradient
    (NEAR, {"ratio": 0.7}),  # near ones get less
    (CURRICULUM, {"rise": 0.0}),  # the hard share does not rise
    (CURRICULUM, {"rise": 0.2, "far_rise": 0.2}),  # it rises, but no more than among far negatives
    (TEMPERATURE, {"rates": (0.5, 0.5, 0.4, 0.1)}),  # 0.5 ties 1
    (TEMPERATURE, {"rates": (0.6, 0.5, 0.6, 0.1)}),  # 2 above 1
    (TEMPERATURE, {"rates": (0.6, 0.5, 0.4, 0.45)}),  # random above 2
]


def _verdict(claim, table) -> str:
    return claim.judge(table).as_dict()["verdict"]


@pytest.mark.parametrize("claim", a5.CLAIMS, ids=["near", "curriculum", "temperature"])
def test_claim_reproduced_when_it_holds(claim):
    assert _verdict(claim, _table()) == "reproduced"


@pytest.mark.parametrize(("claim", "change"), FALSE, ids=[f"{c.text[:20]}-{i}" for i, (c, _) in enumerate(FALSE)])
def test_claim_not_reproduced_when_false(claim, change):
    assert _verdict(claim, _table(**change)) == "not reproduced"


@pytest.mark.parametrize("claim", a5.CLAIMS, ids=["near", "curriculum", "temperature"])
def test_claim_undetermined_below_its_seeds_or_without_its_arm(claim):
    assert claim.min_seeds >= 5
    assert _verdict(claim, _table(seeds=claim.min_seeds - 1)) == "undetermined"
    assert _verdict(claim, {"skipgram": _table()["skipgram"]} if claim is TEMPERATURE else {}) == "undetermined"


def test_claim_curriculum_is_judged_on_the_excess_over_far_negatives():
    # a large rise that far negatives match (the whole space crowding together) is no curriculum
    crowding = _table(rise=0.5, far_rise=0.5)
    assert _verdict(CURRICULUM, crowding) == "not reproduced"
    assert "rise beyond the control" in CURRICULUM.judge(crowding).evidence


def test_claim_near_far_ratio_is_what_the_model_computes():
    """Near negatives (same cluster, another word) get σ(s)·‖u‖ each; the ratio of their means is the metric."""
    cluster = torch.tensor([0, 0, 1, 1])
    pairs = torch.tensor([[[2, 0], [3, 0]]])  # contexts 0, 0
    negs = torch.tensor([[[1, 2], [0, 3]]])  # near 1; far 2; the context itself 0; far 3
    kinds = a5.neighbourhoods(cluster, pairs, negs)
    assert kinds["near"].tolist() == [[[True, False], [False, False]]]
    assert kinds["far"].tolist() == [[[False, True], [False, True]]]
    grad = torch.tensor([[4.0, 1.0, 9.0, 3.0]])
    stats = a5.gradient_stats(grad / 10, grad, kinds["near"].flatten(1), kinds["far"].flatten(1))
    assert stats["grad_near_far_ratio"].item() == pytest.approx(4.0 / 2.0)
