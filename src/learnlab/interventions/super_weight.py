"""Super weights (Yu et al. 2024): activation spikes at an MLP's down-projection, the weights behind them,
and edits of single weight entries that undo exactly.

A learnlab transformer's down-projection is `blocks.{l}.mlp.w_out`, stacked [K, d_mlp, d_model]: its
input is `blocks.{l}.mlp.hook_post` (after the GELU) and its output `blocks.{l}.hook_mlp_out`. The super
weight is the entry at (spiking input channel, spiking output channel): the output spike is the largest
|activation| of the layer's output over a forward pass, at some token and output channel j*; its inputs
are the products x_i·W[i, j*] at that token, and a super weight is the one that dominates them. Every
member is searched alone (its own layer, token and channels); an entry is (layer, row i, column j).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from learnlab.models.transformer import EnsembleTransformer


def down_projection(model: EnsembleTransformer, layer: int) -> Tensor:
    """Layer `layer`'s down-projection weights [K, d_mlp, d_model] (the parameter itself)."""
    return model.blocks[layer].mlp.w_out


@dataclass(frozen=True)
class Spikes:
    """Per member and layer [K, L]: max and median |activation| at the down-projection's input and output
    over the real tokens; the output spike's channel; and the contributions |x_i·W[i, j*]| [K, L, d_mlp]
    of every input channel to it, at the spike's token."""

    in_max: Tensor
    in_median: Tensor
    out_max: Tensor
    out_median: Tensor
    out_channel: Tensor
    in_channel: Tensor  # the largest |input| at the spike's token (Yu et al.'s input spike)
    contributions: Tensor

    @property
    def in_ratio(self) -> Tensor:
        return self.in_max / self.in_median.clamp_min(1e-12)

    @property
    def out_ratio(self) -> Tensor:
        return self.out_max / self.out_median.clamp_min(1e-12)


@torch.no_grad()
def find_spikes(model: EnsembleTransformer, tokens: Tensor, real: Tensor) -> Spikes:
    """The spikes of every member on tokens [B, T] (the same for each member); `real` [B, T] marks the
    tokens that are not padding (the others are left out of maxima and medians)."""
    n = model.n_layers
    names = [f"blocks.{layer}.{p}" for layer in range(n) for p in ("mlp.hook_post", "hook_mlp_out")]
    _, cache = model.run_with_cache(tokens.expand(model.n_models, -1, -1), names)
    parts: dict[str, list[Tensor]] = {f: [] for f in Spikes.__dataclass_fields__}
    for layer in range(n):
        x = cache[f"blocks.{layer}.mlp.hook_post"][:, real].float()  # [K, N, d_mlp]
        y = cache[f"blocks.{layer}.hook_mlp_out"][:, real].float()  # [K, N, d]
        ay = y.abs()
        flat = ay.flatten(1).argmax(dim=1)  # [K]
        token, channel = flat // ay.shape[-1], flat % ay.shape[-1]
        members = torch.arange(model.n_models)
        at = x[members, token]  # [K, d_mlp]: the input at the spike's token
        w = down_projection(model, layer).detach().float()  # [K, d_mlp, d]
        parts["contributions"].append((at * w[members, :, channel]).abs())
        parts["in_max"].append(x.abs().flatten(1).amax(dim=1))
        parts["in_median"].append(x.abs().flatten(1).median(dim=1).values)
        parts["out_max"].append(ay.flatten(1).amax(dim=1))
        parts["out_median"].append(ay.flatten(1).median(dim=1).values)
        parts["out_channel"].append(channel)
        parts["in_channel"].append(at.abs().argmax(dim=1))
    return Spikes(**{f: torch.stack(v, dim=1) for f, v in parts.items()})


def candidates(spikes: Spikes, k: int) -> Tensor:
    """Each member's k candidate super weights [K, k, 3] (layer, row, column): the entries behind the output
    spikes, ranked across layers by their contribution |x_i·W[i, j*]| at their layer's spike."""
    members, layers, d_mlp = spikes.contributions.shape
    if not 0 < k <= layers * d_mlp:
        raise ValueError(f"k={k} candidates: expected 1..{layers * d_mlp}")
    top = spikes.contributions.flatten(1).topk(k, dim=1).indices  # [K, k]
    layer, row = top // d_mlp, top % d_mlp
    column = spikes.out_channel.gather(1, layer)
    return torch.stack([layer, row, column], dim=-1)


def _all_weights(model: EnsembleTransformer) -> Tensor:
    """Every layer's down-projection [K, L, d_mlp, d] (a detached copy)."""
    return torch.stack([down_projection(model, layer).detach() for layer in range(model.n_layers)], dim=1)


def _entries(flat: Tensor, shape: torch.Size) -> Tensor:
    """Flat indices [K, n] into [L, d_mlp, d] -> entries [K, n, 3]."""
    _, rows, cols = shape
    return torch.stack([flat // (rows * cols), flat // cols % rows, flat % cols], dim=-1)


def largest(model: EnsembleTransformer, k: int, exclude: Tensor | None = None) -> Tensor:
    """Each member's k largest-magnitude down-projection entries [K, k, 3], leaving out `exclude` [K, n, 3]."""
    w = _all_weights(model).abs()
    if exclude is not None:
        w = w.clone()
        for member in range(w.shape[0]):
            layer, row, col = exclude[member].unbind(-1)
            w[member, layer, row, col] = -1.0
    return _entries(w.flatten(1).topk(k, dim=1).indices, w.shape[1:])


def random_entries(model: EnsembleTransformer, k: int, generator: torch.Generator) -> Tensor:
    """k distinct down-projection entries [K, k, 3] per member, uniformly at random."""
    w = _all_weights(model)
    size = w[0].numel()
    picks = torch.stack([torch.randperm(size, generator=generator)[:k] for _ in range(w.shape[0])])
    return _entries(picks, w.shape[1:])


@contextmanager
def scaled(model: EnsembleTransformer, entries: Tensor, factor: float) -> Iterator[EnsembleTransformer]:
    """The model with member m's entries `entries[m]` [n, 3] multiplied by `factor` (0: zeroed) inside the
    block; the original values come back, bit for bit, on leaving it."""
    saved = []
    with torch.no_grad():
        for member in range(entries.shape[0]):
            for layer, row, col in entries[member].tolist():
                w = down_projection(model, layer)
                saved.append((w, member, row, col, w[member, row, col].clone()))
        for w, member, row, col, value in saved:
            w[member, row, col] = value * factor
    try:
        yield model
    finally:
        with torch.no_grad():
            for w, member, row, col, value in reversed(saved):
                w[member, row, col] = value


def keep_masks(model: EnsembleTransformer, entries: Tensor) -> dict[str, Tensor]:
    """Boolean masks of `entries` [K, n, 3] on the down-projections, by parameter name (`quantized_copy`'s keep)."""
    masks = {}
    for member in range(entries.shape[0]):
        for layer, row, col in entries[member].tolist():
            name = f"blocks.{layer}.mlp.w_out"
            if name not in masks:
                masks[name] = torch.zeros_like(down_projection(model, layer), dtype=torch.bool)
            masks[name][member, row, col] = True
    return masks
