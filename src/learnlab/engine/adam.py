"""Adam for stacked ensemble parameters: torch.optim.Adam's update, through a native kernel on a CPU.

Adam is element-wise, so one optimizer over [K, ...] parameters is K independent optimizers — provided
every element is updated by the same instructions. PyTorch's `foreach` Adam is (but makes a dozen
passes over memory per step); its fused kernel is not (vector body and scalar tail round differently).
`learnlab/native/adam.c` is one pass, with the tail padded through the body's code.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Iterable

import torch
from torch import Tensor

from learnlab import native


@functools.cache
def _kernel() -> ctypes.CDLL | None:
    lib = native.library("adam")
    if lib is not None:
        lib.adam_step.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 4 + [ctypes.c_float] * 6
    return lib


class NativeAdam(torch.optim.Optimizer):
    """torch.optim.Adam (L2 weight decay, no amsgrad) for contiguous float32 CPU parameters; same state keys,
    so checkpoints move between the two."""

    def __init__(self, params: Iterable[Tensor], lr: float, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        lib = _kernel()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                state["step"] += 1
                step = state["step"].item()
                grad = p.grad.contiguous()
                lib.adam_step(
                    p.numel(),
                    *map(native.ptr, (p, grad, state["exp_avg"], state["exp_avg_sq"])),
                    group["lr"] / (1 - beta1**step),
                    beta1,
                    beta2,
                    group["weight_decay"],
                    math.sqrt(1 - beta2**step),
                    group["eps"],
                )


def adam(params: Iterable[Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The native Adam where it can run (contiguous float32 on a CPU), else PyTorch's foreach Adam."""
    params = list(params)
    if _kernel() is not None and native.on_cpu_float32(*params) and all(p.is_contiguous() for p in params):
        return NativeAdam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
