"""DropConnect at inference: a copy of the model with a random share of its weights set to zero.

Each weight is dropped with probability p and the kept ones scaled by 1/(1-p) (inverted dropout, so each
pre-activation keeps its expected value). One mask serves a whole test set: the result is a damaged
model, not per-example noise, which is what "are the learned constraints stored redundantly?" asks.

Member k's masks come from generators[k] alone, drawn parameter by parameter in the order given, so a
member's masks never depend on the other members. Masks are thresholds on one uniform draw per weight
(dropped where u < p): generators started from the same state give nested masks across p (common random
numbers), so accuracy against p is measured on the same damage, only more of it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def dropconnect_copy(
    model: nn.Module,
    p: float,
    params: Sequence[str],
    generators: Sequence[torch.Generator],
    *,
    member_dim: int | None = 0,
) -> nn.Module:
    """A deep copy of `model` whose named parameters lose each weight with probability p (kept ones / (1-p)).

    generators: one per member along member_dim (a single one when member_dim is None); they are advanced.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name in params:
            w = out.get_parameter(name)
            members = [w] if member_dim is None else list(w.unbind(member_dim))
            if len(members) != len(generators):
                raise ValueError(f"{name}: {len(members)} members but {len(generators)} generators")
            for member, gen in zip(members, generators, strict=True):
                u = torch.rand(member.shape, generator=gen, device=gen.device, dtype=member.dtype)
                member.mul_((u >= p).to(member.dtype) / (1 - p))
    return out
