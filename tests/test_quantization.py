"""Interventions: symmetric quantization on hand-checked cases, and DropConnect's masks."""

import pytest
import torch

from learnlab.engine.rng import generator
from learnlab.interventions import dropconnect_copy, quantize_symmetric, quantized_copy
from learnlab.models.lstm import EnsembleLSTMClassifier


def test_three_bits_per_tensor_by_hand():
    # q = 2^2 - 1 = 3, scale = 1.2 / 3 = 0.4; w / scale = 3, -1.25, 0.75, -0.25, 0 -> 3, -1, 1, 0, 0
    w = torch.tensor([1.2, -0.5, 0.3, -0.1, 0.0])
    torch.testing.assert_close(quantize_symmetric(w, 3, None, member_dim=None), torch.tensor([1.2, -0.4, 0.4, 0, 0]))


def test_three_bits_per_channel_by_hand():
    w = torch.tensor([[1.2, -0.5], [0.3, 0.1]])
    # rows: scales 0.4 and 0.1 -> [3, -1.25 -> -1], [3, 1]
    rows = quantize_symmetric(w, 3, 0, member_dim=None)
    torch.testing.assert_close(rows, torch.tensor([[1.2, -0.4], [0.3, 0.1]]))
    # columns: scales 0.4 and 0.5/3 -> [3, 0.75 -> 1], [-3, 0.6 -> 1]
    cols = quantize_symmetric(w, 3, 1, member_dim=None)
    torch.testing.assert_close(cols, torch.tensor([[1.2, -0.5], [0.4, 0.5 / 3]]))


def test_each_member_is_quantized_alone():
    w = torch.randn(3, 4, 5, generator=generator(0, "test"))
    for channel in (None, 1, 2, -1):
        stacked = quantize_symmetric(w, 4, channel)
        for k in range(3):
            alone_axis = None if channel is None else (channel - 1 if channel > 0 else channel)
            alone = quantize_symmetric(w[k], 4, alone_axis, member_dim=None)
            assert torch.equal(stacked[k], alone)
        louder = w.clone()
        louder[2] *= 100  # another member's scale must not leak into member 0's grid
        assert torch.equal(quantize_symmetric(louder, 4, channel)[0], stacked[0])


@pytest.mark.parametrize("channel", [None, 1])
def test_eight_bits_error_is_at_most_half_a_step(channel):
    w = torch.randn(2, 64, 32, generator=generator(1, "test"), dtype=torch.float64)
    reduced = (1, 2) if channel is None else (2,)
    scale = w.abs().amax(dim=reduced, keepdim=True) / 127
    err = (quantize_symmetric(w, 8, channel) - w).abs()
    assert (err <= scale / 2 * (1 + 1e-12)).all()
    grid = quantize_symmetric(w, 8, channel) / scale  # integers in -127..127, the extremes exact
    assert torch.allclose(grid, grid.round()) and grid.abs().amax() == pytest.approx(127)


def test_zeros_stay_zero_and_too_few_bits_fail():
    w = torch.zeros(2, 3)
    assert torch.equal(quantize_symmetric(w, 4, None), w)
    with pytest.raises(ValueError):
        quantize_symmetric(w, 1, None)
    with pytest.raises(ValueError):
        quantize_symmetric(w, 4, 0)  # the member axis cannot be the channel axis


def _model(k: int = 3) -> EnsembleLSTMClassifier:
    model = EnsembleLSTMClassifier(k, 10, 4, 8)
    model.reset_parameters([generator(s, "init") for s in range(k)])
    return model


def test_quantized_copy_leaves_the_model_and_unlisted_parameters_alone():
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    copy = quantized_copy(model, 3, {"w_ih": -1, "w_hh": None})
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])  # the original is untouched
    assert torch.equal(copy.w_ih, quantize_symmetric(model.w_ih, 3, -1))
    assert torch.equal(copy.w_hh, quantize_symmetric(model.w_hh, 3, None))
    assert torch.equal(copy.b_ih, model.b_ih) and torch.equal(copy.embedding, model.embedding)
    assert len(torch.unique(copy.w_hh[0].abs())) <= 4  # 0..3 steps of one scale


def test_dropconnect_masks_are_per_member_nested_and_rescaled():
    model = _model()

    def gens(seeds):
        return [generator(s, "mask") for s in seeds]

    low = dropconnect_copy(model, 0.2, ["w_hh"], gens([0, 1, 2]))
    high = dropconnect_copy(model, 0.5, ["w_hh"], gens([0, 1, 2]))
    kept_low, kept_high = low.w_hh != 0, high.w_hh != 0
    assert not (kept_high & ~kept_low).any()  # nested: dropped at 0.2 means dropped at 0.5
    torch.testing.assert_close(low.w_hh[kept_low], model.w_hh[kept_low] / 0.8)
    assert 0.35 < 1 - kept_high.float().mean() < 0.65
    assert torch.equal(low.b_hh, model.b_hh)
    # member 1's mask depends on its generator only: same generator at another position, same mask
    other = dropconnect_copy(model, 0.2, ["w_hh"], gens([5, 1, 7]))
    assert torch.equal(other.w_hh[1], low.w_hh[1]) and not torch.equal(other.w_hh[0], low.w_hh[0])
    assert torch.equal(dropconnect_copy(model, 0.0, ["w_hh"], gens([0, 1, 2])).w_hh, model.w_hh)


def test_kept_entries_stay_exact_and_leave_the_scale():
    # 3 bits, q = 3; 9.0 kept: the scale is 1.2 / 3 = 0.4 (not 3.0), so 1.2, -0.5 -> 1.2, -0.4 and 9.0 stays
    w = torch.tensor([9.0, 1.2, -0.5, 0.1])
    keep = torch.tensor([True, False, False, False])
    torch.testing.assert_close(
        quantize_symmetric(w, 3, None, member_dim=None, keep=keep), torch.tensor([9.0, 1.2, -0.4, 0.0])
    )
    # without keep the outlier sets the grid (scale 3): everything else rounds to 0
    torch.testing.assert_close(quantize_symmetric(w, 3, None, member_dim=None), torch.tensor([9.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        quantize_symmetric(w, 3, None, member_dim=None, keep=keep[:2])


def test_quantized_copy_keeps_masked_entries_per_member():
    model = EnsembleLSTMClassifier(2, 10, 4, 8)
    w = model.get_parameter("w_ih")
    keep = torch.zeros_like(w, dtype=torch.bool)
    keep[1, 0, 0] = True
    with torch.no_grad():
        w[1, 0, 0] = 50.0
    out = quantized_copy(model, 4, {"w_ih": None}, keep={"w_ih": keep})
    q = out.get_parameter("w_ih")
    assert q[1, 0, 0] == 50.0
    # member 0 untouched by member 1's mask: as quantized without any mask (the same batched arithmetic; a
    # member quantized alone may round a tie differently, as division by a broadcast scale may differ in the last bit)
    plain = quantized_copy(model, 4, {"w_ih": None}).get_parameter("w_ih")
    assert torch.equal(q[0], plain[0]) and not torch.equal(q[1], plain[1])
    assert (q[1] != 0).sum() > 1  # member 1's other weights keep a grid fine enough not to vanish
    with pytest.raises(ValueError, match="not quantized"):
        quantized_copy(model, 4, {"w_ih": None}, keep={"w_hh": keep})
