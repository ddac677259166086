"""The synthetic biography world of Zucchet et al. (2025), "How do language models learn facts?".

A population of individuals with unique three-part names and six attributes drawn uniformly and
independently from fixed pools (`biography_text`). A biography states all six facts, one sentence
per attribute, in a random order; each sentence is one of 25 templates for that attribute. Every
(individual, attribute) splits its 25 templates at random into 20 training and 5 held-out ones, so
recall can be tested on wordings never seen with that individual. Unseen individuals (`World.unseen`)
are never trained on: the model's loss on their values is what a model that knows nothing about the
individual can do (`no_knowledge_baseline` is its ideal, the pools' log-sizes; `empirical_baseline` is
the same ideal for the values the N seen individuals actually have, lower when N is not well above the
pools).

A world may use fewer values than the paper's pools (`Pools`: the first k of each fixed pool), so that N
can stay well above every pool at laptop scale, where the phases separate. The tokenizer is always
trained on the full text, so a smaller world changes no token.

Text is tokenized by a small byte-level BPE (`load_tokenizer`). Sentences are never tokenized whole:
every piece — a template's fixed text, each name part, each value — is encoded once, separately, and
a biography is the concatenation of those id lists. So a value's tokens are the same wherever it
appears, never merge with the period or the preceding word, and their positions are known exactly
(`Batch.value_attr`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tokenizers
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor

from learnlab import cache
from learnlab.tasks import biography_text as text

ATTRIBUTES = text.ATTRIBUTES  # birth_date, birth_city, university, major, company, current_city
N_TEMPLATES = 25
N_TRAIN_TEMPLATES = 20  # the other 5 of each (individual, attribute) are held out
BOS, PAD = "<bos>", "<pad>"
Split = Literal["train", "heldout"]


def _value_pools() -> tuple[tuple[str, ...] | None, ...]:
    """The value strings of each attribute; None for the birth date (day, month and year combined)."""
    return None, text.cities(), text.universities(), text.majors(), text.companies(), text.cities()


@dataclass(frozen=True)
class Pools:
    """How many values of each pool a world draws from: the first k of each fixed pool (days 1..k, years
    from 1900). The defaults are the paper's pools; the 12 months are always all used."""

    n_days: int = 28
    n_years: int = 201
    n_cities: int = 800  # birth city and current city
    n_universities: int = 200
    n_majors: int = 100
    n_companies: int = 500

    def __post_init__(self) -> None:
        for key, limit in pool_limits().items():
            if not 1 <= getattr(self, key) <= limit:
                raise ValueError(f"{key} must be in 1..{limit} (the text's pool), got {getattr(self, key)}")

    @property
    def attribute_sizes(self) -> tuple[int, ...]:
        """The number of possible values of each attribute (the date: day x month x year)."""
        n_dates = self.n_days * len(text.MONTHS) * self.n_years
        return n_dates, self.n_cities, self.n_universities, self.n_majors, self.n_companies, self.n_cities


@functools.cache
def pool_limits() -> dict[str, int]:
    """The largest size of each pool: the text's."""
    return {"n_days": text.DAYS, "n_years": len(text.YEARS), "n_cities": len(text.cities()),
            "n_universities": len(text.universities()), "n_majors": len(text.majors()),
            "n_companies": len(text.companies())}  # fmt: skip


PAPER_POOLS = Pools()


def attribute_sizes(pools: Pools = PAPER_POOLS) -> tuple[int, ...]:
    """The number of possible values of each attribute."""
    return pools.attribute_sizes


def no_knowledge_baseline(pools: Pools = PAPER_POOLS) -> float:
    """Mean over attributes of log(number of values), in nats: the loss of a uniform guess."""
    return sum(math.log(size) for size in pools.attribute_sizes) / len(ATTRIBUTES)


def empirical_baseline(world: World) -> float:
    """Mean over attributes of the entropy (nats) of the seen individuals' values: the loss of a model
    that knows the value distribution of the population it was trained on but not who has which value.
    The date counts as the sum of its day, month and year entropies (its tokens come one by one, so a
    model without knowledge learns their marginals). NaN for a world without seen individuals."""
    values = world.values[: world.n_individuals]
    if not len(values):
        return math.nan
    date = sum(_entropy(part) for part in _date_parts(values[:, 0]))
    return (date + sum(_entropy(values[:, a]) for a in range(1, len(ATTRIBUTES)))) / len(ATTRIBUTES)


def chance_accuracy(world: World) -> float:
    """Mean over attributes of the accuracy of a model that knows the seen individuals' value distribution
    but not who has which value: greedy decoding then gives every individual the most common value (the
    date: the most common day, month and year, each chosen alone, as its tokens come one by one). An upper
    bound where values share a first token, which greedy decoding may pick instead. NaN without seen
    individuals."""
    values = world.values[: world.n_individuals]
    if not len(values):
        return math.nan
    date = np.logical_and.reduce([part == _mode(part) for part in _date_parts(values[:, 0])]).mean()
    others = [(values[:, a] == _mode(values[:, a])).mean() for a in range(1, len(ATTRIBUTES))]
    return float(date + sum(others)) / len(ATTRIBUTES)


def _mode(labels: np.ndarray) -> int:
    """The most common label (the smallest of a tie)."""
    found, counts = np.unique(labels, return_counts=True)
    return int(found[counts.argmax()])


def _entropy(labels: np.ndarray) -> float:
    """Entropy (nats) of the empirical distribution of integer labels."""
    p = np.unique(labels, return_counts=True)[1] / len(labels)
    return float(-(p * np.log(p)).sum())


def _date_parts(index: Any, n_days: int = text.DAYS) -> tuple[Any, Any, Any]:
    """Birth-date value index (an int or an array) in a calendar of n_days a month -> (day 0.., month 0..11,
    year offset 0..)."""
    rest, day = divmod(index, n_days)
    year, month = divmod(rest, len(text.MONTHS))
    return day, month, year


def _date_index(day: np.ndarray, month: np.ndarray, year: np.ndarray) -> np.ndarray:
    """The inverse of `_date_parts` in the full 28-day calendar: the index every world stores."""
    return day + text.DAYS * (month + len(text.MONTHS) * year)


def value_string(attribute: int, index: int) -> str:
    """The text of value `index` of attribute `attribute`, e.g. "14 March 1956"."""
    if attribute == 0:
        day, month, year = _date_parts(int(index))
        return f"{day + 1} {text.MONTHS[month]} {text.YEARS[year]}"
    return _value_pools()[attribute][index]


@dataclass(frozen=True, eq=False)
class World:
    """Individuals 0..n_individuals-1 are trained on (`seen`); the rest (`unseen`) are held out."""

    n_individuals: int
    n_unseen: int
    seed: int
    names: np.ndarray  # [n_total, 3] indices of (first, middle, last) name; first and middle share a pool
    values: np.ndarray  # [n_total, 6] value index of each attribute (dates: in the full 28-day calendar)
    templates: np.ndarray  # [n_total, 6, 25] int8 permutation of template ids: 20 training, then 5 held-out
    pools: Pools = PAPER_POOLS  # the values are drawn from the first k of each pool

    @classmethod
    def generate(cls, n_individuals: int, n_unseen: int, seed: int, *, pools: Pools = PAPER_POOLS) -> World:
        """Uniform, independent values from `pools`. With the paper's pools, the same world as ever for a seed:
        the same draws (a date is one index into the possibly smaller calendar, then re-indexed)."""
        if n_individuals < 0 or n_unseen < 0:
            raise ValueError("n_individuals and n_unseen must be >= 0")
        rng = np.random.default_rng(seed)
        n = n_individuals + n_unseen
        names = _unique_names(n, rng)
        values = np.stack([rng.integers(0, size, n) for size in pools.attribute_sizes], axis=1)
        values[:, 0] = _date_index(*_date_parts(values[:, 0], pools.n_days))
        ids = np.broadcast_to(np.arange(N_TEMPLATES, dtype=np.int8), (n, len(ATTRIBUTES), N_TEMPLATES))
        templates = rng.permuted(ids, axis=-1)
        return cls(n_individuals, n_unseen, seed, names, values, templates, pools)

    @property
    def n_total(self) -> int:
        return self.n_individuals + self.n_unseen

    @property
    def seen(self) -> range:
        return range(self.n_individuals)

    @property
    def unseen(self) -> range:
        return range(self.n_individuals, self.n_total)

    def name(self, individual: int) -> str:
        first, middle, last = self.names[individual]
        return f"{text.first_names()[first]} {text.first_names()[middle]} {text.last_names()[last]}"

    def value(self, individual: int, attribute: int) -> str:
        return value_string(attribute, self.values[individual, attribute])

    def template_ids(self, individual: int, attribute: int, split: Split) -> np.ndarray:
        """The ids (into `biography_text.TEMPLATES[attribute]`) of one split's templates."""
        order = self.templates[individual, attribute]
        return order[:N_TRAIN_TEMPLATES] if split == "train" else order[N_TRAIN_TEMPLATES:]


def _unique_names(n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct (first, middle, last) triples, drawn uniformly; a repeat is redrawn."""
    sizes = np.array([len(text.first_names()), len(text.first_names()), len(text.last_names())])
    if n > sizes.prod():
        raise ValueError(f"only {sizes.prod()} distinct names exist, asked for {n}")
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n:
        new = np.ravel_multi_index(rng.integers(0, sizes, (n - len(keys), 3)).T, sizes)
        both = np.concatenate([keys, new])
        _, first_seen = np.unique(both, return_index=True)
        keys = both[np.sort(first_seen)]  # keeps the earlier draws, in order
    return np.stack(np.unravel_index(keys, sizes), axis=1).astype(np.int32)


def _segments(template: str) -> tuple[str, str]:
    """The fixed text of a template: (before the name, between name and value), spaced to concatenate.

    A sentence is `before + " " + name + between + " " + value + "."`, every piece with its own leading
    space, so the sentence reads normally and also starts with a space wherever it stands."""
    before, rest = template.split("{name}")
    between, after = rest.split("{value}")
    assert after == ".", template
    before = " " + before.strip() if before.strip() else ""
    return before, between.rstrip()


def render(template: str, name: str, value: str) -> str:
    """A sentence's text, exactly as the concatenated pieces decode (with a leading space)."""
    before, between = _segments(template)
    return f"{before} {name}{between} {value}."


# --- tokenizer ---------------------------------------------------------------------------------------------


def _corpus(n_individuals: int, seed: int) -> Iterator[str]:
    """Biographies of a throwaway world (all 25 templates), then every pool value and name part."""
    world = World.generate(n_individuals, 0, seed)
    rng = np.random.default_rng(seed + 1)
    for i in range(n_individuals):
        name = world.name(i)
        picks = rng.integers(0, N_TEMPLATES, len(ATTRIBUTES))
        yield "".join(render(text.TEMPLATES[a][t], name, world.value(i, a)) for a, t in enumerate(picks))
    for pool in (text.first_names(), text.last_names(), *(p for p in _value_pools() if p is not None)):
        yield "".join(" " + v for v in pool)
    yield "".join(f" {d}" for d in range(1, text.DAYS + 1)) + "".join(" " + m for m in text.MONTHS)
    yield "".join(f" {y}" for y in text.YEARS)


def _train(vocab_size: int, corpus_individuals: int, corpus_seed: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(corpus_individuals, corpus_seed), trainer)
    return tokenizer


def load_tokenizer(vocab_size: int = 2048, corpus_individuals: int = 3000, corpus_seed: int = 0) -> Tokenizer:
    """The byte-level BPE for biographies: trained on first use (~0.2 s), then read from the cache.

    Cached as JSON under $LEARNLAB_CACHE/tokenizers, keyed by the arguments, the pools' and templates'
    content and the `tokenizers` version, written atomically so concurrent runs never read half a file.
    A cached file that is damaged, not a tokenizer of this kind, or writable by others is trained again
    and replaced; an untrusted cache directory is not used (`learnlab.cache`)."""
    if vocab_size < 259:
        raise ValueError(f"vocab_size must exceed the 256 bytes and 2 special tokens, got {vocab_size}")
    params = [vocab_size, corpus_individuals, corpus_seed, text.content_hash(), tokenizers.__version__]
    key = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:16]
    try:
        path = cache.private_dir("tokenizers") / f"biographies-{vocab_size}-{key}.json"
    except cache.UntrustedCache as why:
        warnings.warn(f"learnlab: not using the tokenizer cache: {why}; training the tokenizer", stacklevel=2)
        return _train(vocab_size, corpus_individuals, corpus_seed)
    if path.exists():
        cached = _read_cached(path, vocab_size)
        if isinstance(cached, Tokenizer):
            return cached
        warnings.warn(f"learnlab: the cached tokenizer {str(path)!r} {cached}; training it again", stacklevel=2)
    tokenizer = _train(vocab_size, corpus_individuals, corpus_seed)
    cache.write_atomic(path, tokenizer.to_str().encode())  # a concurrent run reads the whole file or the old one
    return tokenizer


def _read_cached(path: Path, vocab_size: int) -> Tokenizer | str:
    """The tokenizer cached at `path`, or what is wrong with it."""
    if problem := cache.untrusted(path):
        return f"cannot be trusted ({problem})"
    try:
        tokenizer = Tokenizer.from_str(path.read_text())
    except Exception as err:  # `tokenizers` raises a bare Exception on malformed JSON
        return f"is damaged ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    return problem if (problem := tokenizer_problem(tokenizer, vocab_size)) else tokenizer


def tokenizer_problem(tokenizer: Tokenizer, vocab_size: int) -> str | None:
    """What makes `tokenizer` other than a biography BPE of `vocab_size` tokens (None if nothing): the
    special tokens where training puts them, the size, and text that decodes back to itself."""
    if (tokenizer.token_to_id(BOS), tokenizer.token_to_id(PAD)) != (0, 1):
        return f"lacks {BOS} and {PAD} as tokens 0 and 1"
    if tokenizer.get_vocab_size() != vocab_size:
        return f"has {tokenizer.get_vocab_size()} tokens, not {vocab_size}"
    sample = render(text.TEMPLATES[0][0], " ".join(text.first_names()[:3]), text.cities()[0]) + " Zürich 1999 ~{}"
    if tokenizer.decode(tokenizer.encode(sample).ids) != sample:
        return "does not decode text back to itself"
    return None


# --- sampling ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """Token ids of biographies, and where their values are.

    For language modelling the input is tokens[:, :-1] and the target tokens[:, 1:]: the value tokens
    are targets, each predicted from the position before it (the first value token from the last
    token of the template's text). value_attr and first_value describe `tokens`, so shift them the
    same way (`value_attr[:, 1:]`), as `learnlab.metrics.attribute_scores` does. A value cut off by
    seq_len is not marked at all. name_mask marks the individual's name in every sentence (where attention
    to the subject is measured); a name cut off by seq_len is marked up to the cut.
    """

    tokens: Tensor  # [B, seq_len] int64: <bos>, the six sentences, <pad>s
    value_attr: Tensor  # [B, seq_len] int8: the attribute (0..5) whose value token is at that position, else -1
    first_value: Tensor  # [B, seq_len] bool: the first token of each value
    individuals: Tensor  # [B] int64
    templates: Tensor  # [B, 6] int64: the template id used for each attribute
    order: Tensor  # [B, 6] int64: the attribute of the first, second, ... sentence
    name_mask: Tensor  # [B, seq_len] bool: the tokens of the individual's name (in every sentence)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def trimmed(self, pad_id: int) -> Batch:
        """Without the trailing columns that are padding in every sequence: evaluation needs no fixed width."""
        width = int((self.tokens != pad_id).sum(-1).max())
        cut = {f: getattr(self, f)[:, :width] for f in ("tokens", "value_attr", "first_value", "name_mask")}
        return replace(self, **cut)


class BiographyEncoder:
    """Turns individuals of a `World` into token batches, from pieces encoded once (see the module doc)."""

    def __init__(self, world: World, tokenizer: Tokenizer):
        self.world = world
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.bos_id = tokenizer.token_to_id(BOS)
        self.pad_id = tokenizer.token_to_id(PAD)
        if self.bos_id is None or self.pad_id is None:
            raise ValueError(f"the tokenizer lacks {BOS} or {PAD}")
        enc = self._encode
        self._before = [[enc(_segments(t)[0]) for t in ts] for ts in text.TEMPLATES]
        self._between = [[enc(_segments(t)[1]) for t in ts] for ts in text.TEMPLATES]
        self._period = enc(".")
        self._first = [enc(" " + s) for s in text.first_names()]
        self._last = [enc(" " + s) for s in text.last_names()]
        self._days = [enc(f" {d}") for d in range(1, text.DAYS + 1)]
        self._months = [enc(" " + m) for m in text.MONTHS]
        self._years = [enc(f" {y}") for y in text.YEARS]
        self._values = [None if p is None else [enc(" " + v) for v in p] for p in _value_pools()]

    def _encode(self, piece: str) -> list[int]:
        return self.tokenizer.encode(piece, add_special_tokens=False).ids if piece else []

    def name_ids(self, individual: int) -> list[int]:
        return self._name_ids(self.world.names[individual].tolist())

    def value_ids(self, individual: int, attribute: int) -> list[int]:
        return self._value_ids(attribute, int(self.world.values[individual, attribute]))

    def _name_ids(self, parts: list[int]) -> list[int]:
        first, middle, last = parts
        return self._first[first] + self._first[middle] + self._last[last]

    def _value_ids(self, attribute: int, index: int) -> list[int]:
        if attribute == 0:
            day, month, year = _date_parts(int(index))
            return self._days[day] + self._months[month] + self._years[year]
        return self._values[attribute][index]

    @functools.cached_property
    def max_length(self) -> int:
        """An upper bound on a biography's length in tokens, <bos> included: a seq_len that never truncates."""
        name = 2 * max(map(len, self._first)) + max(map(len, self._last))
        dates = max(map(len, self._days)) + max(map(len, self._months)) + max(map(len, self._years))
        values = [dates, *(max(map(len, v)) for v in self._values[1:])]
        fixed = [
            max(len(b) + len(m) for b, m in zip(bs, ms, strict=True))
            for bs, ms in zip(self._before, self._between, strict=True)
        ]
        return 1 + len(ATTRIBUTES) * (name + len(self._period)) + sum(values) + sum(fixed)

    def sample(
        self, individuals: Sequence[int] | np.ndarray, split: Split, rng: np.random.Generator, seq_len: int
    ) -> Batch:
        """One biography per individual: each attribute in one of the split's templates (uniformly), the
        six sentences in a uniformly random order, after <bos>, padded with <pad> or cut to seq_len."""
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        ids = np.asarray(individuals, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.world.n_total):
            raise IndexError(f"individuals must lie in 0..{self.world.n_total - 1}")
        n, n_attr = len(ids), len(ATTRIBUTES)
        lo, hi = (0, N_TRAIN_TEMPLATES) if split == "train" else (N_TRAIN_TEMPLATES, N_TEMPLATES)
        slots = rng.integers(lo, hi, (n, n_attr))
        templates = self.world.templates[ids[:, None], np.arange(n_attr), slots].astype(np.int64)
        order = rng.permuted(np.broadcast_to(np.arange(n_attr), (n, n_attr)), axis=1)
        tokens = np.full((n, seq_len), self.pad_id, dtype=np.int64)
        value_attr = np.full((n, seq_len), -1, dtype=np.int8)
        first_value = np.zeros((n, seq_len), dtype=bool)
        name_mask = np.zeros((n, seq_len), dtype=bool)
        rows = zip(self.world.names[ids].tolist(), self.world.values[ids].tolist(), templates.tolist(),
                   order.tolist(), strict=True)  # fmt: skip
        for b, row_args in enumerate(rows):
            row, spans, names = self._biography(*row_args)
            tokens[b, : min(len(row), seq_len)] = row[:seq_len]
            for a, start, end in spans:
                if end <= seq_len:
                    value_attr[b, start:end] = a
                    first_value[b, start] = True
            for start, end in names:
                name_mask[b, start : min(end, seq_len)] = True
        arrays = (tokens, value_attr, first_value, ids, templates, order, name_mask)
        return Batch(*(torch.from_numpy(np.ascontiguousarray(x)) for x in arrays))

    def _biography(
        self, name_parts: list[int], values: list[int], templates: list[int], order: list[int]
    ) -> tuple[list[int], list[tuple[int, int, int]], list[tuple[int, int]]]:
        """Token ids of one biography, the (attribute, start, end) span of each value in them and the
        (start, end) span of the name in each sentence."""
        name = self._name_ids(name_parts)
        row, spans, names = [self.bos_id], [], []
        for a in order:
            t = templates[a]
            row += self._before[a][t]
            names.append((len(row), len(row) + len(name)))
            row += name
            row += self._between[a][t]
            start = len(row)
            row += self._value_ids(a, values[a])
            spans.append((a, start, len(row)))
            row += self._period
        return row, spans, names

    def eval_batch(self, individuals: Sequence[int] | np.ndarray, split: Split, seed: int, seq_len: int) -> Batch:
        """A fixed batch: the same for the same arguments, whatever else was sampled."""
        return self.sample(individuals, split, np.random.default_rng(seed), seq_len)

    def decode(self, tokens: Sequence[int] | np.ndarray | Tensor) -> str:
        """The text of token ids, without <bos> and <pad> (for debugging)."""
        ids = tokens.reshape(-1).tolist() if isinstance(tokens, Tensor) else np.asarray(tokens).reshape(-1).tolist()
        return self.tokenizer.decode(ids, skip_special_tokens=True)
