"""Invariants of the biography world, its tokenizer and its sampler (hypothesis where inputs vary)."""

import hashlib
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks import biographies as bio
from learnlab.tasks import biography_text as text

N_SEEN, N_UNSEEN = 300, 40
SEQ_LEN = 160  # above every biography's length, so nothing is cut off


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("LEARNLAB_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def encoder(cache):
    return bio.BiographyEncoder(bio.World.generate(N_SEEN, N_UNSEEN, seed=7), bio.load_tokenizer())


def test_pools_have_the_specified_sizes_and_distinct_values():
    pools = {
        "first": text.first_names(),
        "last": text.last_names(),
        "city": text.cities(),
        "university": text.universities(),
        "major": text.majors(),
        "company": text.companies(),
    }
    assert {k: len(v) for k, v in pools.items()} == {
        "first": 900, "last": 1000, "city": 800, "university": 200, "major": 100, "company": 500
    }  # fmt: skip
    for pool in pools.values():
        assert len(set(pool)) == len(pool)
        assert all(v == v.strip() and "  " not in v and v for v in pool)
    assert bio.attribute_sizes() == (28 * 12 * 201, 800, 200, 100, 500, 800)


def test_baseline_is_the_mean_log_pool_size():
    expected = np.mean(np.log([28 * 12 * 201, 800, 200, 100, 500, 800]))
    assert bio.no_knowledge_baseline() == pytest.approx(expected)
    assert bio.no_knowledge_baseline() == pytest.approx(6.77, abs=0.005)


def test_templates_state_name_and_type_before_the_value():
    assert text.ATTRIBUTES == bio.ATTRIBUTES
    assert len(text.TEMPLATES) == len(bio.ATTRIBUTES)
    for templates in text.TEMPLATES:
        assert len(templates) == len(set(templates)) == 25
        for t in templates:
            assert re.findall(r"\{\w*\}", t) == ["{name}", "{value}"], t  # name first, value the last placeholder
            assert t.endswith(" {value}.") and t.count(".") == 1, t
            between = t.split("{name}")[1].split("{value}")[0]
            assert len(between.split()) >= 1, t  # words saying which attribute comes
            assert bio.render(t, "N", "V") == " " + t.format(name="N", value="V")


def test_date_values_cover_days_months_and_years():
    sizes = bio.attribute_sizes()
    assert bio.value_string(0, 0) == "1 January 1900"
    assert bio.value_string(0, sizes[0] - 1) == "28 December 2100"
    dates = {bio.value_string(0, i) for i in range(0, sizes[0], 97)}
    assert len(dates) == len(range(0, sizes[0], 97))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 400), st.integers(0, 60), st.integers(0, 2**32 - 1))
def test_world_names_unique_values_in_pools_and_template_splits(n_seen, n_unseen, seed):
    world = bio.World.generate(n_seen, n_unseen, seed)
    n = n_seen + n_unseen
    assert world.n_total == n and list(world.seen) + list(world.unseen) == list(range(n))
    assert len({world.name(i) for i in range(n)}) == n
    assert world.values.shape == (n, 6)
    assert (world.values >= 0).all() and (world.values < np.array(bio.attribute_sizes())).all()
    assert world.templates.shape == (n, 6, 25)
    assert (np.sort(world.templates, axis=-1) == np.arange(25)).all()  # a permutation: 20/5 disjoint, all covered
    for i in range(min(n, 5)):
        for a in range(6):
            train, held = world.template_ids(i, a, "train"), world.template_ids(i, a, "heldout")
            assert len(train) == 20 and len(held) == 5 and not set(train) & set(held)


def _digest(world):
    arrays = (np.ascontiguousarray(getattr(world, f)).tobytes() for f in ("names", "values", "templates"))
    return hashlib.sha256(b"".join(arrays)).hexdigest()[:16]


@pytest.mark.parametrize(
    ("args", "digest"),
    [((300, 40, 7), "22931a779d7d06be"), ((100, 200, 0), "fcf62f810fa48c41"), ((5, 3, 123), "357ba10cd2aa184a")],
)
def test_the_paper_pools_give_the_world_of_before_the_pool_knobs_bit_for_bit(args, digest):
    """Digests of the worlds generated before pools were configurable: old runs stay valid."""
    assert _digest(bio.World.generate(*args)) == digest
    assert _digest(bio.World.generate(*args, pools=bio.Pools(**bio.pool_limits()))) == digest


pool_sizes = st.builds(bio.Pools, **{key: st.integers(1, limit) for key, limit in bio.pool_limits().items()})


@settings(max_examples=40, deadline=None)
@given(pool_sizes, st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_a_world_draws_its_values_from_the_first_k_of_each_pool(pools, n, seed):
    world = bio.World.generate(n, 5, seed, pools=pools)
    day, month, year = bio._date_parts(world.values[:, 0])
    assert (day < pools.n_days).all() and (month < 12).all() and (year < pools.n_years).all()
    limits = [pools.n_cities, pools.n_universities, pools.n_majors, pools.n_companies, pools.n_cities]
    assert (world.values[:, 1:] < np.array(limits)).all() and (world.values >= 0).all()
    allowed = {a: {bio.value_string(a, i) for i in range(k)} for a, k in zip(range(1, 6), limits, strict=True)}
    for i in range(min(n, 5)):
        for a in range(1, 6):
            assert world.value(i, a) in allowed[a]
        d, m, y = world.value(i, 0).split()
        assert 1 <= int(d) <= pools.n_days and 1900 <= int(y) < 1900 + pools.n_years and m in text.MONTHS


@settings(max_examples=40, deadline=None)
@given(pool_sizes, st.integers(1, 2000), st.integers(0, 2**32 - 1))
def test_the_empirical_baseline_never_exceeds_the_pools_baseline(pools, n, seed):
    world = bio.World.generate(n, 0, seed, pools=pools)
    assert 0 <= bio.empirical_baseline(world) <= bio.no_knowledge_baseline(pools) + 1e-9


def test_the_empirical_baseline_by_hand_and_at_the_paper_pools():
    pools = bio.Pools(n_days=2, n_years=1, n_cities=2, n_universities=1, n_majors=1, n_companies=1)
    world = bio.World.generate(2, 0, 0, pools=pools)
    world.values[:] = [[0, 0, 0, 0, 0, 0], [1 + 28, 1, 0, 0, 0, 1]]  # days 1/2, months 1/2, cities differ
    expected = (2 * math.log(2) + math.log(2) + 0 + 0 + 0 + math.log(2)) / 6  # date: day + month + year
    assert bio.empirical_baseline(world) == pytest.approx(expected)
    assert math.isnan(bio.empirical_baseline(bio.World.generate(0, 3, 0)))
    # the check: at N = 100 the seen values' entropy is far below the pools' 6.77 nats
    assert bio.empirical_baseline(bio.World.generate(100, 200, 0)) == pytest.approx(5.30, abs=0.005)
    assert bio.empirical_baseline(bio.World.generate(20_000, 0, 0)) == pytest.approx(6.77, abs=0.05)


def test_smaller_pools_lower_the_baseline_and_bad_sizes_name_their_key():
    pools = bio.Pools(n_days=20, n_years=20, n_cities=20, n_universities=20, n_majors=20, n_companies=20)
    assert pools.attribute_sizes == (20 * 12 * 20, 20, 20, 20, 20, 20)
    assert bio.no_knowledge_baseline(pools) == pytest.approx(np.mean(np.log(pools.attribute_sizes)))
    for key, limit in bio.pool_limits().items():
        for bad in (0, limit + 1):
            with pytest.raises(ValueError, match=key):
                bio.Pools(**{key: bad})


def test_world_is_deterministic_in_its_seed():
    a, b, c = (bio.World.generate(200, 20, s) for s in (3, 3, 4))
    for field in ("names", "values", "templates"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
        assert not np.array_equal(getattr(a, field), getattr(c, field))


def test_tokenizer_cache_hit_gives_identical_ids(cache):
    first = bio.load_tokenizer(vocab_size=600)
    files = sorted((cache / "tokenizers").iterdir())
    second = bio.load_tokenizer(vocab_size=600)
    assert sorted((cache / "tokenizers").iterdir()) == files and all(f.suffix == ".json" for f in files)
    assert first.to_str() == second.to_str() == bio._train(600, 3000, 0).to_str()  # training is deterministic
    sample = " Alana Belen Ashby was born on 14 March 1956. Zorion Media"
    assert first.encode(sample).ids == second.encode(sample).ids
    assert first.get_vocab_size() == 600 and first.token_to_id("<bos>") is not None


def spans(batch, row):
    """attribute -> (start, end) of its marked value tokens in a row; checks each span is contiguous."""
    out = {}
    attr = batch.value_attr[row]
    for a in range(6):
        where = torch.nonzero(attr == a).flatten().tolist()
        if where:
            assert where == list(range(where[0], where[-1] + 1))
            assert torch.nonzero(batch.first_value[row]).flatten().tolist().count(where[0]) == 1
            out[a] = (where[0], where[-1] + 1)
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["train", "heldout"]), st.integers(1, 12))
def test_sampled_biographies_state_each_fact_once_in_the_split_templates(encoder, seed, split, n):
    world = encoder.world
    rng = np.random.default_rng(seed)
    individuals = rng.integers(0, world.n_total, n)
    batch = encoder.sample(individuals, split, rng, SEQ_LEN)
    assert batch.tokens.shape == batch.value_attr.shape == batch.first_value.shape == (n, SEQ_LEN)
    assert batch.tokens.dtype == torch.int64 and batch.value_attr.dtype == torch.int8
    assert (batch.tokens[:, 0] == encoder.bos_id).all()
    assert int(batch.first_value.sum()) == 6 * n  # nothing was cut off
    for row, i in enumerate(individuals.tolist()):
        assert batch.individuals[row] == i
        order, templates = batch.order[row].tolist(), batch.templates[row].tolist()
        assert sorted(order) == list(range(6))
        sentences = [bio.render(text.TEMPLATES[a][templates[a]], world.name(i), world.value(i, a)) for a in order]
        assert encoder.decode(batch.tokens[row]) == "".join(sentences)
        assert encoder.decode(batch.tokens[row]).count(world.name(i)) == 6
        for a in range(6):
            assert templates[a] in world.template_ids(i, a, split)
        found = spans(batch, row)
        assert sorted(found) == list(range(6))
        assert sorted(found, key=found.get) == order  # values appear in sentence order
        for a, (start, end) in found.items():
            assert encoder.decode(batch.tokens[row, start:end]).removeprefix(" ") == world.value(i, a)
            assert encoder.decode(batch.tokens[row, end]) == "."


def name_runs(mask_row):
    """(start, end) of each contiguous run of True in a 1-d bool mask."""
    padded = torch.nn.functional.pad(mask_row.int(), (1, 1))
    edges = torch.nonzero(padded.diff()).flatten().tolist()
    return list(zip(edges[::2], edges[1::2], strict=True))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["train", "heldout"]))
def test_name_mask_marks_the_individuals_name_in_every_sentence(encoder, seed, split):
    world, rng = encoder.world, np.random.default_rng(seed)
    individuals = rng.integers(0, world.n_total, 6)
    batch = encoder.sample(individuals, split, rng, SEQ_LEN)
    assert batch.name_mask.dtype == torch.bool and batch.name_mask.shape == batch.tokens.shape
    for row, i in enumerate(individuals.tolist()):
        runs = name_runs(batch.name_mask[row])
        assert len(runs) == 6  # one per sentence, none of them touching a value
        assert all(encoder.decode(batch.tokens[row, a:b]) == " " + world.name(i) for a, b in runs)
        assert not (batch.name_mask[row] & (batch.value_attr[row] >= 0)).any()
    cut = encoder.sample(individuals, split, np.random.default_rng(seed), 30)
    same = encoder.sample(individuals, split, np.random.default_rng(seed), SEQ_LEN)
    assert torch.equal(cut.name_mask, same.name_mask[:, :30])  # a name cut by seq_len is marked up to the cut


def test_sentence_order_and_templates_vary_across_samples(encoder):
    rng = np.random.default_rng(0)
    batch = encoder.sample(np.full(50, 3), "train", rng, SEQ_LEN)
    assert len({tuple(o) for o in batch.order.tolist()}) > 10
    assert all(len(set(batch.templates[:, a].tolist())) > 5 for a in range(6))


def test_unseen_individuals_have_both_splits_and_never_appear_in_seen_samples(encoder):
    world = encoder.world
    rng = np.random.default_rng(1)
    batch = encoder.sample(rng.integers(world.seen.start, world.seen.stop, 64), "train", rng, SEQ_LEN)
    assert (batch.individuals < world.n_individuals).all()
    texts = [encoder.decode(row) for row in batch.tokens]
    unseen_names = {world.name(i) for i in world.unseen}
    assert not any(name in t for name in unseen_names for t in texts)
    held = encoder.sample(np.array(world.unseen), "heldout", rng, SEQ_LEN)
    assert int(held.first_value.sum()) == 6 * world.n_unseen
    with pytest.raises(IndexError):
        encoder.sample([world.n_total], "train", rng, SEQ_LEN)


def test_sampling_is_deterministic(encoder):
    ids = np.arange(0, 40)
    a, b = (encoder.sample(ids, "train", np.random.default_rng(5), 128) for _ in range(2))
    c, d = encoder.eval_batch(ids, "heldout", 9, 128), encoder.eval_batch(ids, "heldout", 9, 128)
    for x, y in ((a, b), (c, d)):
        assert all(torch.equal(getattr(x, f), getattr(y, f)) for f in x.__dataclass_fields__)
    assert not torch.equal(a.tokens, encoder.sample(ids, "train", np.random.default_rng(6), 128).tokens)


def test_truncated_values_are_not_marked(encoder):
    full = encoder.eval_batch(np.arange(20), "train", 2, SEQ_LEN)
    cut = encoder.eval_batch(np.arange(20), "train", 2, 40)
    assert torch.equal(cut.tokens, full.tokens[:, :40])
    for row in range(20):
        expected = {a: s for a, s in spans(full, row).items() if s[1] <= 40}
        assert spans(cut, row) == expected
    assert cut.first_value.sum() < full.first_value.sum()
    assert encoder.max_length <= SEQ_LEN
    lengths = (full.tokens != encoder.pad_id).sum(1)
    assert (lengths <= encoder.max_length).all()


def test_trimming_drops_only_the_columns_that_are_padding_everywhere(encoder):
    batch = encoder.eval_batch(np.arange(20), "heldout", 4, 2 * SEQ_LEN)
    trimmed = batch.trimmed(encoder.pad_id)
    width = trimmed.tokens.shape[1]
    assert (trimmed.tokens[:, -1] != encoder.pad_id).any()
    assert (batch.tokens[:, width:] == encoder.pad_id).all()
    for f in batch.__dataclass_fields__:
        whole, cut = getattr(batch, f), getattr(trimmed, f)
        assert torch.equal(cut, whole[:, :width] if whole.shape[-1] == 2 * SEQ_LEN else whole), f


def test_attribute_scores_sum_over_each_values_tokens_and_skip_cut_values(encoder):
    from learnlab.metrics import attribute_scores

    batch = encoder.eval_batch(np.arange(8), "train", 3, 40)  # 40 tokens cut most biographies short
    uniform = torch.zeros(1, 8, 40, encoder.vocab_size)  # every token costs log(V)
    scores = attribute_scores(uniform, batch.tokens, batch.value_attr, len(bio.ATTRIBUTES))
    counts = torch.stack([(batch.value_attr == a).sum(1) for a in range(6)], 1).float()
    assert torch.equal(torch.isnan(scores.loss[0]), counts == 0)
    torch.testing.assert_close(scores.loss[0].nan_to_num(0), counts * math.log(encoder.vocab_size))


def test_values_and_names_span_several_tokens(encoder):
    batch = encoder.eval_batch(np.arange(100), "train", 4, SEQ_LEN)
    per_value = (batch.value_attr >= 0).sum() / batch.first_value.sum()
    assert 2 <= per_value <= 6
    assert math.isclose(np.mean([len(encoder.name_ids(i)) for i in range(100)]), 4.5, abs_tol=1.5)


def test_chance_accuracy_by_hand():
    pools = bio.Pools(n_days=2, n_years=1, n_cities=2, n_universities=1, n_majors=1, n_companies=2)
    world = bio.World.generate(4, 0, 0, pools=pools)
    # dates: day 1 x3 and day 2 x1, all January 1900; cities 0,0,0,1; companies 0,1,0,1 (a tie: 0 wins)
    world.values[:] = [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 1]]
    expected = (3 / 4 + 3 / 4 + 1 + 1 + 2 / 4 + 3 / 4) / 6
    assert bio.chance_accuracy(world) == pytest.approx(expected)
    assert math.isnan(bio.chance_accuracy(bio.World.generate(0, 3, 0)))


@settings(max_examples=40, deadline=None)
@given(pool_sizes, st.integers(1, 2000), st.integers(0, 2**32 - 1))
def test_chance_accuracy_is_at_least_one_over_each_pool(pools, n, seed):
    """The most common of k values is held by at least n/k individuals (the date may have none)."""
    world = bio.World.generate(n, 0, seed, pools=pools)
    floor = sum(1 / size for size in pools.attribute_sizes[1:]) / 6
    assert floor - 1e-12 <= bio.chance_accuracy(world) <= 1
