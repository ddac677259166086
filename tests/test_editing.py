"""Rank-one editing: the closed form maps k* to v* and spares keys orthogonal under C; edits undo bit for
bit and touch only their members; v* optimisation makes the model emit the new target; the FT baseline."""

import pytest
import torch

from learnlab.engine.determinism import deterministic
from learnlab.interventions.editing import (
    IGNORE,
    apply_rank_one,
    corpus_covariance,
    finetune_layer,
    key_covariance,
    label_nll,
    mlp_keys,
    optimise_value,
    rank_one_update,
    rome_edit,
    spd_solve,
    subject_key,
    value_hooks,
)
from learnlab.models.moe import moe
from learnlab.models.transformer import EnsembleTransformer

K, V, CTX, T = 3, 13, 10, 6


def model(k=K, **kw):
    m = EnsembleTransformer(k, V, CTX, d_model=16, n_layers=2, n_heads=2, d_mlp=32, n_out=V, **kw)
    m.reset_parameters([torch.Generator().manual_seed(i) for i in range(k)])
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def corpus(k=K, n=64):
    return torch.randint(0, V, (k, n, T), generator=torch.Generator().manual_seed(5))


def test_closed_form_on_a_toy_linear_layer():
    gen = torch.Generator().manual_seed(0)
    members, d_in, d_out, n = 2, 8, 5, 40
    w, b = (
        torch.randn(members, d_in, d_out, generator=gen, dtype=torch.float64),
        torch.randn(members, d_out, dtype=torch.float64),
    )
    keys = torch.randn(members, n, d_in, generator=gen, dtype=torch.float64) + 0.5  # uncentred
    cov = key_covariance(keys)
    assert torch.allclose(cov, keys.transpose(1, 2) @ keys / n)
    k_star, v_star = torch.randn(members, d_in, dtype=torch.float64), torch.randn(members, d_out, dtype=torch.float64)
    new = rank_one_update(w, k_star, v_star, cov, b)
    out = lambda weight, key: (key[:, None] @ weight)[:, 0] + b  # noqa: E731
    assert torch.allclose(out(new, k_star), v_star, atol=1e-10)
    u = torch.linalg.solve(cov, k_star[..., None])[..., 0]  # C^-1 k*
    r = torch.randn(members, d_in, generator=gen, dtype=torch.float64)
    orthogonal = r - (r * u).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True) * u  # k^T C^-1 k* = 0
    assert (orthogonal * u).sum(-1).abs().max() < 1e-12
    assert torch.allclose(out(new, orthogonal), out(w, orthogonal), atol=1e-10)
    assert not torch.allclose(out(new, r), out(w, r), atol=1e-3)  # a general key does move
    assert torch.linalg.matrix_rank(new - w).tolist() == [1, 1]


def test_spd_solve_by_cholesky_and_a_singular_c_by_its_pseudo_inverse():
    gen = torch.Generator().manual_seed(3)
    keys = torch.randn(2, 50, 16, generator=gen, dtype=torch.float64) + 0.3
    cov, rhs = key_covariance(keys, ridge=1e-3), torch.randn(2, 16, generator=gen, dtype=torch.float64)
    assert torch.allclose(spd_solve(cov, rhs), torch.linalg.solve(cov, rhs[..., None])[..., 0], atol=1e-10)
    with deterministic():  # as inside a run, where the LU solve failed (lu_solve's pivots)
        assert torch.allclose(spd_solve(cov, rhs), torch.linalg.solve(cov, rhs[..., None])[..., 0], atol=1e-10)
    few = key_covariance(keys[:, :5])  # rank 5 of 16: not positive definite
    k_star = keys[:, 0]  # in C's range
    u = spd_solve(few, k_star)
    assert torch.isfinite(u).all() and torch.allclose((few @ u[..., None])[..., 0], k_star, atol=1e-8)


def test_covariance_mask_and_ridge():
    keys = torch.randn(2, 10, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, :6] = True
    assert torch.allclose(key_covariance(keys, mask), key_covariance(keys[:, :6]))
    ridged = key_covariance(keys, ridge=0.1)
    plain = key_covariance(keys)
    assert torch.allclose(ridged - plain, 0.1 * plain.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(4))


def test_corpus_covariance_accumulates_batches_and_leaves_padding_out():
    m = model()
    data = corpus(k=1, n=10)[0]
    data[3:, 4:] = 0  # token 0 as padding
    batches = [data[:4], data[4:]]
    got = corpus_covariance(m, batches, 1, pad_id=0)
    keys = mlp_keys(m, data.expand(K, -1, -1), 1)
    assert torch.allclose(got, key_covariance(keys, (data != 0).flatten().expand(K, -1)), atol=1e-10)
    assert not torch.allclose(got, key_covariance(keys), atol=1e-4)


def test_edit_on_a_transformer_writes_v_star_for_its_member_only_and_undoes_bit_for_bit():
    m = model()
    before = {n: p.clone() for n, p in m.state_dict().items()}
    prompt = corpus(n=1)
    clean = m(prompt)
    cov = key_covariance(mlp_keys(m, corpus(), 1))
    k_star = subject_key(m, prompt, 1, position=2)
    v_star = torch.randn(K, 16, generator=torch.Generator().manual_seed(1))
    with apply_rank_one(m, 1, k_star, v_star, cov, members=[1]) as edit:
        _, cache = m.run_with_cache(prompt, ["blocks.1.hook_mlp_out"])
        assert torch.allclose(cache["blocks.1.hook_mlp_out"][1, 0, 2], v_star[1], atol=1e-4)
        edited = m(prompt)
        assert torch.equal(edited[[0, 2]], clean[[0, 2]])  # other members untouched
        assert not torch.allclose(edited[1], clean[1])
        assert edit.members == (1,)
    assert all(torch.equal(before[n], p) for n, p in m.state_dict().items())  # undone, bit for bit
    edit = apply_rank_one(m, 1, k_star, v_star, cov)
    assert not torch.equal(m.blocks[1].mlp.w_out, before["blocks.1.mlp.w_out"])
    edit.undo()
    assert torch.equal(m.blocks[1].mlp.w_out, before["blocks.1.mlp.w_out"])


def test_rome_edit_makes_the_model_emit_the_new_target():
    m = model()
    prompts = corpus(n=4)
    labels = torch.full_like(prompts, IGNORE)
    read = T - 1
    current = m(prompts)[:, :, read].argmax(-1)
    new_target = (current[:, :1] + 1) % V  # a token the model does not predict, the same for the 4 prompts
    labels[:, :, read] = new_target
    prompts[:, :, 1:] = prompts[:, :1, 1:]  # the prompts differ only in their first token ("prefix")
    cov = key_covariance(mlp_keys(m, corpus(), 0))
    before = label_nll(m(prompts), labels)
    with rome_edit(m, prompts, labels, layer=0, position=read, cov=cov, members=[0, 2], steps=40):
        after = m(prompts)
        assert (after[[0, 2], :, read].argmax(-1) == new_target[[0, 2]]).all()  # efficacy
        assert torch.equal(after[1], m(prompts)[1])
        assert (label_nll(after, labels)[[0, 2]] < before[[0, 2]]).all()
    assert torch.allclose(label_nll(m(prompts), labels), before)


def test_v_star_at_the_site_and_the_rank_one_edit_agree_where_the_key_is_k_star():
    """The site's ceiling (v* added at the subject's last token by `value_hooks`) and the weight edit give the
    same MLP output there and the same prediction when every prompt has the key k*: the edit loses nothing."""
    m = model()
    prompt = corpus(n=1)
    labels = torch.full_like(prompt, IGNORE)
    read = subject = T - 1  # a random model routes little from earlier positions to the read one
    labels[:, :, read] = (m(prompt)[:, :, read].argmax(-1) + 1) % V
    cov = key_covariance(mlp_keys(m, corpus(), 0), ridge=1e-3)
    v_star = optimise_value(m, prompt, labels, 0, subject, steps=40)
    hooks = value_hooks(m, prompt, 0, subject, v_star)
    seen = {}
    m(prompt, hooks={"blocks.0.hook_mlp_out": lambda x, n: seen.setdefault(n, hooks[n](x, n))})
    assert torch.allclose(seen["blocks.0.hook_mlp_out"][:, 0, subject], v_star, atol=1e-5)
    with apply_rank_one(m, 0, subject_key(m, prompt, 0, subject), v_star, cov):
        _, edited = m.run_with_cache(prompt, ["blocks.0.hook_mlp_out"])
        assert torch.allclose(edited["blocks.0.hook_mlp_out"][:, 0, subject], v_star, atol=1e-4)
        after, edited_nll = m(prompt)[:, 0, read].argmax(-1), label_nll(m(prompt), labels)
    assert torch.equal(after, labels[:, 0, read])  # efficacy 100% on the edited prompt, every member
    assert torch.equal(m(prompt, hooks=hooks)[:, 0, read].argmax(-1), after)
    assert torch.allclose(label_nll(m(prompt, hooks=hooks), labels), edited_nll, atol=0.1)  # other keys move a little


def test_the_essence_term_keeps_the_subjects_own_distribution():
    m = model()
    prompts = corpus(n=4)
    prompts[:, :, 1:] = prompts[:, :1, 1:]
    labels = torch.full_like(prompts, IGNORE)
    labels[:, :, -1] = (m(prompts)[:, :1, -1].argmax(-1) + 1) % V
    essence = prompts[:, :, :3]  # "{prefix} {subject}": its next token at the subject's last position, 2
    cov = key_covariance(mlp_keys(m, corpus(), 0))
    before = m(essence)[:, :, 2].log_softmax(-1)

    def shift(**kw):
        with rome_edit(m, prompts, labels, 0, 2, cov, steps=20, stop_below=0.0, **kw):
            after = m(essence)[:, :, 2].log_softmax(-1)
        return (before.exp() * (before - after)).sum(-1).mean(-1)  # KL(unedited || edited) [K]

    free, held = shift(), shift(essence=(essence, 2), kl_factor=10.0)
    assert (free > 1e-3).all() and (held < free).all()


def test_finetuning_baseline_bounded_and_undone():
    m = model()
    before = {n: p.clone() for n, p in m.state_dict().items()}
    prompts = corpus(n=2)
    labels = torch.full_like(prompts, IGNORE)
    labels[:, :, -1] = 4
    nll = label_nll(m(prompts), labels)
    edit = finetune_layer(m, prompts, labels, layer=1, members=[2], steps=20, lr=0.05, max_change=0.05)
    w = m.blocks[1].mlp.w_out
    assert label_nll(m(prompts), labels)[2] < nll[2]
    change = (w - before["blocks.1.mlp.w_out"]).abs()
    assert change[2].max() <= 0.05 + 1e-7 and change[2].max() > 0
    assert torch.equal(change[:2], torch.zeros_like(change[:2]))
    assert all(torch.equal(before[n], p) for n, p in m.state_dict().items() if n != "blocks.1.mlp.w_out")
    assert all(p.grad is None for p in m.parameters())
    edit.undo()
    assert all(torch.equal(before[n], p) for n, p in m.state_dict().items())


def test_a_mixture_of_experts_mlp_is_refused():
    m = model(mlp=moe(2))
    with pytest.raises(ValueError, match="dense MLP"):
        apply_rank_one(m, 0, torch.zeros(K, 32), torch.zeros(K, 16), torch.eye(32).expand(K, 32, 32))
