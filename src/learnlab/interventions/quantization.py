"""Symmetric round-to-nearest weight quantization, simulated in floating point ("fake quantization").

A b-bit symmetric quantizer maps a slice of weights to the integers -q..q, q = 2^(b-1) - 1, with one scale
per slice, s = max|w| / q, and back: w_hat = s * round(w / s). The slice is the whole tensor (per-tensor)
or each index along one axis (per-channel: one scale per output unit). The largest weight is always
represented exactly, and every weight moves by at most s/2. Stored weights stay float: only the values
a b-bit integer grid can hold are kept, which is what quantization does to the function computed.

Outliers: `keep` marks entries left in full precision (Yu et al. 2024's super weights): they are left out
of the scale's maximum, so the rest get a finer grid, and restored exactly afterwards.

Ensembles: the member axis (`member_dim`, 0 for learnlab's stacked [K, ...] parameters) is never reduced
over, so each member gets its own scales and its result does not depend on the other members.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn


def quantize_symmetric(
    w: Tensor, bits: int, per_channel_dim: int | None, *, member_dim: int | None = 0, keep: Tensor | None = None
) -> Tensor:
    """w rounded to a symmetric `bits`-bit grid: one scale per member, and per channel if per_channel_dim.

    per_channel_dim: the axis whose every index gets its own scale (None: one scale per member's tensor).
    member_dim: the ensemble axis, each member quantized alone (None: w is one model's tensor).
    keep: a boolean mask shaped like w; its entries stay exact and do not count in the scale.
    Round-to-nearest is torch.round (ties to even). A slice of zeros stays zero.
    """
    if bits < 2:
        raise ValueError(f"a symmetric quantizer needs at least 2 bits, got {bits}")
    kept = {d % w.dim() for d in (member_dim, per_channel_dim) if d is not None}
    if per_channel_dim is not None and member_dim is not None and per_channel_dim % w.dim() == member_dim % w.dim():
        raise ValueError("the per-channel axis cannot be the member axis")
    reduced = tuple(d for d in range(w.dim()) if d not in kept)
    q = 2 ** (bits - 1) - 1
    if keep is not None and keep.shape != w.shape:
        raise ValueError(f"keep's shape {tuple(keep.shape)} is not the weights' {tuple(w.shape)}")
    magnitude = w.abs() if keep is None else w.abs().masked_fill(keep, 0.0)
    peak = magnitude.amax(dim=reduced, keepdim=True) if reduced else magnitude
    scale = peak / q
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero slice: any scale keeps it zero
    out = (w / scale).round().clamp(-q, q) * scale
    return out if keep is None else torch.where(keep, w, out)


def quantized_copy(
    model: nn.Module,
    bits: int,
    params: Mapping[str, int | None],
    *,
    member_dim: int | None = 0,
    keep: Mapping[str, Tensor] | None = None,
) -> nn.Module:
    """A deep copy of `model` with the named parameters quantized to `bits` bits; the rest (biases) untouched.

    params maps a parameter name to its per-channel axis, or None for per-tensor scales, e.g.
    {"w_ih": -1, "w_hh": -1} (one scale per output unit) or {"w_ih": None, "w_hh": None}.
    keep maps some of those names to boolean masks of entries kept in full precision (`quantize_symmetric`).
    """
    keep = keep or {}
    if set(keep) - set(params):
        raise ValueError(f"keep names parameters that are not quantized: {sorted(set(keep) - set(params))}")
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, channel_dim in params.items():
            p = out.get_parameter(name)
            p.copy_(quantize_symmetric(p, bits, channel_dim, member_dim=member_dim, keep=keep.get(name)))
    return out
