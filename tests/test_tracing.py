"""Causal tracing: no noise recovers everything, restoring all of a layer recovers the clean run, and the
model is left as it was."""

import math

import pytest
import torch

from learnlab.interventions.tracing import (
    causal_trace,
    clean_run,
    embedding_noise,
    patched_probs,
    recovery,
    subject_embedding_std,
    window_layers,
)
from learnlab.models.transformer import EnsembleTransformer

K, V, CTX, B, T = 2, 13, 10, 3, 6


def model(k=K):
    m = EnsembleTransformer(k, V, CTX, d_model=16, n_layers=3, n_heads=2, d_mlp=32, n_out=V)
    m.reset_parameters([torch.Generator().manual_seed(i) for i in range(k)])
    with torch.no_grad():  # larger weights than at initialisation, so the noise matters
        for p in m.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def prompts(k=K):
    tokens = torch.randint(0, V, (k, B, T), generator=torch.Generator().manual_seed(3))
    subject = torch.zeros(B, T, dtype=torch.bool)
    subject[:, 1:3] = True
    return tokens, subject, torch.tensor([[1, 2, 3]] * k)


@pytest.mark.parametrize("kind", ["residual", "mlp", "attention"])
def test_without_noise_every_restoration_recovers_everything(kind):
    m = model()
    tokens, subject, target = prompts()
    trace = causal_trace(m, tokens, subject, target, kind=kind, noise_std=0.0, n_samples=2)
    assert trace.restored.shape == (K, B, 3, T)
    assert torch.allclose(trace.corrupt, trace.clean, atol=1e-6)
    assert torch.equal(trace.recovery(), torch.ones(K, B, 3, T))


def test_recovery_definition():
    clean, corrupt = torch.tensor([0.8, 0.5, 0.5]), torch.tensor([0.2, 0.5, 0.5])
    got = recovery(clean, corrupt, torch.tensor([0.5, 0.5, 0.7]))
    assert math.isclose(got[0].item(), 0.5, rel_tol=1e-6)
    assert got[1].item() == 1.0  # nothing was lost: the restored run has the clean probability
    assert math.isnan(got[2].item())  # nothing was lost, yet the restored run differs: undefined


def test_noise_hurts_and_restoring_a_whole_layer_recovers_the_clean_run():
    m = model()
    tokens, subject, target = prompts()
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(3)]
    clean, cache = clean_run(m, tokens, target, names=names)
    noise = embedding_noise(m, subject, 4, generator=torch.Generator().manual_seed(0))
    assert noise[..., 0, :].abs().sum() == 0 and noise[..., 1, :].abs().sum() > 0  # only the subject is noised
    every = torch.ones(T, dtype=torch.bool)
    probs = patched_probs(m, tokens, target, noise, [{}, {names[0]: every}, {n: every for n in names}], cache)
    corrupt, first_layer, all_states = probs.unbind(-1)
    assert (corrupt - clean).abs().max() > 1e-3  # the noise changed something
    assert torch.allclose(first_layer, clean, atol=1e-6, rtol=0)
    assert torch.allclose(all_states, clean, atol=1e-6, rtol=0)


def test_trace_positions_before_the_subject_do_nothing_and_the_last_layer_at_the_read_position_recovers():
    m = model()
    tokens, subject, target = prompts()
    trace = causal_trace(m, tokens, subject, target, n_samples=3, generator=torch.Generator().manual_seed(0))
    rec = trace.recovery()
    assert (trace.total_effect.abs() > 1e-3).any()  # the noise moved the target's probability
    assert torch.allclose(trace.restored[..., 0], trace.corrupt[..., None], atol=1e-6)  # position 0: untouched
    assert torch.allclose(rec[:, :, -1, -1], torch.ones(K, B), atol=1e-4)  # last layer, read position: the clean run
    assert torch.allclose(trace.indirect_effect[..., -1, -1], trace.total_effect, atol=1e-6)


def test_members_are_traced_independently():
    m = model()
    tokens, subject, target = prompts()
    noise_seed = torch.Generator().manual_seed(0)
    trace = causal_trace(m, tokens, subject, target, kind="mlp", n_samples=3, noise_std=1.0, generator=noise_seed)
    single = model(1)
    single.load_state_dict({n: p[1:2] for n, p in m.state_dict().items()})
    # member 1's noise is the second member's slice of the same draw: replay it with the ensemble's draw
    noise = embedding_noise(m, subject, 3, 1.0, torch.Generator().manual_seed(0))[:, 1:2]
    _, cache = clean_run(single, tokens[1:2], target[1:2], names=["blocks.1.hook_mlp_out"])
    where = torch.zeros(T, dtype=torch.bool)
    where[2] = True
    got = patched_probs(single, tokens[1:2], target[1:2], noise, [{"blocks.1.hook_mlp_out": where}], cache)
    assert torch.allclose(got[0, :, 0], trace.restored[1, :, 1, 2], atol=1e-6)


def test_subject_embedding_std():
    m = model()
    tokens, subject, _ = prompts()
    got = subject_embedding_std(m, tokens, subject)
    for k in range(K):
        assert torch.isclose(got[k], m.w_embed[k][tokens[k][subject]].std())


def test_rome_window_convention():
    assert list(window_layers(10, 10, 48)) == list(range(5, 15))
    assert list(window_layers(1, 10, 48)) == list(range(0, 6))
    assert list(window_layers(2, 1, 3)) == [2]
    m = model()
    tokens, subject, target = prompts()
    wide = causal_trace(m, tokens, subject, target, kind="mlp", window=3, n_samples=2, layers=[1], positions=[2])
    assert wide.window == 3 and wide.restored.shape == (K, B, 1, 1)


def test_tracing_leaves_the_model_as_it_was():
    m = model()
    tokens, subject, target = prompts()
    before = {n: p.clone() for n, p in m.state_dict().items()}
    out = m(tokens)
    causal_trace(m, tokens, subject, target, kind="attention", n_samples=2)
    assert all(torch.equal(before[n], p) for n, p in m.state_dict().items())
    assert torch.equal(m(tokens), out)
    assert not m._forward_hooks and all(not mod._forward_hooks for mod in m.modules())


def test_padded_prompts_read_at_their_own_last_token():
    m = model()
    tokens, subject, target = prompts()
    lengths = torch.tensor([T, 4, 5])
    mask = (torch.arange(T) < lengths[:, None]).expand(K, B, T)
    read = (lengths - 1).expand(K, B)
    names = ["blocks.1.hook_resid_post"]
    clean, cache = clean_run(m, tokens, target, read, names, attention_mask=mask)
    noise = embedding_noise(m, subject, 2, generator=torch.Generator().manual_seed(0))
    where = torch.zeros(T, dtype=torch.bool)
    where[1] = True
    restore = [{}, {names[0]: where}]
    padded = patched_probs(m, tokens, target, noise, restore, cache, read, attention_mask=mask)
    for b, n in enumerate(lengths.tolist()):
        alone = tokens[:, b : b + 1, :n]
        c, alone_cache = clean_run(m, alone, target[:, b : b + 1], names=names)
        assert torch.allclose(c[:, 0], clean[:, b], atol=1e-6)
        got = patched_probs(
            m, alone, target[:, b : b + 1], noise[:, :, b : b + 1, :n], restore_at(restore, n), alone_cache
        )
        assert torch.allclose(got[:, 0], padded[:, b], atol=1e-6)


def restore_at(restore, n):
    return [{name: where[:n] for name, where in entry.items()} for entry in restore]


def test_a_looped_transformer_is_traced_over_its_block_applications():
    from learnlab.interventions.tracing import block_prefixes
    from learnlab.models.looped import LoopedTransformer

    m = LoopedTransformer(K, V, CTX, d_model=16, loops=3, block_layers=1, n_heads=2, d_mlp=32, n_out=V)
    m.reset_parameters([torch.Generator().manual_seed(i) for i in range(K)])
    assert block_prefixes(m) == ["loops.0.blocks.0", "loops.1.blocks.0", "loops.2.blocks.0"]
    tokens, subject, target = prompts()
    trace = causal_trace(m, tokens, subject, target, n_samples=2, noise_std=0.0)
    assert trace.restored.shape == (K, B, 3, T) and torch.equal(trace.recovery(), torch.ones(K, B, 3, T))
    noisy = causal_trace(m, tokens, subject, target, n_samples=2, generator=torch.Generator().manual_seed(0))
    assert (noisy.total_effect.abs() > 0).all()
    assert torch.allclose(noisy.restored[..., -1, -1], noisy.clean, atol=1e-6)  # the last loop's output
