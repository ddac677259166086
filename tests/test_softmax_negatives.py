"""A5 softmax-negatives: the smoke run, the Jacobian by hand, the toy grammar, the per-negative gradient."""

import math
from contextlib import contextmanager

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import learnlab
from learnlab.engine.rng import generator
from learnlab.studies import softmax_negatives as a5
from learnlab.studies.base import RunContext
from learnlab.tasks import grammar as g


def test_smoke_run_reports_every_arm(tmp_path):
    summary = learnlab.run("softmax-negatives", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == list(a5.ARMS)
    assert set(table["jacobian"]) == {"max_abs_error", "ce_grad_error", "max_offdiag"}
    assert {"hard_share_start", "hard_share_end", "grad_prob_corr", "same_cluster_share"} <= set(table["skipgram"])
    assert all(set(table[a]) == {"neighbour_rate", "wrong_share"} for a in (*a5.TEMPERATURES, "random"))
    assert max(table["jacobian"]["max_abs_error"]["values"]) < 1e-12
    assert summary["claims"][0]["verdict"] == "reproduced"
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
