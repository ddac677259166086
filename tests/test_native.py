"""The native kernels equal their PyTorch counterparts, and treat every ensemble member alike."""

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_the_kernels_on_threads_of_its_own():
    table, rows, w = torch.randn(4, 5, 64), torch.randint(0, 5, (4, 3, 2)), torch.randn(4, 16, 64)
    expected = lstm.lstm_last_hidden(table, rows, w)  # the parent's thread pool now exists
    pid = os.fork()
    if pid == 0:  # the child: the same call must not wait on the parent's (absent) threads
        __import__("signal").alarm(30)  # a hang ends the child (and fails the test) instead of the suite
        os._exit(0 if torch.equal(lstm.lstm_last_hidden(table, rows, w), expected) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --- the kernel cache: nothing is loaded from it that this user's builder did not write ---------------------

PLANTED = """
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(getenv("LEARNLAB_TEST_MARKER"), "w");
    if (f) { fputs("the planted library ran\\n", f); fclose(f); }
}
"""

LOAD = """
import json, warnings
warnings.simplefilter("always")
from learnlab import native
lib = native.library("adam")
print(json.dumps({"path": lib and lib._name, "adam_step": bool(lib) and hasattr(lib, "adam_step")}))
"""


@pytest.fixture
def kernel_cache(tmp_path):
    """(cache root, run()) where run() loads the adam kernel in a fresh process using that cache."""
    root, marker = tmp_path / "cache", tmp_path / "marker"
    env = {**os.environ, "LEARNLAB_CACHE": str(root), "LEARNLAB_TEST_MARKER": str(marker), "LEARNLAB_NATIVE": "1"}

    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return {**json.loads(done.stdout.splitlines()[-1]), "stderr": done.stderr, "ran": marker.exists()}

    return root, run


def adam_paths(root):
    source = Path(native.__file__).with_name("adam.c")
    return native.cached_paths(root / "kernels", source, (), native.find_compiler())


def plant(path, tmp_path):
    (tmp_path / "planted.c").write_text(PLANTED)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [native.find_compiler(), "-shared", "-fPIC", str(tmp_path / "planted.c"), "-o", str(path)]
    subprocess.run(cmd, check=True)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded(manifest):
    return json.loads(manifest.read_text())["sha256"]


@pytest.mark.parametrize("manifest", ["none", "stale", "forged-but-group-writable"])
def test_a_planted_library_is_never_loaded_and_the_kernel_is_rebuilt(kernel_cache, tmp_path, manifest):
    root, run = kernel_cache
    target, record = adam_paths(root)
    if manifest != "none":
        assert run()["adam_step"]  # a genuine build first: the planted file replaces it
    plant(target, tmp_path)
    if manifest.startswith("forged"):  # the right hash beside it, but a file others could have written
        record.write_text(json.dumps({"sha256": sha256(target)}))
        os.chmod(target, 0o775)
    loaded = run()
    assert not loaded["ran"], "the planted library's constructor ran"
    assert loaded["path"] == str(target) and loaded["adam_step"]
    assert sha256(target) == recorded(record) and not os.stat(target).st_mode & 0o022
    assert run()["path"] == str(target) and not (tmp_path / "marker").exists()  # the rebuilt one is kept


@pytest.mark.parametrize("damage", ["garbage", "truncated", "garbage-recorded"])
def test_a_corrupt_kernel_is_rebuilt_not_skipped(kernel_cache, damage):
    root, run = kernel_cache
    target, record = adam_paths(root)
    assert run()["adam_step"]
    good = sha256(target)
    target.write_bytes(b"\x7fELF garbage" if damage.startswith("garbage") else target.read_bytes()[:1000])
    if damage == "garbage-recorded":  # recorded as built, yet it cannot load: rebuilt all the same
        record.write_text(json.dumps({"sha256": sha256(target)}))
    loaded = run()
    assert loaded["adam_step"] and "unavailable" not in loaded["stderr"]
    assert sha256(target) == recorded(record) == good  # the same compiler gives the same bytes


@pytest.mark.parametrize("where", ["kernels", "root"])
def test_a_world_writable_cache_is_not_used_and_the_kernel_is_built_privately(kernel_cache, tmp_path, where):
    root, run = kernel_cache
    target, record = adam_paths(root)
    plant(target, tmp_path)  # with a manifest that vouches for it: only the directory check stands in the way
    record.write_text(json.dumps({"sha256": sha256(target)}))
    os.chmod(root / "kernels" if where == "kernels" else root, 0o777)
    loaded = run()
    assert not loaded["ran"] and loaded["adam_step"]
    assert not loaded["path"].startswith(str(root)) and "world-writable" in loaded["stderr"]
    assert not os.path.exists(loaded["path"])  # the private directory goes when the process ends
    assert recorded(record) == sha256(target)  # and the untrusted cache is left as it was
