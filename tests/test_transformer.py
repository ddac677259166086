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


def shape(name):
    """The documented shape of each hook point (d_model 16, 2 heads of 8, d_mlp 32)."""
    if name.endswith(("hook_q", "hook_k", "hook_v", "hook_z")):
        return (K, B, T, 2, 8)
    if name.endswith(("hook_attn_scores", "hook_pattern")):
        return (K, B, 2, T, T)
    if name.endswith(("mlp.hook_pre", "mlp.hook_post")):
        return (K, B, T, 32)
    return (K, B, T, 16)


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
    assert list(cache) == m.hook_names()  # every point fires, in the order hook_names lists them
    for name, act in cache.items():
        assert act.shape == shape(name), name
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


# --- issue 13: the interpretability points, stop_at_layer, names_filter, unembed, initialisation ----------


def zeros(x, name):
    return torch.zeros_like(x)


def sdpa_points(name):
    """Every hook point but the scores and patterns, which move attention off SDPA (rounding differs)."""
    return not name.endswith(("hook_attn_scores", "hook_pattern"))


def test_hook_names_are_the_transformer_lens_points():
    per_block = ["hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
                 "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "mlp.hook_pre",
                 "mlp.hook_post", "hook_mlp_out", "hook_resid_post"]  # fmt: skip
    blocks = [f"blocks.{layer}.{name}" for layer in range(2) for name in per_block]
    assert model().hook_names() == ["hook_embed", "hook_pos_embed", *blocks, "hook_resid_final",
                                    "ln_final.hook_normalized"]  # fmt: skip


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_serves_qkvz_hooks_and_the_explicit_path_agrees(masked, monkeypatch):
    m = model()
    tokens, kw = inputs()
    kw = kw if masked else {}
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k)
    )
    qkvz = [n for n in m.hook_names() if n.endswith(("hook_q", "hook_k", "hook_v", "hook_z"))]
    fast, fast_cache = m.run_with_cache(tokens, qkvz, **kw)
    assert len(calls) == 2  # both layers on SDPA
    explicit, cache = m.run_with_cache(tokens, **kw)
    assert len(calls) == 2  # scores/pattern hooks: no SDPA at all
    torch.testing.assert_close(fast, explicit, rtol=1e-5, atol=1e-6)
    for name in qkvz:
        torch.testing.assert_close(fast_cache[name], cache[name], rtol=1e-5, atol=1e-6)
    m.run_with_cache(tokens, "blocks.1.attn.hook_attn_scores", **kw)
    assert len(calls) == 3  # layer 0 on SDPA, layer 1 explicit


def test_q_k_v_are_the_heads_of_the_qkv_projection_and_z_is_pattern_times_v():
    m = model()
    tokens, _ = inputs()
    _, cache = m.run_with_cache(tokens)
    attn, ln = m.blocks[0].attn, cache["blocks.0.hook_resid_pre"]
    normed = (
        torch.nn.functional.layer_norm(ln, (16,)) * m.blocks[0].ln1_w[:, None, None] + m.blocks[0].ln1_b[:, None, None]
    )
    qkv = torch.einsum("kbtd,kde->kbte", normed, attn.w_qkv) + attn.b_qkv[:, None, None]
    for i, part in enumerate("qkv"):
        expected = qkv[..., 16 * i : 16 * (i + 1)].view(K, B, T, 2, 8)  # [K, B, T, heads, d_head]
        torch.testing.assert_close(cache[f"blocks.0.attn.hook_{part}"], expected, rtol=1e-5, atol=1e-5)
    scores = torch.einsum("kbqhd,kbshd->kbhqs", cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_k"]) / 8**0.5
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    torch.testing.assert_close(cache["blocks.0.attn.hook_attn_scores"], scores.masked_fill(~causal, float("-inf")))
    z = torch.einsum("kbhqs,kbshd->kbqhd", cache["blocks.0.attn.hook_pattern"], cache["blocks.0.attn.hook_v"])
    torch.testing.assert_close(cache["blocks.0.attn.hook_z"], z)
    out = torch.einsum("kbtd,kde->kbte", z.flatten(-2), attn.w_o) + attn.b_o[:, None, None]
    torch.testing.assert_close(cache["blocks.0.hook_attn_out"], out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("explicit", [False, True])
def test_zeroing_z_or_v_of_every_head_zeroes_the_attention_output(explicit):
    m = model()
    tokens, kw = inputs()
    extra = [("blocks.1.attn.hook_pattern", lambda x, n: None)] if explicit else []
    bias_only = [("blocks.1.hook_attn_out", lambda x, n: m.blocks[1].attn.b_o[:, None, None].expand_as(x))]
    expected = m.run_with_hooks(tokens, bias_only, **kw)  # attention writes only its output bias
    for point in ("hook_z", "hook_v"):
        got = m.run_with_hooks(tokens, [(f"blocks.1.attn.{point}", zeros), *extra], **kw)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(expected, m(tokens, **kw))


def test_patching_one_heads_z_changes_only_through_that_head():
    m = model()
    tokens, kw = inputs()

    def zero_head_1(z, name):
        z = z.clone()
        z[..., 1, :] = 0
        return z

    _, cache = m.run_with_cache(tokens, **kw)
    w_o = m.blocks[0].attn.w_o.view(K, 2, 8, 16)  # [K, heads, d_head, d_model]
    head_1 = torch.einsum("kbthd,khde->kbte", cache["blocks.0.attn.hook_z"][..., 1:, :], w_o[:, 1:])
    seen = {}
    m.run_with_hooks(tokens, [("blocks.0.attn.hook_z", zero_head_1),
                              ("blocks.0.hook_attn_out", lambda x, n: seen.setdefault(n, x))], **kw)  # fmt: skip
    torch.testing.assert_close(
        seen["blocks.0.hook_attn_out"], cache["blocks.0.hook_attn_out"] - head_1, rtol=1e-5, atol=1e-6
    )


def test_pattern_scores_and_queries_patch_as_expected():
    m = model()
    tokens, _ = inputs()
    eye = torch.eye(T).expand(K, B, 2, T, T)
    # each query attending to itself only: z is v
    seen = {}

    def keep(x, name):
        seen[name] = x

    own = m.run_with_hooks(tokens, [("blocks.0.attn.hook_pattern", lambda x, n: eye), ("blocks.0.attn.hook_v", keep)])
    as_v = m.run_with_hooks(tokens, [("blocks.0.attn.hook_z", lambda x, n: seen["blocks.0.attn.hook_v"])])
    torch.testing.assert_close(own, as_v, rtol=1e-5, atol=1e-6)
    # flat scores (or zero queries, or zero keys), masked causally: uniform attention over the past
    uniform = torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]
    flat = [("blocks.0.attn.hook_attn_scores", lambda x, n: torch.zeros_like(x).masked_fill(x.isinf(), float("-inf")))]
    for patch in (flat, [("blocks.0.attn.hook_q", zeros)], [("blocks.0.attn.hook_k", zeros)]):
        seen.clear()
        m.run_with_hooks(tokens, [*patch, ("blocks.0.attn.hook_pattern", keep)])
        torch.testing.assert_close(seen["blocks.0.attn.hook_pattern"], uniform.expand(K, B, 2, T, T))


def test_mlp_hooks_pre_and_post():
    m = model()
    tokens, kw = inputs()
    _, cache = m.run_with_cache(tokens, **kw)
    torch.testing.assert_close(
        cache["blocks.1.mlp.hook_post"], torch.nn.functional.gelu(cache["blocks.1.mlp.hook_pre"])
    )
    mlp = m.blocks[1].mlp
    out = torch.einsum("kbtm,kmd->kbtd", cache["blocks.1.mlp.hook_post"], mlp.w_out) + mlp.b_out[:, None, None]
    torch.testing.assert_close(cache["blocks.1.hook_mlp_out"], out, rtol=1e-5, atol=1e-6)
    zeroed = m.run_with_hooks(tokens, [("blocks.1.mlp.hook_post", zeros)], **kw)
    bias_only = [("blocks.1.hook_mlp_out", lambda x, n: mlp.b_out[:, None, None].expand_as(x))]
    torch.testing.assert_close(zeroed, m.run_with_hooks(tokens, bias_only, **kw), rtol=1e-6, atol=1e-6)


def test_unembed_reads_the_final_residual_stream():
    m = model()
    tokens, kw = inputs()
    logits, cache = m.run_with_cache(tokens, sdpa_points, **kw)
    assert torch.equal(logits, m(tokens, **kw))
    assert torch.equal(cache["hook_resid_final"], cache["blocks.1.hook_resid_post"])
    assert torch.equal(m.unembed(cache["hook_resid_final"]), logits)
    normalized = torch.nn.functional.layer_norm(cache["hook_resid_final"], (16,)) * m.ln_final_w[:, None, None]
    torch.testing.assert_close(cache["ln_final.hook_normalized"], normalized + m.ln_final_b[:, None, None])
    # patching the final stream: the outputs are the unembedding of the patch
    patched = m.run_with_hooks(tokens, [("hook_resid_final", lambda x, n: cache["blocks.1.hook_resid_pre"])], **kw)
    assert torch.equal(patched, m.unembed(cache["blocks.1.hook_resid_pre"]))


def test_stop_at_layer_returns_the_residual_stream_entering_that_block():
    m = model()
    tokens, kw = inputs()
    _, full = m.run_with_cache(tokens, sdpa_points, **kw)
    for layer in range(2):
        assert torch.equal(m(tokens, stop_at_layer=layer, **kw), full[f"blocks.{layer}.hook_resid_pre"])
    assert torch.equal(m(tokens, stop_at_layer=-1, **kw), full["blocks.1.hook_resid_pre"])
    assert torch.equal(m(tokens, stop_at_layer=2, **kw), full["hook_resid_final"])
    resid, cache = m.run_with_cache(tokens, sdpa_points, stop_at_layer=1, **kw)
    assert torch.equal(resid, full["blocks.1.hook_resid_pre"])
    assert not any(n.startswith("blocks.1.") for n in cache) and "hook_resid_final" not in cache
    assert all(torch.equal(cache[n], full[n]) for n in cache) and "blocks.0.hook_resid_post" in cache
    for bad in (3, -3):
        with pytest.raises(ValueError, match="stop_at_layer"):
            m(tokens, stop_at_layer=bad)


def test_names_filter_a_list_a_name_or_a_predicate():
    m = model()
    tokens, kw = inputs()
    _, cache = m.run_with_cache(tokens, ["blocks.0.attn.hook_z", "hook_embed"], **kw)
    assert set(cache) == {"blocks.0.attn.hook_z", "hook_embed"}
    _, cache = m.run_with_cache(tokens, "blocks.1.mlp.hook_pre", **kw)
    assert list(cache) == ["blocks.1.mlp.hook_pre"]
    _, cache = m.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_resid_post"), **kw)
    assert list(cache) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    _, cache = m.run_with_cache(tokens, names=["blocks.1.attn.hook_pattern"], **kw)  # the earlier spelling
    assert list(cache) == ["blocks.1.attn.hook_pattern"]
    with pytest.raises(KeyError, match="blocks.2"):
        m.run_with_cache(tokens, ["blocks.2.hook_resid_pre"])
    with pytest.raises(TypeError):
        m.run_with_cache(tokens, ["hook_embed"], names=["hook_embed"])


def test_members_ignore_each_other_at_every_hook_point():
    m, other = model(), model()
    with torch.no_grad():
        for p in other.parameters():
            p[1:].mul_(-2.0).add_(1.0)
    tokens, kw = inputs()
    _, mine = m.run_with_cache(tokens, **kw)
    _, theirs = other.run_with_cache(tokens, **kw)
    for name in mine:
        assert torch.equal(mine[name][0], theirs[name][0]), name
        assert not torch.equal(mine[name][1], theirs[name][1]), name


# --- initialisation ---------------------------------------------------------------------------------------


class Experts(torch.nn.Module):
    """A toy mixture-of-experts MLP: a router and E experts with 4-D stacked weights."""

    init_roles = {"b_in": "zeros", "w_out": "residual"}

    def __init__(self, n_models, d_model, d_mlp, n_experts=3):
        super().__init__()
        k, d, e = n_models, d_model, n_experts
        self.w_router = torch.nn.Parameter(torch.empty(k, d, e))
        self.w_in = torch.nn.Parameter(torch.empty(k, e, d, d_mlp))
        self.b_in = torch.nn.Parameter(torch.empty(k, e, d_mlp))
        self.w_out = torch.nn.Parameter(torch.empty(k, e, d_mlp, d))

    def hook_names(self):
        return ["hook_router"]

    def forward(self, x, hooks, prefix):
        logits = torch.einsum("kbtd,kde->kbte", x, self.w_router)
        if hooks and f"{prefix}.hook_router" in hooks:
            logits = hooks[f"{prefix}.hook_router"](logits, f"{prefix}.hook_router") or logits
        hidden = torch.nn.functional.gelu(torch.einsum("kbtd,kedm->kbtem", x, self.w_in) + self.b_in[:, None, None])
        out = torch.einsum("kbtem,kemd->kbted", hidden, self.w_out)
        return (logits.softmax(-1)[..., None] * out).sum(-2)


@pytest.fixture
def nan_empty(monkeypatch):
    """torch.empty memory full of NaN: a parameter the initialisation misses stays NaN."""
    empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **kw: empty(*a, **kw).fill_(float("nan")))


@pytest.mark.parametrize("mlp", ["default", "experts"])
@pytest.mark.parametrize("layers", [1, 3])
def test_initialisation_covers_every_parameter_whatever_its_rank(nan_empty, mlp, layers):
    kwargs = {"mlp": Experts} if mlp == "experts" else {}
    m = EnsembleTransformer(2, V, CTX, d_model=16, n_layers=layers, n_heads=2, d_mlp=32, n_out=3, **kwargs)
    assert any(p.isnan().any() for p in m.parameters())  # the fixture works
    m.reset_parameters([torch.Generator().manual_seed(i) for i in range(2)])
    for name, p in m.named_parameters():
        assert p.isfinite().all(), name
    params = dict(m.named_parameters())
    residual = 0.02 / (2 * layers) ** 0.5
    for name in ("blocks.0.mlp.w_in", "blocks.0.mlp.w_out", "w_embed"):
        std = residual if name.endswith("w_out") else 0.02
        assert abs(params[name].std().item() - std) < 0.3 * std, name
    assert (params["blocks.0.mlp.b_in"] == 0).all() and (params["ln_final_w"] == 1).all()
    assert not torch.equal(params["w_embed"][0], params["w_embed"][1])  # one generator per member
    if mlp == "experts":
        assert params["blocks.0.mlp.w_in"].dim() == 4
        tokens = torch.randint(0, V, (2, 3, 5))
        _, cache = m.run_with_cache(tokens, lambda n: n.endswith("hook_router"))
        assert cache["blocks.0.mlp.hook_router"].shape == (2, 3, 5, 3)


def test_a_parameter_without_the_model_axis_is_refused():
    class Shared(Experts):
        def __init__(self, n_models, d_model, d_mlp):
            super().__init__(n_models, d_model, d_mlp)
            self.scale = torch.nn.Parameter(torch.empty(d_model))

    m = EnsembleTransformer(2, V, CTX, d_model=16, n_layers=1, n_heads=2, d_mlp=32, mlp=Shared)
    with pytest.raises(ValueError, match="blocks.0.mlp.scale"):
        m.reset_parameters([torch.Generator().manual_seed(i) for i in range(2)])


def test_parameter_order_and_draws_are_those_before_the_components():
    """Initialisation draws member k's weights from one generator in parameter order: that order is the one
    from before the MLP became a component (its weights were then the block's), so runs stay bit-identical."""
    m = EnsembleTransformer(1, V, CTX, d_model=16, n_layers=1, n_heads=2, d_mlp=32)
    assert [n for n, _ in m.named_parameters()] == [
        "w_embed", "w_pos", "ln_final_w", "ln_final_b", "w_unembed", "b_unembed",
        "blocks.0.ln1_w", "blocks.0.ln1_b", "blocks.0.ln2_w", "blocks.0.ln2_b",
        "blocks.0.mlp.w_in", "blocks.0.mlp.b_in", "blocks.0.mlp.w_out", "blocks.0.mlp.b_out",
        "blocks.0.attn.w_qkv", "blocks.0.attn.b_qkv", "blocks.0.attn.w_o", "blocks.0.attn.b_o",
    ]  # fmt: skip
    m.reset_parameters([torch.Generator().manual_seed(7)])
    gen, params = torch.Generator().manual_seed(7), dict(m.named_parameters())
    for name in ("w_embed", "w_pos", "w_unembed", "blocks.0.mlp.w_in", "blocks.0.mlp.w_out", "blocks.0.attn.w_qkv",
                 "blocks.0.attn.w_o"):  # fmt: skip
        std = 0.02 / 2**0.5 if name.endswith(("w_out", "w_o")) else 0.02
        assert torch.equal(params[name][0], torch.empty(params[name].shape[1:]).normal_(0.0, std, generator=gen)), name


def test_state_dicts_from_before_the_mlp_component_still_load():
    m = model()
    old = {k.replace(".mlp.", "."): v for k, v in m.state_dict().items()}
    assert "blocks.0.w_in" in old
    fresh = EnsembleTransformer(K, V, CTX, d_model=16, n_layers=2, n_heads=2, d_mlp=32, n_out=2)
    fresh.load_state_dict(old)
    tokens, kw = inputs()
    assert torch.equal(fresh(tokens, **kw), m(tokens, **kw))
