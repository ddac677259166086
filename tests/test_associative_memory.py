import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks.associative_memory import MemoryBatches, memory_pairs


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 64), st.integers(0, 64), st.integers(0, 64), st.integers(2, 8))
def test_keys_are_unit_vectors_and_more_new_pairs_only_append(seed, old, new, more, classes):
    keys, labels = memory_pairs(seed, old, new, 16, classes)  # dim 16: whole blocks of torch's sampler
    assert keys.shape == (old + new, 16) and labels.shape == (old + new,)
    assert torch.allclose(keys.norm(dim=-1), torch.ones(old + new), atol=1e-5)
    assert ((labels >= 0) & (labels < classes)).all()
    keys2, labels2 = memory_pairs(seed, old, new + more, 16, classes)
    assert torch.equal(keys2[: old + new], keys) and torch.equal(labels2[: old + new], labels)


def test_batches_stay_in_their_range_and_resume_from_a_state():
    pairs = [memory_pairs(s, 50, 30, 8, 5) for s in (0, 1)]
    keys, classes = torch.stack([k for k, _ in pairs]), torch.stack([c for _, c in pairs])
    batches = MemoryBatches(keys, classes, 50, 80, 64, [0, 1], "test")
    k, c = batches(0)
    assert k.shape == (2, 64, 8) and c.shape == (2, 64)
    in_range = (keys[:, None, 50:80] == k[:, :, None]).all(-1).any(-1)  # every drawn key is one of [50, 80)
    assert in_range.all()
    state = batches.state_dict()
    expected = batches(1)
    batches.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(batches(1), expected, strict=True))
