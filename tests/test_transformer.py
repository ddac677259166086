"""The ensemble transformer: attention paths agree, hooks fire, members are independent of each other."""

import pytest
import torch

from learnlab.models.transformer import EnsembleTransformer

K, V, CTX, B, T = 3, 11, 16, 5, 9


def model(k=K, seed=0):
    m = EnsembleTransformer(k, V, CTX, d_model=16, n_layers=2, n_heads=2, d_mlp=32, n_out=2)
    m.reset_parameters([torch.Generator().manual_seed(seed + i) for i in range(k)])
    with torch.no_grad():  # non-trivial biases and norms, so the tests see every parameter
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def inputs(k=K):
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (k, B, T), generator=gen)
    mask = torch.arange(T) >= torch.randint(0, T, (k, B, 1), generator=gen)  # right-aligned rows
    positions = torch.randint(0, CTX - T + 1, (k, B, 1), generator=gen) + torch.arange(T)
    return tokens, {"positions": positions, "attention_mask": mask}


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_equals_the_explicit_pattern_path(masked):
    m = model()
    tokens, kw = inputs()
    kw = kw if masked else {}
    fast = m(tokens, **kw)
    seen = {}
    explicit = m.run_with_hooks(tokens, [("blocks.1.attn.hook_pattern", lambda x, n: seen.setdefault(n, x))], **kw)
    torch.testing.assert_close(fast, explicit, rtol=1e-5, atol=1e-6)
    pattern = seen["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(K, B, 2, T))
    assert (pattern.triu(1) == 0).all()  # causal


def test_hooks_fire_with_their_shapes_and_can_patch():
    m = model()
    tokens, kw = inputs()
    _, cache = m.run_with_cache(tokens, **kw)
    assert set(cache) == set(m.hook_names())
    for name, act in cache.items():
        assert act.shape == ((K, B, 2, T, T) if "pattern" in name else (K, B, T, 16)), name
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    mid = cache["blocks.1.hook_resid_pre"] + cache["blocks.1.hook_attn_out"]
    torch.testing.assert_close(cache["blocks.1.hook_resid_mid"], mid)
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"], mid + cache["blocks.1.hook_mlp_out"])
    zeroed = m.run_with_hooks(tokens, [("blocks.1.hook_mlp_out", lambda x, n: torch.zeros_like(x))], **kw)
    assert not torch.allclose(zeroed, m(tokens, **kw))
    with pytest.raises(KeyError):
        m.run_with_hooks(tokens, [("blocks.9.hook_mlp_out", lambda x, n: None)])


def test_members_equal_separate_models_and_ignore_each_other():
    m = model()
    tokens, kw = inputs()
    together = m(tokens, **kw)
    for k in range(K):
        single = EnsembleTransformer(1, V, CTX, d_model=16, n_layers=2, n_heads=2, d_mlp=32, n_out=2)
        with torch.no_grad():
            for p, q in zip(m.parameters(), single.parameters(), strict=True):
                q.copy_(p[k : k + 1])
        alone = single(tokens[k : k + 1], **{n: v[k : k + 1] for n, v in kw.items()})
        # equal within rounding: with two threads a batched matmul splits its work by K
        torch.testing.assert_close(alone, together[k : k + 1], rtol=1e-6, atol=1e-6)
    other = model()
    with torch.no_grad():  # change every other member: member 0's outputs stay bit-identical
        for p in other.parameters():
            p[1:].mul_(-2.0).add_(1.0)
    torch.testing.assert_close(other(tokens, **kw)[0], together[0], rtol=1e-6, atol=1e-6)


def test_padding_does_not_change_real_positions():
    m = model()
    tokens, kw = inputs()
    mask = kw["attention_mask"]
    garbage = torch.where(mask, tokens, (tokens + 3) % V)
    torch.testing.assert_close(m(garbage, **kw)[mask], m(tokens, **kw)[mask])
    assert m(garbage, **kw).isfinite().all()
