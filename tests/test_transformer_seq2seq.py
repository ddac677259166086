"""The ensemble transformer encoder-decoder: members are independent (an ensemble trains like separate
models of the same seeds), padding is invisible, greedy decoding is teacher forcing on its own outputs, and
the hooks see and change what they name."""

import pytest
import torch
from test_seq2seq import (
    IN,
    OUT,
    _batches,
    _loss,
    assert_ensemble_equals_separate_trainings,
    assert_greedy_matches_teacher_forcing,
)

from learnlab.models.transformer_seq2seq import EnsembleTransformerSeq2Seq

B = 6


def _model(seeds, **kw):
    model = EnsembleTransformerSeq2Seq(len(seeds), IN, OUT, max_in=5, max_out=6, d_model=16, n_heads=2, d_mlp=32, **kw)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in seeds])
    return model


def test_ensemble_equals_separate_trainings():
    assert_ensemble_equals_separate_trainings(_model, steps=20)


def test_source_padding_changes_nothing():
    model = _model([1, 2])
    src, tgt = _batches([1, 2], 1)[0]
    src = src[..., :3].clone()
    src[:, :, 2] = 0  # every command two words long, then padding
    tgt_in = torch.cat([torch.ones_like(tgt[..., :1]), tgt[..., :-1]], dim=-1)
    padded = model(torch.cat([src, torch.zeros_like(src[..., :2])], dim=-1), tgt_in)
    torch.testing.assert_close(model(src, tgt_in), padded, atol=1e-6, rtol=1e-5)


def test_decoder_is_causal():
    model = _model([1])
    src, tgt = _batches([1], 1)[0]
    changed = tgt.clone()
    changed[..., 3:] = (changed[..., 3:] + 1) % OUT
    torch.testing.assert_close(model(src, tgt)[..., :3, :], model(src, changed)[..., :3, :])


def test_greedy_matches_teacher_forcing_on_its_own_outputs():
    assert_greedy_matches_teacher_forcing(_model([1, 2]))  # greedy runs with a key-value cache


def test_chunked_loss_equals_the_whole_batch_loss():
    seeds = [1, 2]
    src, tgt = _batches(seeds, 1)[0]
    tgt[0, 0, 2:] = torch.tensor([2, 0, 0, 0])  # targets of different lengths
    model = _model(seeds)
    torch.testing.assert_close(model.loss(src, tgt, bos=1, chunks=3), _loss(model, (src, tgt)))


def test_cross_attention_pattern_hook_sees_and_moves_the_source():
    model = _model([1, 2])
    src, tgt = _batches([1, 2], 1)[0]
    tgt_in = torch.cat([torch.ones_like(tgt[..., :1]), tgt[..., :-1]], dim=-1)
    fast = model(src, tgt_in)
    out, cache = model.run_with_cache(src, ["decoder.1.cross_attn.hook_pattern"], tgt_in=tgt_in)
    torch.testing.assert_close(out, fast, atol=1e-6, rtol=1e-5)  # the explicit path equals SDPA's
    pattern = cache["decoder.1.cross_attn.hook_pattern"]
    assert pattern.shape == (2, B, 2, tgt.shape[-1], src.shape[-1])
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
    assert (pattern[(src == 0)[:, :, None, None, :].expand_as(pattern)] == 0).all()  # padding gets no weight
    uniform = model.run_with_hooks(src, [("decoder.1.cross_attn.hook_pattern", lambda p, n: torch.ones_like(p) / 5)],
                                   tgt_in=tgt_in)  # fmt: skip
    assert not torch.allclose(uniform, fast)
    with pytest.raises(KeyError, match="decoder.7"):
        model.run_with_hooks(src, [("decoder.7.hook_mlp_out", lambda x, n: None)], tgt_in=tgt_in)


def test_every_hook_point_is_reached():
    model = _model([1])
    src, tgt = _batches([1], 1)[0]
    _, cache = model.run_with_cache(src, tgt_in=tgt)
    assert set(cache) == set(model.hook_names())
