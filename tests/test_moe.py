"""The mixture-of-experts MLP: one expert is the dense MLP, load sums to one, Switch's loss, members apart."""

import copy

import pytest
import torch

from learnlab.models.moe import MoEMLP, expert_load, moe, moe_aux_loss
from learnlab.models.transformer import MLP, EnsembleTransformer

K, V, CTX, D, DM = 3, 11, 12, 16, 32


def transformer(mlp, k=K, seed=0):
    m = EnsembleTransformer(k, V, CTX, d_model=D, n_layers=2, n_heads=2, d_mlp=DM, n_out=V, mlp=mlp)
    m.reset_parameters([torch.Generator().manual_seed(seed + i) for i in range(k)])
    with torch.no_grad():  # non-trivial biases and a router that does not route uniformly
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def tokens(k=K, b=4, t=7, seed=1):
    return torch.randint(0, V, (k, b, t), generator=torch.Generator().manual_seed(seed))


def test_one_expert_top1_is_the_dense_mlp():
    dense = transformer(MLP)
    one = EnsembleTransformer(K, V, CTX, d_model=D, n_layers=2, n_heads=2, d_mlp=DM, n_out=V, mlp=moe(1))
    state = dense.state_dict()
    for key in list(state):
        if ".mlp." in key:  # [K, ...] -> [K, 1, ...]: the dense MLP is expert 0
            state[key] = state[key].unsqueeze(1)
    for layer in range(2):
        state[f"blocks.{layer}.mlp.w_router"] = torch.randn(K, D, 1)
    one.load_state_dict(state)
    x = tokens()
    a, b = dense(x), one(x)
    assert torch.allclose(a, b, atol=1e-6, rtol=0)  # bit for bit on this CPU


@pytest.mark.parametrize("top_k", [1, 2])
def test_load_sums_to_one_and_aux_loss_is_exposed(top_k):
    m = transformer(moe(4, top_k=top_k))
    out = m(tokens())
    loads = expert_load(m)
    assert set(loads) == {"blocks.0.mlp", "blocks.1.mlp"}
    for load in loads.values():
        assert load.shape == (K, 4)
        assert torch.allclose(load.sum(-1), torch.ones(K))
    aux = moe_aux_loss(m)
    assert aux.shape == (K,) and aux.requires_grad
    copied = copy.deepcopy(m)  # the kept loss is part of a graph: copies (quantized_copy, ...) must still work
    assert torch.equal(copied(tokens()), out) and copied.blocks[0].mlp.aux_loss is not None
    (out.square().mean() + aux.sum()).backward()
    assert m.blocks[0].mlp.w_router.grad.abs().sum() > 0


def test_aux_loss_is_alpha_at_uniform_routing_and_more_when_skewed():
    layer = MoEMLP(2, D, DM, n_experts=4, top_k=1, alpha=0.01)
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 2, 4, D, generator=torch.Generator().manual_seed(0))
    # router logits forced: equal probabilities, ties broken so each expert gets 1/4 of the 8 tokens
    uniform = torch.zeros(2, 2, 4, 4)
    uniform[..., :, :] += (torch.arange(8).view(2, 4) % 4)[None, ..., None].eq(torch.arange(4)).float() * 1e-6
    layer(x, {"m.hook_router": lambda a, n: uniform}, "m")
    assert torch.allclose(layer.load, torch.full((2, 4), 0.25))
    assert torch.allclose(layer.aux_loss, torch.full((2,), 0.01), atol=1e-7)
    skewed = torch.zeros(2, 2, 4, 4)
    skewed[..., 0] = 5.0
    layer(x, {"m.hook_router": lambda a, n: skewed}, "m")
    assert torch.equal(layer.load[:, 0], torch.ones(2))
    assert (layer.aux_loss > 0.03).all()  # alpha * E * P_0 ~ 0.04 * 0.98


@pytest.mark.parametrize("top_k", [1, 2])
def test_members_are_independent(top_k):
    m = transformer(moe(4, top_k=top_k))
    x = tokens()
    out = m(x)
    for k in range(K):
        single = EnsembleTransformer(1, V, CTX, d_model=D, n_layers=2, n_heads=2, d_mlp=DM, n_out=V, mlp=moe(4, top_k))
        single.load_state_dict({n: p[k : k + 1] for n, p in m.state_dict().items()})
        assert torch.allclose(single(x[k : k + 1])[0], out[k], atol=1e-6, rtol=0)
    other = x.clone()
    other[1:] = tokens(seed=9)[1:]
    assert torch.allclose(m(other)[0], out[0], atol=1e-6, rtol=0)


def test_topk_output_is_the_gated_sum_of_its_experts():
    """The dispatch buffer computes exactly what a dense loop over experts would."""
    layer = MoEMLP(2, D, DM, n_experts=3, top_k=2)
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 3, 5, D, generator=torch.Generator().manual_seed(0))
    out = layer(x, None, "m")
    probs = torch.einsum("kbtd,kde->kbte", x, layer.w_router).softmax(-1)
    gates, chosen = probs.topk(2, dim=-1)
    gates = gates / gates.sum(-1, keepdim=True)
    hidden = torch.nn.functional.gelu(torch.einsum("kbtd,kedm->kbtem", x, layer.w_in) + layer.b_in[:, None, None])
    every = torch.einsum("kbtem,kemd->kbted", hidden, layer.w_out) + layer.b_out[:, None, None]
    want = (every.gather(3, chosen[..., None].expand(-1, -1, -1, -1, D)) * gates[..., None]).sum(3)
    assert torch.allclose(out, want, atol=1e-5)


def test_bad_routing_is_refused():
    with pytest.raises(ValueError, match="top_k"):
        MoEMLP(1, D, DM, n_experts=2, top_k=3)


def test_an_moe_transformer_is_kept_and_rebuilt():
    from learnlab.models.moe import MoETransformer
    from learnlab.store.models import ModelKeeper

    m = MoETransformer(2, V, CTX, d_model=D, n_layers=1, n_heads=2, d_mlp=DM, n_out=V, n_experts=3, top_k=2)
    m.reset_parameters([torch.Generator().manual_seed(i) for i in range(2)])
    keeper = ModelKeeper("final")
    keeper.keep("moe", m, [("moe", 0), ("moe", 1)], kwargs=m.kwargs)
    kept = keeper.result().ensembles()["moe"]
    assert isinstance(kept.model, MoETransformer) and kept.model.blocks[0].mlp.top_k == 2
    x = tokens(k=2)
    assert torch.equal(kept(x), m(x))
    assert torch.allclose(kept.member(1)(x[1:]), m(x)[1:], atol=1e-6)  # one member alone
