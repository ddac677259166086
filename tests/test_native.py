"""The native kernels equal their PyTorch counterparts, and treat every ensemble member alike."""

import copy

import pytest
import torch

from learnlab import native
from learnlab.engine.adam import NativeAdam
from learnlab.models import lstm, lstm_native

pytestmark = pytest.mark.skipif(native.library("adam") is None, reason="no C compiler: PyTorch fallbacks only")


def torch_path(monkeypatch, fn, *args):
    """fn(*args) with the native LSTM switched off."""
    with monkeypatch.context() as m:
        m.setattr(lstm_native, "usable", lambda *a: False)
        return fn(*args)


def test_native_lstm_matches_pytorch_values_gradients_and_inference(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    k, steps, b, h, rows_in_table = 6, 9, 7, 32, 20
    table = torch.randn(k, rows_in_table, 4 * h, generator=gen).requires_grad_()
    rows = torch.randint(0, rows_in_table, (k, steps, b), generator=gen)
    w = (0.3 * torch.randn(k, h, 4 * h, generator=gen)).requires_grad_()
    start = torch.tensor([0, 3, 0, 9, 5, 1])  # member 3 never starts
    upstream = torch.randn(k, b, h, generator=gen)

    def run():
        out = lstm.lstm_last_hidden(table, rows, w, start)
        grads = torch.autograd.grad(out, (table, w), upstream)
        with torch.no_grad():
            inference = lstm.lstm_last_hidden(table, rows, w, start)
        return out, *grads, inference

    assert lstm_native.usable(h, table, w)
    for ours, ref in zip(run(), torch_path(monkeypatch, run), strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=2e-6)
    assert torch.equal(lstm.lstm_last_hidden(table, rows, w, start)[3], torch.zeros(b, h))


def test_native_lstm_member_is_bit_identical_alone_and_in_a_crowd():
    gen = torch.Generator().manual_seed(1)
    table, w = torch.randn(5, 11, 64, generator=gen), 0.3 * torch.randn(5, 16, 64, generator=gen)
    rows, start = torch.randint(0, 11, (5, 8, 3), generator=gen), torch.tensor([2, 0, 4, 1, 0])
    table.requires_grad_()
    crowd = lstm.lstm_last_hidden(table, rows, w, start)
    (d_crowd,) = torch.autograd.grad(crowd.sum(), table)
    alone = lstm.lstm_last_hidden(table[2:3], rows[2:3], w[2:3], start[2:3])
    (d_alone,) = torch.autograd.grad(alone.sum(), table)
    assert torch.equal(crowd[2], alone[0])
    assert torch.equal(d_crowd[2], d_alone[2])


def test_native_adam_matches_torch_adam_and_resumes_from_its_state():
    gen = torch.Generator().manual_seed(2)
    start = [torch.randn(40, 33, generator=gen), torch.randn(7, generator=gen)]
    ours = [torch.nn.Parameter(x.clone()) for x in start]
    ref = [torch.nn.Parameter(x.clone()) for x in start]
    opt = NativeAdam(ours, lr=5e-3, weight_decay=1e-4)
    ref_opt = torch.optim.Adam(ref, lr=5e-3, weight_decay=1e-4, foreach=True)
    for step in range(50):
        if step == 25:  # resume from a checkpoint: a fresh optimizer loads the saved state
            saved = copy.deepcopy(opt.state_dict())
            opt = NativeAdam(ours, lr=5e-3, weight_decay=1e-4)
            opt.load_state_dict(saved)
        grads = [torch.randn(x.shape, generator=gen) for x in start]
        for p, q, g in zip(ours, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("index", [5, 33])  # one element in the vector body, one in the padded tail
def test_native_adam_updates_an_element_alike_wherever_it_sits(index):
    gen = torch.Generator().manual_seed(3)
    big = torch.nn.Parameter(torch.randn(37, generator=gen))
    alone = torch.nn.Parameter(big.detach()[index : index + 1].clone())
    opts = NativeAdam([big], lr=1e-2, weight_decay=1e-4), NativeAdam([alone], lr=1e-2, weight_decay=1e-4)
    for _ in range(30):
        g = torch.randn(37, generator=gen)
        big.grad, alone.grad = g.clone(), g[index : index + 1].clone()
        for opt in opts:
            opt.step()
    assert torch.equal(big[index : index + 1], alone)


def test_split_balances_work_and_covers_every_member(monkeypatch):
    monkeypatch.setattr(native, "threads", lambda: 2)
    assert native.split([12, 12, 1, 1, 1, 12]) == [(0, 2), (2, 6)]
    assert native.split([1, 1, 1, 1]) == [(0, 2), (2, 4)]
    assert native.split([5]) == [(0, 1)]
    monkeypatch.setattr(native, "threads", lambda: 3)
    assert native.split([4, 4, 4, 4, 4, 4]) == [(0, 2), (2, 4), (4, 6)]


def test_native_classifier_matches_the_pytorch_model_in_logits_and_every_gradient(monkeypatch):
    from learnlab.engine.rng import generator
    from learnlab.models.lstm import EnsembleLSTMClassifier

    model = EnsembleLSTMClassifier(3, 10, 4, 16)
    model.reset_parameters([generator(s, "init") for s in range(3)])
    gen = torch.Generator().manual_seed(4)
    tokens = torch.randint(0, 10, (3, 5, 7), generator=gen)
    tokens[0, :, :3] = 10  # member 0 starts at step 3 (right-aligned padding)
    tokens[1, 2, :5] = 10  # one shorter row inside a member
    tokens[2] = 10  # member 2 sees only padding
    labels = torch.rand(3, 5, generator=gen)

    def run():
        model.zero_grad()
        logits = model(tokens)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum").backward()
        with torch.no_grad():
            inference = model(tokens)
        return logits, inference, *(p.grad.clone() for p in model.parameters())

    ours = run()
    with monkeypatch.context() as m:
        m.setattr(lstm_native, "usable", lambda *a: False)
        ref = run()
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-6)


def test_fused_bce_step_gives_autograds_losses_and_gradients_and_each_member_its_own():
    from learnlab.engine.rng import generator
    from learnlab.models.lstm import EnsembleLSTMClassifier

    model = EnsembleLSTMClassifier(4, 10, 4, 16)
    model.reset_parameters([generator(s, "init") for s in range(4)])
    gen = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 10, (4, 6, 8), generator=gen)
    tokens[1, :, :4] = 10  # a member that starts late
    labels = torch.rand(4, 6, generator=gen)  # soft labels too
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(tokens), labels, reduction="none").mean(1)
    loss.sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fused = model.bce_step(tokens, labels)
    torch.testing.assert_close(fused, loss.detach(), rtol=1e-6, atol=1e-6)
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-8)
    crowd = [p.grad[2].clone() for p in model.parameters()]
    alone = EnsembleLSTMClassifier(1, 10, 4, 16)
    with torch.no_grad():
        for q, p in zip(alone.parameters(), model.parameters(), strict=True):
            q.copy_(p[2:3])
    assert torch.equal(alone.bce_step(tokens[2:3], labels[2:3]), fused[2:3])
    assert all(torch.equal(q.grad[0], g) for q, g in zip(alone.parameters(), crowd, strict=True))


def test_out_of_range_tokens_raise_instead_of_reading_past_the_table():
    from learnlab.models.lstm import EnsembleLSTMClassifier

    model = EnsembleLSTMClassifier(2, 10, 4, 16)
    with pytest.raises(IndexError, match="out of range"):
        model(torch.full((2, 3, 5), 11))  # 10 is the padding token; 11 does not exist


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_runs_the_kernels_on_threads_of_its_own():
    import os

    table, rows, w = torch.randn(4, 5, 64), torch.randint(0, 5, (4, 3, 2)), torch.randn(4, 16, 64)
    expected = lstm.lstm_last_hidden(table, rows, w)  # the parent's thread pool now exists
    pid = os.fork()
    if pid == 0:  # the child: the same call must not wait on the parent's (absent) threads
        __import__("signal").alarm(30)  # a hang ends the child (and fails the test) instead of the suite
        os._exit(0 if torch.equal(lstm.lstm_last_hidden(table, rows, w), expected) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
