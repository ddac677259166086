"""The ensemble GRU seq2seq: its GRU is nn.GRU's, an ensemble trains like separate models of the same
seeds, and the scores count what they say."""

import torch
from torch import nn

from learnlab.engine.train import train_ensemble
from learnlab.models.seq2seq import EnsembleSeq2Seq, decode_scores, sequence_loss

IN, OUT, B = 8, 7, 6


def _model(seeds):
    model = EnsembleSeq2Seq(len(seeds), IN, OUT, d_embed=8, d_hidden=12)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in seeds])
    return model


def _batches(seeds, steps):
    """Member-wise batches: seed s's batch at a step depends on s alone (src with padding, tgt with eos)."""
    out = []
    for step in range(steps):
        src, tgt = [], []
        for s in seeds:
            g = torch.Generator().manual_seed(1000 * s + step)
            x = torch.randint(3, IN, (B, 5), generator=g)
            x[:, 3:] *= torch.rand(B, 1, generator=g) < 0.5  # some commands shorter (pad = 0)
            y = torch.randint(3, OUT, (B, 6), generator=g)
            y[:, 4] = 2
            y[:, 5] = 0
            src.append(x)
            tgt.append(y)
        out.append((torch.stack(src), torch.stack(tgt)))
    return out


def _loss(model, batch):
    src, tgt = batch
    tgt_in = torch.cat([torch.ones_like(tgt[..., :1]), tgt[..., :-1]], dim=-1)
    return sequence_loss(model(src, tgt_in), tgt)


def test_gru_is_torch_gru():
    model = _model([0])
    ref = nn.GRU(8, 12, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.encoder.w_ih[0].T)
        ref.weight_hh_l0.copy_(model.encoder.w_hh[0].T)
        ref.bias_ih_l0.copy_(model.encoder.b_ih[0])
        ref.bias_hh_l0.copy_(model.encoder.b_hh[0])
    x, h0 = torch.randn(1, 3, 5, 8), torch.randn(1, 3, 12)
    ours, last = model.encoder(x, h0)
    theirs, last_ref = ref(x[0], h0)
    torch.testing.assert_close(ours[0], theirs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(last, last_ref, atol=1e-6, rtol=1e-5)


def assert_ensemble_equals_separate_trainings(model, seeds=(3, 4, 5), steps=25):
    """`model(seeds)` trained as one ensemble ends where each seed trained alone ends (and it learns)."""
    batches = _batches(seeds, steps)
    ensemble = model(seeds)
    log = train_ensemble(ensemble, lambda s: batches[s], _loss, steps=steps, lr=1e-2)
    for k, seed in enumerate(seeds):
        alone = model([seed])
        own = [(x[k : k + 1], y[k : k + 1]) for x, y in batches]
        alone_log = train_ensemble(alone, lambda s, own=own: own[s], _loss, steps=steps, lr=1e-2)
        torch.testing.assert_close(log.losses[:, k], alone_log.losses[:, 0], atol=1e-5, rtol=1e-5)
        for (name, p), q in zip(ensemble.named_parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(p[k : k + 1], q, atol=1e-5, rtol=1e-4, msg=name)
    assert log.losses[-1].mean() < log.losses[0].mean()  # it learns


def test_ensemble_equals_separate_trainings():
    assert_ensemble_equals_separate_trainings(_model)


def assert_greedy_matches_teacher_forcing(model):
    """Greedy decoding of a 2-member model equals the argmax of teacher forcing on its own outputs."""
    src = _batches([1, 2], 1)[0][0]
    pred = model.greedy(src, steps=6, bos=1, eos=2)
    tgt_in = torch.cat([torch.ones_like(pred[..., :1]), pred[..., :-1]], dim=-1)
    forced = model(src, tgt_in).argmax(-1)
    first_eos = (pred == 2).int().argmax(-1)
    for k in range(2):
        for b in range(B):
            n = int(first_eos[k, b]) + 1 if (pred[k, b] == 2).any() else 6
            assert torch.equal(forced[k, b, :n], pred[k, b, :n])


def test_greedy_matches_teacher_forcing_on_its_own_outputs():
    assert_greedy_matches_teacher_forcing(_model([1, 2]))


def test_decode_scores():
    target = torch.tensor([[[3, 4, 2, 0], [3, 2, 0, 0], [5, 5, 5, 2]]])
    pred = torch.tensor([[[3, 4, 2, 6], [3, 4, 2, 0], [5, 6, 5, 2]]])
    exact, token = decode_scores(pred, target, eos=2)
    assert exact.tolist() == [[True, False, False]]  # trailing junk after eos is fine; a missing eos is not
    torch.testing.assert_close(token, torch.tensor([[1.0, 0.5, 0.75]]))


def test_chunked_loss_equals_the_whole_batch_loss_and_gradients():
    seeds = [1, 2]
    src, tgt = _batches(seeds, 1)[0]
    tgt[0, 0, 2:] = torch.tensor([2, 0, 0, 0])  # targets of different lengths
    tgt[1, 3, 1:] = torch.tensor([2, 0, 0, 0, 0])
    grads = []
    for chunks in (1, 3):
        model = _model(seeds)
        loss = model.loss(src, tgt, bos=1, chunks=chunks)
        loss.sum().backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], _loss(_model(seeds), (src, tgt)).detach())
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_hand_written_gru_backward_passes_gradcheck():
    from learnlab.models.seq2seq import GRURecurrence

    g = torch.Generator().manual_seed(0)
    k, b, t, h = 2, 3, 4, 5
    args = [torch.randn(t, k, b, 3 * h, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(k, b, h, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(k, h, 3 * h, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(k, 3 * h, generator=g, dtype=torch.float64, requires_grad=True)]  # fmt: skip
    mask = torch.rand(t, k, b, generator=g) < 0.7
    assert torch.autograd.gradcheck(lambda *a: GRURecurrence.apply(*a, None), args)
    assert torch.autograd.gradcheck(lambda *a: GRURecurrence.apply(*a, mask), args)
