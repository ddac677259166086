"""An ensemble of K multilayer perceptrons with stacked weights [K, in, out], trained as one model.

Each layer is one batched matmul over the model axis (`torch.baddbmm`), so K small MLPs cost about what
one wide layer costs. Member k is initialised from its own generator with nn.Linear's distributions,
so a member's initial weights depend only on its generator, never on what else shares the ensemble.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn


class EnsembleMLP(nn.Module):
    """K MLPs `sizes[0] -> sizes[1] -> ... -> sizes[-1]` with ReLU between layers; input [K, B, sizes[0]]."""

    def __init__(self, k: int, sizes: list[int] | tuple[int, ...]):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an MLP needs at least an input and an output size")
        self.k, self.sizes = k, tuple(sizes)
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(k, a, b)) for a, b in pairwise(sizes))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(k, 1, b)) for b in sizes[1:])

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator], scheme: str = "uniform") -> None:
        """Member k from generators[k], layer by layer (weight, then bias).

        `uniform`: nn.Linear's default, weight and bias U(±1/√fan_in) (its kaiming_uniform(a=√5) bound
        reduces to that). `normal`: weight N(0, 1/fan_in), bias 0 — a larger initial scale.
        """
        if len(generators) != self.k:
            raise ValueError(f"{len(generators)} generators for {self.k} members")
        if scheme not in ("uniform", "normal"):
            raise ValueError(f"unknown init scheme {scheme!r}")
        for k, gen in enumerate(generators):
            for w, b in zip(self.weights, self.biases, strict=True):
                bound = 1 / math.sqrt(w.shape[1])
                if scheme == "uniform":
                    w[k].uniform_(-bound, bound, generator=gen)
                    b[k].uniform_(-bound, bound, generator=gen)
                else:
                    w[k].normal_(0.0, bound, generator=gen)
                    b[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x

    def member(self, k: int) -> nn.Sequential:
        """Member k as a plain nn.Sequential of nn.Linear/ReLU (a copy): for tests and inspection."""
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            linear = nn.Linear(w.shape[1], w.shape[2], dtype=w.dtype, device=w.device)
            with torch.no_grad():
                linear.weight.copy_(w[k].T)
                linear.bias.copy_(b[k, 0])
            layers += [linear] if i == len(self.weights) - 1 else [linear, nn.ReLU()]
        return nn.Sequential(*layers)
