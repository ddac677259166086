"""Adam for stacked ensemble parameters: torch.optim.Adam's update, through a native kernel on a CPU.

Adam is element-wise, so one optimizer over [K, ...] parameters is K independent optimizers — provided
every element is updated by the same instructions. PyTorch's `foreach` Adam is (but makes a dozen
passes over memory per step); its fused kernel is not (vector body and scalar tail round differently).
`learnlab/native/adam.c` is one pass, with the tail padded through the body's code.
Its checkpoints hold its own state (the step count and both moments), not torch.optim.Adam's.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from learnlab import native
from learnlab.errors import LearnlabError


@functools.cache
def _kernel() -> ctypes.CDLL | None:
    lib = native.library("adam")
    if lib is not None:
        lib.adam_step_all.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 5 + [ctypes.c_float] * 6
    return lib


def _pointers(tensors: list[Tensor | None]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(None if t is None else t.data_ptr() for t in tensors))


class NativeAdam:
    """torch.optim.Adam's update (L2 weight decay, no amsgrad) for contiguous float32 CPU parameters.

    Deliberately not a torch.optim.Optimizer: constructing one imports torch._dynamo (~0.7 s), which
    is longer than some whole runs. It has the methods the training loop uses.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):  # type: ignore[no-untyped-def]
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
        self._fixed: tuple[ctypes.Array, ...] | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        step_size, bias2_sqrt = self.lr / (1 - beta1**self.steps), math.sqrt(1 - beta2**self.steps)
        grads = [None if p.grad is None else p.grad.contiguous() for p in self.params]
        if self._fixed is None:  # parameters and moments keep their storage: their pointers are made once
            sizes = (ctypes.c_int64 * len(self.params))(*(p.numel() for p in self.params))
            self._fixed = (sizes, _pointers(self.params), _pointers(self.exp_avg), _pointers(self.exp_avg_sq))
        sizes, params, exp_avg, exp_avg_sq = self._fixed
        _kernel().adam_step_all(
            len(grads), sizes, params, _pointers(grads), exp_avg, exp_avg_sq,
            step_size, beta1, beta2, self.weight_decay, bias2_sqrt, self.eps,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"native_adam": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "native_adam" not in state:
            raise LearnlabError("this checkpoint was saved by PyTorch's Adam; resume it where that Adam runs")
        self.steps = state["native_adam"]
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"], strict=True):
            mine.copy_(saved)


def adam(
    params: Iterable[Tensor],
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    decoupled: bool = False,
) -> NativeAdam | torch.optim.Optimizer:
    """The native Adam where it can run (contiguous float32 on a CPU), else PyTorch's foreach Adam.

    decoupled=True gives AdamW (PyTorch's, foreach) with the decay on weight matrices and embeddings only
    — stacked parameters of 3 or more dimensions — not on biases and LayerNorms, as in GPT-2 and nanoGPT.
    """
    params = list(params)
    if decoupled:
        groups = [
            {"params": [p for p in params if p.dim() >= 3], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 3], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, foreach=True)
    if _kernel() is not None and native.on_cpu_float32(*params) and all(p.is_contiguous() for p in params):
        return NativeAdam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)


def set_lr(optimizer: NativeAdam | torch.optim.Optimizer, lr: float) -> None:
    if isinstance(optimizer, NativeAdam):
        optimizer.lr = lr
    else:
        for group in optimizer.param_groups:
            group["lr"] = lr
