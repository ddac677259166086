"""test-time-compute: the chain-sum task's properties, the majority vote on hand-checked cases, sampling
that depends on the seed alone, every claim on a table where it holds and one where it fails, bad input
through the CLI, and the smoke run end to end with its model kept."""

import json

import numpy as np
import pytest
import torch
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st

import learnlab
from learnlab.config import build_config
from learnlab.protocols import self_consistency as sc
from learnlab.reporting.stats import describe
from learnlab.studies import test_time_compute as ttc
from learnlab.tasks import chain_sum as cs

RUN = ["run", "test-time-compute", "--preset", "smoke", "--quiet"]


def smoke(**over):
    return build_config(ttc.Config, ttc.STUDY.name, ttc.PRESETS, "smoke", over)


# --- the task ------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lo=st.integers(2, 6), extra=st.integers(0, 5), n=st.integers(1, 30))
def test_clean_solutions_visit_every_operand_once_and_end_in_the_answer(seed, lo, extra, n):
    hi = min(lo + extra, cs.MAX_OPERANDS)
    rng = np.random.default_rng(seed)
    it = cs.items(rng, n, lo, hi)
    assert ((it.counts >= lo) & (it.counts <= hi)).all()
    assert (it.answers == np.where(it.digits >= 0, it.digits, 0).sum(1) % 10).all()
    scratch = cs.solutions(rng, it, noise=0.0)
    assert (cs.read_answers(scratch, it.counts) == it.answers).all()
    for row, count, digits in zip(scratch, it.counts, it.digits, strict=True):
        slots = row[0 : 2 * count : 2] - cs.pointer0(10)
        assert sorted(slots) == list(range(count))  # a permutation of the used slots
        sums = row[1 : 2 * count : 2]
        assert (sums == np.cumsum(digits[slots]) % 10).all()
        assert (row[2 * count :] == cs.blank(10)).all()
    prompt = cs.prompts(it)
    assert prompt.shape == (n, hi + 1) and (prompt[:, -1] == cs.eq(10)).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), noise=st.floats(0.0, 0.99), modulus=st.integers(2, 31))
def test_a_slip_carries_into_later_sums(seed, noise, modulus):
    """Each sum is the previous written sum plus the operand mod m, slipped or not; the slip rate is `noise`."""
    rng = np.random.default_rng(seed)
    it = cs.items(rng, 200, 2, 6, modulus)
    assert it.digits.max() < modulus and (it.answers < modulus).all()
    scratch = cs.solutions(rng, it, noise)
    slips, additions = 0, 0
    for row, count, digits in zip(scratch, it.counts, it.digits, strict=True):
        slots = row[0 : 2 * count : 2] - cs.pointer0(modulus)
        sums = row[1 : 2 * count : 2]
        assert sums[0] == digits[slots[0]] and (sums < modulus).all()
        slips += int(((sums[1:] - sums[:-1] - digits[slots[1:]]) % modulus != 0).sum())
        additions += count - 1
    assert abs(slips / additions - noise) < 0.12  # ~700 additions: a few standard errors
    if noise == 0.0:
        assert (cs.read_answers(scratch, it.counts) == it.answers).all()


def test_noise_makes_the_answer_wrong_at_the_rate_slips_compound():
    rng = np.random.default_rng(0)
    it = cs.items(rng, 20000, 4, 4)  # 3 additions each
    wrong = (cs.read_answers(cs.solutions(rng, it, 0.2), it.counts) != it.answers).mean()
    # a wrong answer needs a slip that later slips do not cancel: 1 − 0.8³ = 0.488, less 1/9 of double slips
    assert 0.44 < wrong < 0.50


def test_bad_operand_counts_are_refused():
    with pytest.raises(ValueError, match="min_operands"):
        cs.check(1, 4)
    with pytest.raises(ValueError, match="max_operands"):
        cs.check(5, 4)
    with pytest.raises(ValueError, match="modulus=1"):
        cs.check(2, 4, 1)


# --- the vote ------------------------------------------------------------------------------------------


def test_the_majority_vote_by_hand():
    answers = np.array([
        [3, 3, 5, 3, 5],  # 3 wins 3–2: truth 3 scores 1
        [3, 5, 5, 7, 7],  # 5 and 7 tie 2–2 at k = 5: truth 5 scores 1/2
        [1, 2, 3, 4, 9],  # five-way tie: truth 9 scores 1/5
        [4, 4, 4, 4, 4],  # unanimous but wrong
    ])  # fmt: skip
    truth = np.array([3, 5, 9, 2])
    assert sc.vote_credit(answers, truth, 5, 10).tolist() == [1.0, 0.5, 0.2, 0.0]
    assert sc.vote_credit(answers, truth, 1, 10).tolist() == [1.0, 0.0, 0.0, 0.0]  # a single sample
    # k = 3 uses only the first three: [3,3,5] -> 3; [3,5,5] -> 5; [1,2,3] three-way tie without the truth
    assert sc.vote_credit(answers, truth, 3, 10).tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="k=6"):
        sc.vote_credit(answers, truth, 6, 10)


def test_the_tie_credit_is_the_mean_of_a_uniformly_random_tie_break():
    rng = np.random.default_rng(0)
    answers = rng.integers(0, 4, (2000, 6))
    truth = rng.integers(0, 4, 2000)
    credit = sc.vote_credit(answers, truth, 6, 4).mean()
    wins = []
    for row, y in zip(answers, truth, strict=True):
        counts = np.bincount(row, minlength=4)
        wins.append(rng.choice(np.flatnonzero(counts == counts.max())) == y)
    assert abs(credit - np.mean(wins)) < 0.03


def test_sampling_depends_on_the_seed_alone_and_low_temperature_is_greedy():
    cfg = smoke()
    allowed = ttc.allowed_tokens(cfg)
    its = ttc.held_out_items(cfg, [0, 1, 2])
    prompts = torch.as_tensor(np.stack([cs.prompts(it) for it in its]))
    model = ttc.build(cfg, [0, 1, 2]).eval()
    alone = ttc.build(cfg, [1]).eval()
    a = sc.sample_answers(model, prompts, allowed, 1.0, [0, 1, 2], 5, "p")
    assert torch.equal(a, sc.sample_answers(model, prompts, allowed, 1.0, [0, 1, 2], 5, "p"))  # repeatable
    b = sc.sample_answers(alone, prompts[1:2], allowed, 1.0, [1], 5, "p")
    assert torch.equal(a[1:2], b)  # member 1's samples do not depend on members 0 and 2
    assert not torch.equal(a[:, 0], a[:, 1])  # samples differ from each other
    prefix = sc.sample_answers(model, prompts, allowed, 1.0, [0, 1, 2], 3, "p", chunk=1)
    assert (prefix == a[:, :3]).float().mean() > 0.99  # the first 3 of 5 (rounding across batch shapes aside)
    cold = sc.sample_answers(model, prompts, allowed, 1e-6, [0, 1, 2], 2, "p")
    greedy = sc.decode(model, prompts, allowed)
    assert torch.equal(cold[:, 0], greedy) and torch.equal(cold[:, 1], greedy)
    fmt = a[..., 0::2]
    pointers = (fmt >= cs.pointer0(cfg.modulus)) & (fmt < cs.vocab_size(cfg.modulus, cfg.max_operands))
    assert pointers.all() and (a[..., 1::2] < cfg.modulus).all()


def test_the_ensemble_trains_like_separate_models_of_the_same_seeds():
    from learnlab.engine.context import RunContext

    cfg = smoke(steps=10, seeds=2, test_items=8)

    def run(c):
        from contextlib import contextmanager

        @contextmanager
        def progress(title, n):
            yield lambda i: None

        return ttc.measure(c, RunContext(progress=progress))

    together = run(cfg)
    second = run(cfg.model_copy(update={"seed": 1, "seeds": 1}))
    a = together[(together.seed == 1) & (together.split == "train")].value.to_numpy()
    b = second[second.split == "train"].value.to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- claims --------------------------------------------------------------------------------------------

KS = [1, 3, 5, 10, 20, 40]


def table(acc, greedy=0.5, slope=0.02, temps=("T0.5", "T0.7", "T1"), seeds=5, steps=(1, 2, 3, 4)):
    """A run's table: per temperature the vote accuracy at each k (acc: {k: mean}), greedy, and gains by
    steps rising by `slope` per step around gain(40); each seed wiggles a little so CIs have a width."""
    wiggle = np.linspace(-0.01, 0.01, seeds)
    g = greedy + wiggle
    t = {ttc.GREEDY: {"acc": describe(list(g))}}
    for a in temps:
        cells = {}
        for i, k in enumerate(KS):
            vals = acc[k] + wiggle * (1 + 0.1 * i) + 0.002 * np.sin(np.arange(seeds) + k)
            cells[f"acc_k{k}"] = describe(list(vals))
            cells[f"gain_k{k}"] = describe(list(vals - g))
        mid = np.mean(steps)
        for n in steps:
            gain = acc[40] - greedy + slope * (n - mid) + 0.005 * np.cos(np.arange(seeds) * n)
            cells[f"gain_k40_steps{n}"] = describe(list(gain))
        t[a] = cells
    return t


RISING = {1: 0.45, 3: 0.55, 5: 0.60, 10: 0.66, 20: 0.68, 40: 0.69}
BEATS, NON_DECREASING, MOST_BY_TEN, LONGER = ttc.CLAIMS

FAILS = {
    "beats-greedy": table({k: 0.50 for k in KS}, greedy=0.55),  # the vote is worse than greedy
    "non-decreasing": table({**RISING, 20: 0.60, 40: 0.70}),  # a drop from k = 10 to 20
    "most-by-ten": table({1: 0.45, 3: 0.46, 5: 0.47, 10: 0.48, 20: 0.60, 40: 0.75}),  # gain comes late
    "longer": table(RISING, slope=-0.03),  # gain falls with steps
}


@pytest.mark.parametrize(("claim", "name"), list(zip(ttc.CLAIMS, FAILS, strict=True)), ids=list(FAILS))
def test_every_claim_holds_on_a_table_made_to_hold_it_and_fails_on_one_made_to_fail_it(claim, name):
    assert claim.judge(table(RISING)).as_dict()["verdict"] == "reproduced"
    assert claim.judge(FAILS[name]).as_dict()["verdict"] == "not reproduced"


def test_claims_that_cannot_tell_are_undetermined():
    no_gain = table({k: 0.52 for k in KS}, greedy=0.5)  # gain +2 points at k=40: above the no-gain bound
    flat_vote = table({k: 0.50 for k in KS}, greedy=0.5)  # no gain: nothing to share by k = 10
    assert MOST_BY_TEN.judge(flat_vote).as_dict()["verdict"] == "undetermined"
    assert BEATS.judge(no_gain).as_dict()["verdict"] == "reproduced"
    noisy = table(RISING, slope=0.0)
    assert LONGER.judge(noisy).as_dict()["verdict"] == "undetermined"
    few = table(RISING, seeds=3)
    assert {c.judge(few).as_dict()["verdict"] for c in ttc.CLAIMS} == {"undetermined"}
    one_k = {a: {m: c for m, c in cells.items() if m in ("acc", "acc_k40", "gain_k40")}
             for a, cells in table(RISING).items()}  # fmt: skip
    assert NON_DECREASING.judge(one_k).as_dict()["verdict"] == "undetermined"
    assert MOST_BY_TEN.judge(one_k).as_dict()["verdict"] == "undetermined"


# --- the CLI and a whole run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--set", "ks=[]"], "ks"), (["--set", "ks=[0, 5]"], "ks"), (["--set", "temperatures=[0.7, 0]"], "temperatures"),
     (["--set", "temperatures=[-1]"], "temperatures"), (["--set", "samples=40"], "samples"),
     (["--set", "max_operands=13"], "max_operands")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, argv, named):
    code, _, err = cli([*RUN, *argv])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


def test_smoke_run_end_to_end_with_figures_and_the_model(tmp_path):
    out = tmp_path / "run"
    code, _, err = cli([*RUN, "--out", str(out)])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    cfg = smoke()
    t = summary["table"]
    assert list(t) == [ttc.GREEDY, *(ttc.arm(x) for x in cfg.temperatures)]
    for a in (ttc.arm(x) for x in cfg.temperatures):
        assert {f"acc_k{k}" for k in cfg.ks} | {f"gain_k{k}" for k in cfg.ks} <= set(t[a])
        assert len(t[a]["acc_k1"]["values"]) == cfg.seeds
        for v in t[a]["acc_k5"]["values"]:
            assert 0.0 <= v <= 1.0
    assert [c["verdict"] for c in summary["claims"]] == ["undetermined"] * 4  # 2 seeds; claims need 5
    assert (out / "accuracy_vs_k.png").exists() and (out / "gain_by_steps.png").exists()
    run = learnlab.load_run(out)
    model = run.models["chain"].model
    assert model.n_models == cfg.seeds
    again = learnlab.run("test-time-compute", preset="smoke", out=tmp_path / "again", progress=False)
    assert again["table"] == t  # deterministic
