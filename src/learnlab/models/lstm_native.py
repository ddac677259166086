"""The LSTM and TinyLSTM classifier through the native kernel (`learnlab/native/lstm.c`): float32, CPU.

Arguments reach C as one struct of sizes, strides and data pointers; the tensors behind the pointers are
kept alive by the Python frames (and by autograd's saved tensors) for as long as C reads them.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from dataclasses import dataclass

import torch
from torch import Tensor

from learnlab import native

_P = ctypes.c_void_p


class _Problem(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in ("T", "B", "R", "slots", "rk", "rt", "rb")] + [
        (n, _P) for n in ("rows", "table", "w", "start", "gates", "cell", "tcell", "hid", "h_last")
    ]


class _Classifier(ctypes.Structure):
    _fields_ = [("lstm", _Problem), ("V", ctypes.c_int64), ("E", ctypes.c_int64)] + [
        (n, _P) for n in ("emb", "w_ih", "b_ih", "b_hh", "w_out", "b_out", "logits")
    ]


class _Grads(ctypes.Structure):
    _fields_ = [(n, _P) for n in ("emb", "w_ih", "b_ih", "b_hh", "w_hh", "w_out", "b_out", "dtable")]


@functools.cache
def _kernel(hidden: int) -> ctypes.CDLL | None:
    lib = native.library("lstm", f"HID={hidden}") if hidden % 16 == 0 else None
    if lib is not None:
        lib.lstm_forward.argtypes = [ctypes.POINTER(_Problem), ctypes.c_int64, ctypes.c_int64]
        lib.lstm_backward.argtypes = [ctypes.POINTER(_Problem), ctypes.c_int64, ctypes.c_int64, _P, _P, _P]
        lib.classifier_forward.argtypes = [ctypes.POINTER(_Classifier), ctypes.c_int64, ctypes.c_int64]
        lib.classifier_backward.argtypes = [ctypes.POINTER(_Classifier), ctypes.c_int64, ctypes.c_int64, _P, _P]
        lib.classifier_bce_step.argtypes = [ctypes.POINTER(_Classifier), ctypes.c_int64, ctypes.c_int64, _P, _P, _P]
        for fn in (lib.lstm_backward, lib.classifier_backward, lib.classifier_bce_step):
            fn.restype = ctypes.c_int
    return lib


def usable(hidden: int, *tensors: Tensor) -> bool:
    """Float32 on a CPU, with a hidden size the kernel supports."""
    return native.on_cpu_float32(*tensors) and _kernel(hidden) is not None


@dataclass
class _Run:
    """One forward's struct and the tensors its pointers refer to."""

    problem: _Problem
    tensors: tuple[Tensor, ...]  # rows, table, w, start, gates, cell, tcell, hid, h_last


class _Workspace:
    """Float32 buffers handed back after use and handed out again: a training step's saved state is
    megabytes, and fresh memory of that size costs page faults on every step. Thread-safe (the data
    thread runs teacher models while training runs)."""

    def __init__(self) -> None:
        self.free: dict[tuple[int, ...], list[Tensor]] = {}
        self.lock = threading.Lock()

    def take(self, *shape: int) -> Tensor:
        with self.lock:
            spare = self.free.get(shape)
            if spare:
                return spare.pop()
        return torch.empty(shape)

    def give(self, *tensors: Tensor) -> None:
        with self.lock:
            for t in tensors:
                self.free.setdefault(tuple(t.shape), []).append(t)


_workspace = _Workspace()


def _prepare(
    table: Tensor, rows: Tensor, strides: tuple[int, ...], steps: int, b: int, w_hh: Tensor, start: Tensor, save: bool
) -> _Run:
    """rows: int64, element (k, t, b) at strides (k, t, b); buffers for `steps` steps of batch b."""
    k, r, g4 = table.shape
    if rows.numel():  # C reads table rows by these indices unchecked: out of range must fail here
        low, high = torch.aminmax(rows)
        if int(low) < 0 or int(high) >= r:
            raise IndexError(f"LSTM input index out of range: [{int(low)}, {int(high)}] for a table of {r} rows")
    hid, slots = g4 // 4, steps if save else 2
    gates = _workspace.take(k, slots, b, g4)
    cell, tcell, hs = (_workspace.take(k, slots, b, hid) for _ in range(3))
    h_last = table.new_empty(k, b, hid)
    tensors = (rows, table, w_hh, start, gates, cell, tcell, hs, h_last)
    problem = _Problem(steps, b, r, slots, *strides, *map(native.ptr, tensors))
    return _Run(problem, tensors)


def _release(run: _Run) -> None:
    _workspace.give(*run.tensors[4:8])


def _members(fn, spec: ctypes.Structure, work: list[int], *args) -> list[int]:  # type: ignore[no-untyped-def]
    """fn(&spec, k0, k1, *args) over ranges of members, split across threads by `work`."""
    ref = ctypes.byref(spec)
    return native.run_split(lambda k0, k1: fn(ref, k0, k1, *args), work)


def _steps_run(run: _Run) -> list[int]:
    return [run.problem.T - s for s in run.tensors[3].tolist()]


def _check(status: list[int]) -> None:
    if any(status):
        raise MemoryError("LSTM kernel: out of memory for its scratch buffer")


# --- the LSTM: lstm_last_hidden -----------------------------------------------------------------------


def _lstm_forward(table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor, save: bool) -> _Run:
    table, w_hh, rows, start = table.contiguous(), w_hh.contiguous(), rows.long(), start.long().contiguous()
    run = _prepare(table, rows, rows.stride(), rows.shape[1], rows.shape[2], w_hh, start, save)
    _members(_kernel(w_hh.shape[1]).lstm_forward, run.problem, _steps_run(run))
    return run


def inference(table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor) -> Tensor:
    run = _lstm_forward(table, rows, w_hh, start, save=False)
    _release(run)
    return run.tensors[-1]


class NativeLSTM(torch.autograd.Function):
    """h_T, differentiable in table and w_hh. The backward overwrites the saved gates: no retain_graph."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor) -> Tensor:  # type: ignore[override]
        ctx.run = _lstm_forward(table, rows, w_hh, start, save=True)
        return ctx.run.tensors[-1]

    @staticmethod
    def backward(ctx, dh_last: Tensor) -> tuple[Tensor, None, Tensor, None]:  # type: ignore[override]
        run, ctx.run = ctx.run, None  # consumed: its gates become d(pre-activation)
        if run is None:
            raise RuntimeError("NativeLSTM's backward overwrites its saved buffers: no retain_graph")
        _, table, w_hh = run.tensors[:3]
        dtable, dw, dh = torch.zeros_like(table), torch.empty_like(w_hh), dh_last.contiguous().clone()
        pointers = map(native.ptr, (dh, dtable, dw))
        _check(_members(_kernel(w_hh.shape[1]).lstm_backward, run.problem, _steps_run(run), *pointers))
        _release(run)
        return dtable, None, dw, None


# --- TinyLSTM: logits of Embedding -> LSTM -> Linear ------------------------------------------------


def _classifier_forward_spec(
    tokens: Tensor, params: tuple[Tensor, ...], save: bool
) -> tuple[_Classifier, _Run, Tensor]:
    """The kernel's arguments and buffers for TinyLSTM on tokens [K, B, T]; nothing computed yet."""
    emb, w_ih, b_ih, b_hh, w_hh, w_out, b_out = params
    k, v, _ = emb.shape
    tokens = tokens.long()
    table = _workspace.take(k, v + 1, w_ih.shape[-1])
    start = torch.empty(k, dtype=torch.long)
    sk, sb, st = tokens.stride()
    run = _prepare(table, tokens, (sk, st, sb), tokens.shape[2], tokens.shape[1], w_hh, start, save)
    logits = emb.new_empty(k, tokens.shape[1])
    spec = _Classifier(run.problem, v, emb.shape[-1], *map(native.ptr, (emb, w_ih, b_ih, b_hh, w_out, b_out, logits)))
    return spec, run, logits


def _classifier_forward(tokens: Tensor, params: tuple[Tensor, ...], save: bool) -> tuple[_Classifier, _Run, Tensor]:
    spec, run, logits = _classifier_forward_spec(tokens, params, save)
    _members(_kernel(params[4].shape[1]).classifier_forward, spec, [1] * len(logits))  # lengths: too alike to balance
    return spec, run, logits


class NativeClassifier(torch.autograd.Function):
    """Logits [K, B] of K TinyLSTMs on tokens [K, B, T] (token V pads); differentiable in every parameter."""

    @staticmethod
    def forward(ctx, tokens: Tensor, *params: Tensor) -> Tensor:  # type: ignore[override]
        params = tuple(p.contiguous() for p in params)
        ctx.spec, ctx.run, logits = _classifier_forward(tokens, params, save=True)
        ctx.params = params
        return logits

    @staticmethod
    def backward(ctx, dlogits: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        spec, run, ctx.spec = ctx.spec, ctx.run, None
        if spec is None:
            raise RuntimeError("NativeClassifier's backward overwrites its saved buffers: no retain_graph")
        grads = tuple(torch.empty_like(p) for p in ctx.params)
        dtable = _workspace.take(*run.tensors[1].shape).zero_()
        out = _Grads(*map(native.ptr, (*grads, dtable)))
        lib, dz = _kernel(ctx.params[4].shape[1]), dlogits.contiguous()
        _check(_members(lib.classifier_backward, spec, [1] * len(dz), native.ptr(dz), ctypes.byref(out)))
        _release(run)
        _workspace.give(run.tensors[1], dtable)
        return None, *grads


def classifier_logits(tokens: Tensor, *params: Tensor) -> Tensor:
    """Logits through the kernel: differentiable when grad is on, else a forward that saves nothing."""
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return NativeClassifier.apply(tokens, *params)
    _, run, logits = _classifier_forward(tokens, tuple(p.contiguous() for p in params), save=False)
    _release(run)
    _workspace.give(run.tensors[1])
    return logits


def classifier_bce_step(
    tokens: Tensor, labels: Tensor, params: tuple[Tensor, ...], grads: tuple[Tensor, ...]
) -> Tensor:
    """A training step's forward and backward in one kernel call, without autograd: returns each member's
    mean BCE-with-logits loss [K] on labels [K, B] and writes the gradients of their sum into `grads`
    (tensors shaped like `params`). The gradients equal autograd's through `NativeClassifier` up to
    rounding in the sigmoid; one hand-off to the threads per step instead of two."""
    params = tuple(p.contiguous() for p in params)
    spec, run, _ = _classifier_forward_spec(tokens, params, save=True)
    labels = labels.to(torch.float32).contiguous()
    loss = labels.new_empty(len(labels))
    dtable = _workspace.take(*run.tensors[1].shape)  # each member's slice is zeroed by the kernel
    out = _Grads(*map(native.ptr, (*grads, dtable)))
    pointers = native.ptr(labels), native.ptr(loss), ctypes.byref(out)
    _check(_members(_kernel(params[4].shape[1]).classifier_bce_step, spec, [1] * len(loss), *pointers))
    _release(run)
    _workspace.give(run.tensors[1], dtable)
    return loss
