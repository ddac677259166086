"""SCAN from its grammar: the counts of the paper, the public release's split sizes, and the meaning of
each construction (hypothesis over random sub-commands)."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks import scan

SENTENCES = sorted({x for x, _ in scan.all_commands() if " and " not in x and " after " not in x})
VERBS = sorted({scan._verb_of(s) for s in SENTENCES})


def test_grammar_counts():
    data = scan.all_commands()
    assert len(data) == len({x for x, _ in data}) == 20_910
    assert {w for x, _ in data for w in x.split()} == set(scan.WORDS) and len(scan.WORDS) == 13
    assert {a for _, y in data for a in y.split()} == set(scan.ACTIONS) and len(scan.ACTIONS) == 6
    assert max(len(x.split()) for x, _ in data) == 9
    assert max(len(y.split()) for _, y in data) == 48
    assert len(SENTENCES) == 102 and len(VERBS) == 34


@pytest.mark.parametrize(
    ("name", "train", "test"),
    [
        ("simple", 16_728, 4_182),
        ("length", 16_990, 3_920),
        ("jump", 14_670, 7_706),
        ("turn_left", 21_890, 1_208),
        ("around_right", 15_225, 4_476),
    ],
)
def test_split_sizes_match_the_release(name, train, test):
    s = scan.split(name)
    assert (len(s.train), len(s.test)) == (train, test)
    assert not {x for x, _ in s.train} & {x for x, _ in s.test}


def test_split_contents():
    length = scan.split("length")
    assert max(len(y.split()) for _, y in length.train) == 22 < min(len(y.split()) for _, y in length.test)
    jump = scan.split("jump")
    counts = Counter(jump.train)
    assert counts[("jump", "I_JUMP")] == 1_467  # 10% of the training lines
    assert all("jump" not in x.split() for x, _ in set(jump.train) - {("jump", "I_JUMP")})
    assert all("jump" in x.split() for x, _ in jump.test)
    turn = scan.split("turn_left")
    assert Counter(turn.train)[("turn left", "I_TURN_LEFT")] == 2_189
    assert ("turn around left", "I_TURN_LEFT " * 3 + "I_TURN_LEFT") in turn.train
    around = scan.split("around_right")
    assert all("around right" not in x for x, _ in around.train)
    assert all("around right" in x and "turn around right" not in x for x, _ in around.test)
    assert scan.split("simple", seed=1).test != scan.split("simple", seed=0).test


def test_composed_examples_move_from_test_to_train():
    base = scan.split("jump")
    more = scan.with_composed(base, 8, seed=3)
    moved = set(more.train) - set(base.train)
    assert len(moved) == 8 and not moved & set(more.test)
    assert len(more.test) == len(base.test) - 8
    assert scan.with_composed(base, 8, seed=3) == more


def test_bad_split_and_primitive_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown SCAN split 'jmup'"):
        scan.split("jmup")
    with pytest.raises(ValueError, match="primitive 'fly' is not in the SCAN grammar"):
        scan.with_composed(scan.split("jump"), 1, 0, primitive="fly")


sentences = st.sampled_from(SENTENCES)


@settings(max_examples=80, deadline=None)
@given(sentences, sentences)
def test_and_after_order(x1, x2):
    a1, a2 = scan.interpret(x1), scan.interpret(x2)
    assert scan.interpret(f"{x1} and {x2}") == f"{a1} {a2}"
    assert scan.interpret(f"{x1} after {x2}") == f"{a2} {a1}"
    table = dict(scan.all_commands())
    assert table[f"{x1} and {x2}"] == f"{a1} {a2}" and table[f"{x1} after {x2}"] == f"{a2} {a1}"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(VERBS))
def test_twice_thrice_repeat(v):
    a = scan.interpret(v).split()
    assert scan.interpret(f"{v} twice").split() == a * 2
    assert scan.interpret(f"{v} thrice").split() == a * 3


@settings(max_examples=40, deadline=None)
@given(st.sampled_from((*scan.PRIMITIVES, "turn")), st.sampled_from(("left", "right")))
def test_opposite_and_around(u, d):
    turn = scan.TURN[d]
    act = [] if u == "turn" else [scan.ACTION_OF[u]]
    assert scan.interpret(f"{u} {d}").split() == [turn, *act]
    assert scan.interpret(f"{u} opposite {d}").split() == [turn, turn, *act]
    assert scan.interpret(f"{u} around {d}").split() == [turn, *act] * 4


def test_encode_round_trip():
    data = scan.all_commands()[:500]
    x, y = scan.encode(data)
    words = {i: w for w, i in scan.IN_VOCAB.items()}
    acts = {i: a for a, i in scan.OUT_VOCAB.items()}
    for (cmd, act), xi, yi in zip(data, x, y, strict=True):
        assert " ".join(words[i] for i in xi if i != scan.PAD) == cmd
        n = len(act.split())
        assert yi[n] == scan.EOS and " ".join(acts[i] for i in yi[:n]) == act
