"""The ensemble engine: K models trained as one equal K models trained one by one.

The reference for each member is plain PyTorch — nn.Embedding, nn.LSTM, nn.Linear and its own Adam —
started from the member's initial parameters and fed the member's own batches.
"""

import pytest
import torch
from torch import nn

from learnlab.engine.rng import generator
from learnlab.engine.train import train_ensemble
from learnlab.models.lstm import EnsembleLSTMClassifier, LSTMLastHidden, from_torch_lstm_order
from learnlab.protocols import sortedness_lstm as sl
from learnlab.studies import hard_negatives as a1

V, E, H = 50, 8, 32


def to_torch_order(w, dim=0):
    i, f, o, g = w.chunk(4, dim=dim)
    return torch.cat([i, f, g, o], dim=dim)


def members_and_stream(cfg, members):
    seeds = sorted({s for _, s in members})
    member_seed = torch.tensor([seeds.index(s) for _, s in members])
    share = torch.tensor([sl.HARD_SHARE[a] for a, _ in members])
    return sl.TrainingStream(cfg, seeds, member_seed, share)


def build(members, dtype=torch.float64):
    model = EnsembleLSTMClassifier(len(members), V, E, H)
    model.reset_parameters([generator(s, "init") for _, s in members])
    return model.to(dtype)


def torch_reference(model, k):
    emb, lstm, head = nn.Embedding(V, E), nn.LSTM(E, H, batch_first=True), nn.Linear(H, 1)
    with torch.no_grad():
        emb.weight.copy_(model.embedding[k])
        lstm.weight_ih_l0.copy_(to_torch_order(model.w_ih[k].T))
        lstm.weight_hh_l0.copy_(to_torch_order(model.w_hh[k].T))
        lstm.bias_ih_l0.copy_(to_torch_order(model.b_ih[k]))
        lstm.bias_hh_l0.copy_(to_torch_order(model.b_hh[k]))
        head.weight.copy_(model.w_out[k][None])
        head.bias.copy_(model.b_out[k][None])
    return nn.ModuleList([emb, lstm, head]).double()


def reference_logits(ref, tokens):
    emb, lstm, head = ref
    real = tokens[:, (tokens != V).any(dim=0)]  # this member's batch without padding columns
    _, (h, _) = lstm(emb(real))
    return head(h[-1]).squeeze(1)


def naive_lstm(xg, w, starts):
    """Textbook autograd LSTM, gate order (i, f, o, g); member k reads xg from step starts[k] on."""
    steps, k, b, g4 = xg.shape
    out = []
    for j in range(k):
        h = c = xg.new_zeros(b, g4 // 4)
        for t in range(starts[j], steps):
            i, f, o, g = (xg[t, j] + h @ w[j]).chunk(4, dim=-1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
        out.append(h)
    return torch.stack(out)


def test_lstm_function_matches_textbook_lstm_values_and_gradients():
    steps, k = 6, 4
    active = (1, 1, 2, 3, 4, 4)  # members 1..3 start at steps 1, 2, 3
    starts = [0, 2, 3, 4]
    xg = torch.randn(steps, k, 3, 8, dtype=torch.float64, requires_grad=True)
    w = (0.5 * torch.randn(k, 2, 8, dtype=torch.float64)).requires_grad_()
    upstream = torch.randn(k, 3, 2, dtype=torch.float64)
    table = xg.reshape(-1, 8)  # every input its own table row
    rows = torch.arange(table.shape[0]).view(steps, k, 3)
    for act, st in ((None, [0] * k), (active, starts)):
        ours = LSTMLastHidden.apply(table, rows, w, act)
        grads = torch.autograd.grad(ours, (xg, w), upstream)
        ref = naive_lstm(xg, w, st)
        ref_grads = torch.autograd.grad(ref, (xg, w), upstream)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(grads[0], ref_grads[0])  # zero where a member has not started
        torch.testing.assert_close(grads[1], ref_grads[1])


def test_gate_order_round_trip():
    w = torch.arange(8.0)
    assert torch.equal(to_torch_order(from_torch_lstm_order(w)), w)


def test_padding_and_inference_path_leave_logits_unchanged():
    model = build([("concept", 0), ("baseline", 1)])
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (2, 5, 7), generator=gen)
    padded = torch.cat([torch.full((2, 5, 4), V), tokens], dim=2)
    with torch.enable_grad():
        train_path = model(padded)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), train_path)
        torch.testing.assert_close(model(padded), train_path)


def test_initialisation_and_batches_depend_only_on_the_members_seed():
    cfg = a1.Config(**a1.PRESETS["smoke"])
    big, small = [("baseline", 3), ("concept", 5)], [("concept", 5)]
    torch.testing.assert_close(build(big).w_hh[1], build(small).w_hh[0], rtol=0, atol=0)
    stream_big, stream_small = members_and_stream(cfg, big), members_and_stream(cfg, small)
    for step in range(150):  # crosses a data-chunk boundary
        (xb, yb), (xs, ys) = stream_big(step), stream_small(step)
        strip = xb[1][:, (xb[1] != V).any(dim=0)]
        assert torch.equal(strip, xs[0][:, (xs[0] != V).any(dim=0)])
        assert torch.equal(yb[1], ys[0])


def test_ensemble_training_equals_separate_trainings():
    cfg = a1.Config(**a1.PRESETS["smoke"])
    members = [("baseline", 0), ("concept", 0), ("hard50", 1), ("concept", 2)]
    model = build(members)
    refs = [torch_reference(model, k) for k in range(len(members))]
    stream = members_and_stream(cfg, members)
    batches = [stream(step) for step in range(25)]

    train_ensemble(
        model,
        lambda step: (batches[step][0], batches[step][1].double()),
        sl.bce_per_model,
        steps=25,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )

    for k, ref in enumerate(refs):
        opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for tokens, labels in batches:
            loss = nn.functional.binary_cross_entropy_with_logits(reference_logits(ref, tokens[k]), labels[k].double())
            opt.zero_grad()
            loss.backward()
            opt.step()
        emb, lstm, head = ref
        close = dict(rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(model.embedding[k], emb.weight, **close)
        torch.testing.assert_close(to_torch_order(model.w_ih[k].T), lstm.weight_ih_l0, **close)
        torch.testing.assert_close(to_torch_order(model.w_hh[k].T), lstm.weight_hh_l0, **close)
        torch.testing.assert_close(to_torch_order(model.b_hh[k]), lstm.bias_hh_l0, **close)
        torch.testing.assert_close(model.w_out[k], head.weight[0], **close)
        assert not torch.equal(model.w_hh[k], build(members).w_hh[k])  # it did train


def test_a_members_training_is_bit_identical_whatever_else_shares_the_ensemble():
    """Every kernel must treat members alike: no reduction, vector tail or special path that depends on K."""
    cfg = a1.Config(**a1.PRESETS["smoke"])

    def trained(members):
        model = build(members, torch.float32)
        stream = members_and_stream(cfg, members)
        train_ensemble(model, stream, sl.bce_per_model, steps=40, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return model

    alone = trained([("concept", 7)])
    crowd = trained([("baseline", 3), ("hard25", 7), ("concept", 5), ("concept", 7), ("hard75", 9)])
    for name, p in alone.named_parameters():
        assert torch.equal(p[0], getattr(crowd, name)[3]), name


def test_an_interruption_in_a_steps_callback_resumes_before_that_step(tmp_path):
    """on_step's side effects (kept snapshots) come before the checkpoint, so a resume never skips them."""
    from learnlab.engine.train import Checkpoint
    from learnlab.models.mlp import EnsembleMLP

    def batch(step: int):
        gen = torch.Generator().manual_seed(step)
        return torch.randn(2, 8, 4, generator=gen), torch.randint(0, 3, (2, 8), generator=gen)

    def loss(model, data):
        x, y = data
        return nn.functional.cross_entropy(model(x).transpose(1, 2), y, reduction="none").mean(-1)

    def train(checkpoint, on_step=None):
        model = EnsembleMLP(2, [4, 8, 3])
        model.reset_parameters([generator(s, "init") for s in (0, 1)])
        return model, train_ensemble(model, batch, loss, steps=6, lr=0.01, checkpoint=checkpoint, on_step=on_step)

    def interrupt_at_4(step: int) -> None:
        if step == 4:
            raise KeyboardInterrupt

    checkpoint = Checkpoint(tmp_path / "train.ckpt", every=2)
    seen: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        train(checkpoint, interrupt_at_4)
    assert torch.load(checkpoint.path)["step"] == 2  # not 4: step 4's callback never finished
    resumed, log = train(checkpoint, seen.append)
    assert seen == [3, 4, 5, 6]
    whole, whole_log = train(None)
    assert torch.equal(log.losses, whole_log.losses)
    assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), whole.parameters(), strict=True))
