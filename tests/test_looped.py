"""The looped transformer: one loop is the plain single-block transformer bit for bit; a readout per loop;
members independent; hook points per loop; re-injection changes only the later loops."""

import pytest
import torch

from learnlab.models.looped import LoopedTransformer
from learnlab.models.transformer import EnsembleTransformer

K, VOCAB, T = 3, 11, 7


def built(cls, seeds=(0, 1, 2), **kw):
    model = cls(len(seeds), VOCAB, T, d_model=16, n_heads=2, d_mlp=32, n_out=VOCAB, **kw)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in seeds])
    return model


def tokens(k=K, b=5):
    return torch.randint(0, VOCAB, (k, b, T), generator=torch.Generator().manual_seed(9))


def test_one_loop_is_the_single_block_transformer_bit_for_bit():
    plain = built(EnsembleTransformer, n_layers=1)
    looped = built(LoopedTransformer, loops=1)
    looped.load_state_dict(plain.state_dict())
    x = tokens()
    assert torch.equal(looped(x), plain(x)) and torch.equal(looped.forward_loops(x)[0], plain(x))


def test_loops_share_one_block_and_equal_that_block_stacked():
    looped = built(LoopedTransformer, loops=3)
    deep = built(EnsembleTransformer, n_layers=3)
    state = {k: v for k, v in looped.state_dict().items()}
    for layer in range(3):  # the deep model with its three layers all the looped model's one block
        state |= {
            k.replace("blocks.0.", f"blocks.{layer}."): v for k, v in looped.state_dict().items() if "blocks.0." in k
        }
    deep.load_state_dict(state)
    x = tokens()
    torch.testing.assert_close(looped(x), deep(x), rtol=0, atol=1e-6)
    assert sum(p.numel() for p in looped.parameters()) < sum(p.numel() for p in deep.parameters())


@pytest.mark.parametrize("loops", [1, 2, 5])
def test_a_readout_after_every_loop(loops):
    model = built(LoopedTransformer, loops=loops)
    x = tokens()
    out = model.forward_loops(x)
    assert out.shape == (loops, K, 5, T, VOCAB)
    assert torch.equal(out[-1], model(x))
    assert model.forward_loops(x, loops=loops + 2).shape[0] == loops + 2  # past the trained count
    if loops > 1:
        assert not torch.equal(out[0], out[1])


def test_members_are_independent():
    model = built(LoopedTransformer, loops=3, reinject=True)
    x = tokens()
    before = model.forward_loops(x)
    with torch.no_grad():
        for p in model.parameters():
            p[1:] += torch.randn_like(p[1:])
    after = model.forward_loops(x)
    assert torch.equal(before[:, 0], after[:, 0]) and not torch.equal(before[:, 1], after[:, 1])
    alone = built(LoopedTransformer, seeds=(0,), loops=3, reinject=True)
    assert torch.equal(alone.forward_loops(x[:1])[:, 0], before[:, 0])


def test_hook_points_are_per_loop_and_an_intervention_moves_only_its_loop_and_later():
    model = built(LoopedTransformer, loops=3)
    names = model.hook_names()
    assert {"loops.0.hook_resid_post", "loops.2.hook_resid_post", "loops.1.blocks.0.attn.hook_pattern"} <= set(names)
    x = tokens()
    _, cache = model.run_with_cache(x, lambda n: n.endswith("hook_resid_post"))
    assert cache["loops.1.hook_resid_post"].shape == (K, 5, T, 16)
    base = model.forward_loops(x)
    pushed = model.forward_loops(x, hooks={"loops.1.hook_resid_post": lambda a, n: a + 1.0})
    assert torch.equal(pushed[0], base[0]) and not torch.equal(pushed[1], base[1])
    with pytest.raises(KeyError):
        model.run_with_hooks(x, [("blocks.0.hook_resid_post", lambda a, n: a)])


def test_reinjection_leaves_the_first_loop_alone():
    plain, again = built(LoopedTransformer, loops=2), built(LoopedTransformer, loops=2, reinject=True)
    x = tokens()
    a, b = plain.forward_loops(x), again.forward_loops(x)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_zero_loops_is_refused():
    with pytest.raises(ValueError, match="loops"):
        LoopedTransformer(1, VOCAB, T, loops=0)
