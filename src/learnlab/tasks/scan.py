"""SCAN (Lake & Baroni 2018), generated from its grammar: commands in a small English fragment and the
action sequences they mean; no download.

The grammar (words in quotes; x1, x2 stand for sub-commands):

    C -> S | S "and" S | S "after" S          [[x1 and x2]] = [[x1]][[x2]]; [[x1 after x2]] = [[x2]][[x1]]
    S -> V "twice" | V "thrice" | V           [[x twice]] = [[x]][[x]]; thrice: three times
    V -> D[1] "opposite" D[2] | D[1] "around" D[2] | D | U
    D -> U "left" | U "right" | "turn" "left" | "turn" "right"
    U -> "walk" | "look" | "run" | "jump"

"u opposite left" turns left twice, then does u; "u around left" turns left and does u, four times;
"turn" does nothing itself (so "turn around left" is four left turns). That gives 34 verb phrases V,
102 S, and 102 + 2·102² = 20,910 distinct commands over 13 words and 6 actions, at most 9 words and
48 actions long.

Splits (the public release's sizes, reproduced by construction, see `split`):
- simple: a random 80/20 split of the 20,910 commands (16,728 / 4,182); the release's own permutation
  is not reproducible from the grammar, only its sizes.
- length: train on commands of at most 22 actions (16,990), test on the longer ones (3,920).
- add-primitive (jump, turn_left): train on every command without the primitive plus the primitive
  alone, repeated until it is 10% of the training lines (jump: 13,203 + 1,467 = 14,670 lines; turn
  left: 19,701 + 2,189 = 21,890), test on every other command that contains it (7,706 / 1,208).
  "Contains turn left" means the verb phrase "turn left" (the two words in a row): "turn opposite left"
  and "turn around left" are other verb phrases and stay in training, which is what gives 1,208.
- around_right (template): train on commands with no "around right" (15,225), test on those with
  "u around right" for an action u (4,476). Commands with "turn around right" are in neither (1,209):
  the release drops them, and only that reproduces its test size.
- The jump curve (Lake & Baroni's experiment 3): k distinct composed jump commands, drawn from the jump
  test set, move into training (k = 1, 2, 4, …).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np

PRIMITIVES = ("walk", "look", "run", "jump")
ACTION_OF = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
TURN = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
WORDS = (*PRIMITIVES, "turn", "left", "right", "opposite", "around", "twice", "thrice", "and", "after")
ACTIONS = ("I_WALK", "I_LOOK", "I_RUN", "I_JUMP", "I_TURN_LEFT", "I_TURN_RIGHT")
SPLITS = ("simple", "length", "jump", "turn_left", "around_right")
ADD_PRIMITIVES = {"jump": "jump", "turn_left": "turn left"}  # split -> the held-out verb phrase
PRIMITIVE_SHARE = 0.10  # the held-out primitive's share of the add-primitive training lines
LENGTH_CUTOFF = 22  # the length split trains on at most this many actions
SIMPLE_TRAIN = 0.8

Example = tuple[str, str]  # (command, actions), words and actions separated by single spaces


def _verb_phrases() -> dict[str, list[str]]:
    """The 34 verb phrases V with their meanings (lists of actions)."""
    out: dict[str, list[str]] = {u: [ACTION_OF[u]] for u in PRIMITIVES}
    for direction, turn in TURN.items():
        for u in (*PRIMITIVES, "turn"):
            act = [] if u == "turn" else [ACTION_OF[u]]
            out[f"{u} {direction}"] = [turn, *act]
            out[f"{u} opposite {direction}"] = [turn, turn, *act]
            out[f"{u} around {direction}"] = [turn, *act] * 4
    return out


def _sentences(verbs: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v, meaning in verbs.items():
        out[v] = meaning
        out[f"{v} twice"] = meaning * 2
        out[f"{v} thrice"] = meaning * 3
    return out


def interpret(command: str) -> str:
    """The action sequence a command means, by the grammar's rules (KeyError for a non-command)."""
    verbs = _verb_phrases()
    s = _sentences(verbs)
    for conj in (" and ", " after "):
        if conj in command:
            x1, x2 = command.split(conj)
            first, second = (s[x1], s[x2]) if conj == " and " else (s[x2], s[x1])
            return " ".join(first + second)
    return " ".join(s[command])


@cache
def all_commands() -> tuple[Example, ...]:
    """Every distinct SCAN command with its action sequence, in a fixed order."""
    s = _sentences(_verb_phrases())
    out = [(x, " ".join(a)) for x, a in s.items()]
    for (x1, a1), (x2, a2) in itertools.product(s.items(), repeat=2):
        out.append((f"{x1} and {x2}", " ".join(a1 + a2)))
        out.append((f"{x1} after {x2}", " ".join(a2 + a1)))
    return tuple(out)


def _contains(command: str, phrase: str) -> bool:
    return f" {phrase} " in f" {command} "


def _verb_of(sentence: str) -> str:
    return sentence.removesuffix(" twice").removesuffix(" thrice")


def _verbs(command: str) -> list[str]:
    parts = command.split(" and ") if " and " in command else command.split(" after ")
    return [_verb_of(p) for p in parts]


def _uses(command: str, phrase: str) -> bool:
    """A primitive word anywhere ("jump left" uses jump); a two-word primitive as a whole verb phrase."""
    return phrase in command.split() if " " not in phrase else phrase in _verbs(command)


@dataclass(frozen=True)
class Split:
    train: tuple[Example, ...]  # with the release's repetitions (add-primitive splits)
    test: tuple[Example, ...]


def check_split(name: str) -> None:
    """ValueError (one line) for a split not in SCAN."""
    if name not in SPLITS:
        raise ValueError(f"unknown SCAN split {name!r} (available: {', '.join(SPLITS)})")


def check_primitive(word: str) -> None:
    """ValueError (one line) for a primitive the grammar does not have."""
    if word not in PRIMITIVES:
        raise ValueError(f"primitive {word!r} is not in the SCAN grammar (its primitives: {', '.join(PRIMITIVES)})")


def _add_primitive(phrase: str) -> Split:
    data = all_commands()
    alone = next(e for e in data if e[0] == phrase)
    held = [e for e in data if _uses(e[0], phrase)]
    rest = [e for e in data if not _uses(e[0], phrase)]
    repeats = round(len(rest) * PRIMITIVE_SHARE / (1 - PRIMITIVE_SHARE))  # alone = 10% of the lines
    return Split(tuple(rest + [alone] * repeats), tuple(e for e in held if e != alone))


def primitive_split(word: str) -> Split:
    """The add-primitive split of any action word (the release has jump's; walk, look, run alike)."""
    check_primitive(word)
    return _add_primitive(word)


def split(name: str, seed: int = 0) -> Split:
    """A SCAN split by name (see the module docstring); `seed` draws the simple split's permutation."""
    check_split(name)
    data = all_commands()
    if name == "simple":
        order = np.random.default_rng(seed).permutation(len(data))
        cut = round(SIMPLE_TRAIN * len(data))
        return Split(tuple(data[i] for i in order[:cut]), tuple(data[i] for i in order[cut:]))
    if name == "length":
        short = [len(a.split()) <= LENGTH_CUTOFF for _, a in data]
        return Split(
            tuple(e for e, s in zip(data, short, strict=True) if s),
            tuple(e for e, s in zip(data, short, strict=True) if not s),
        )
    if name in ADD_PRIMITIVES:
        return _add_primitive(ADD_PRIMITIVES[name])
    around = [any(v.endswith("around right") for v in _verbs(x)) for x, _ in data]
    turn = [_contains(x, "turn around right") for x, _ in data]
    return Split(
        tuple(e for e, a in zip(data, around, strict=True) if not a),
        tuple(e for e, a, t in zip(data, around, turn, strict=True) if a and not t),
    )


def with_composed(base: Split, k: int, seed: int, primitive: str = "jump") -> Split:
    """An add-primitive split with k distinct composed commands of the primitive moved from test to train
    (Lake & Baroni's experiment 3: 1, 2, 4, 8, 16, 32 composed "jump" commands)."""
    check_primitive(primitive)
    if not 0 <= k <= len(base.test):
        raise ValueError(f"composed examples k={k} must be 0 … {len(base.test)}")
    pick = set(np.random.default_rng(seed).choice(len(base.test), size=k, replace=False).tolist())
    moved = tuple(e for i, e in enumerate(base.test) if i in pick)
    return Split(base.train + moved, tuple(e for i, e in enumerate(base.test) if i not in pick))


# --- token ids -----------------------------------------------------------------------------------------

PAD, BOS, EOS = 0, 1, 2
IN_VOCAB = {w: i + 3 for i, w in enumerate(WORDS)}  # 0 pad, 1/2 unused on the input side
OUT_VOCAB = {a: i + 3 for i, a in enumerate(ACTIONS)}
IN_SIZE, OUT_SIZE = len(WORDS) + 3, len(ACTIONS) + 3
MAX_IN, MAX_OUT = 9, 48


def encode(examples: tuple[Example, ...] | list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Commands as [N, 9] word ids (PAD after the end) and actions as [N, 49] ids ending in EOS."""
    x = np.full((len(examples), MAX_IN), PAD, dtype=np.int64)
    y = np.full((len(examples), MAX_OUT + 1), PAD, dtype=np.int64)
    for i, (cmd, act) in enumerate(examples):
        words, acts = cmd.split(), act.split()
        x[i, : len(words)] = [IN_VOCAB[w] for w in words]
        y[i, : len(acts)] = [OUT_VOCAB[a] for a in acts]
        y[i, len(acts)] = EOS
    return x, y
