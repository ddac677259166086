"""`lstm_last_hidden` through the native kernel (`learnlab/native/lstm.c`), for float32 on a CPU."""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import Tensor

from learnlab import native


@functools.cache
def _kernel(hidden: int) -> ctypes.CDLL | None:
    lib = native.library("lstm", f"HID={hidden}") if hidden % 16 == 0 else None
    if lib is not None:
        lib.lstm_forward.argtypes = [ctypes.c_int64] * 6 + [ctypes.c_void_p] * 9
        lib.lstm_backward.argtypes = [ctypes.c_int64] * 5 + [ctypes.c_void_p] * 10
        lib.lstm_backward.restype = ctypes.c_int
    return lib


def usable(table: Tensor, w_hh: Tensor) -> bool:
    return native.on_cpu_float32(table, w_hh) and _kernel(w_hh.shape[1]) is not None


def forward(table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor, save: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """h_T [K, B, H]; with `save`, the per-step buffers the backward needs (else two rolling slots).
    Arguments contiguous: table [K, R, 4H] float32, rows [K, T, B] int64, w_hh [K, H, 4H], start [K] int64."""
    k, r, g4 = table.shape
    steps, b = rows.shape[1], rows.shape[2]
    hid = g4 // 4
    slots = steps if save else 2
    gates = table.new_empty(k, slots, b, g4)
    cell, tcell, hs = (table.new_empty(k, slots, b, hid) for _ in range(3))
    h_last = table.new_empty(k, b, hid)
    buffers = (table, rows, w_hh, start, gates, cell, tcell, hs, h_last)
    native.run_split(_kernel(hid).lstm_forward, steps - start, steps, b, r, slots, *map(native.ptr, buffers))
    return h_last, (gates, cell, tcell, hs)


def inference(table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor) -> Tensor:
    return forward(table.contiguous(), rows.long().contiguous(), w_hh.contiguous(), start.long(), save=False)[0]


class NativeLSTM(torch.autograd.Function):
    """Differentiable h_T in table and w_hh. The backward overwrites the saved gates: no retain_graph."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, w_hh: Tensor, start: Tensor) -> Tensor:  # type: ignore[override]
        table, rows, w_hh, start = (x.contiguous() for x in (table, rows.long(), w_hh, start.long()))
        h_last, saved = forward(table, rows, w_hh, start, save=True)
        ctx.save_for_backward(rows, w_hh, start, *saved)
        ctx.table_shape = table.shape
        return h_last

    @staticmethod
    def backward(ctx, dh_last: Tensor) -> tuple[Tensor, None, Tensor, None]:  # type: ignore[override]
        if getattr(ctx, "consumed", False):
            raise RuntimeError("NativeLSTM's backward overwrites its saved buffers: no retain_graph")
        ctx.consumed = True
        rows, w_hh, start, gates, cell, tcell, hs = ctx.saved_tensors
        k, r, g4 = ctx.table_shape
        steps, b = rows.shape[1], rows.shape[2]
        dtable = dh_last.new_zeros(k, r, g4)
        dw = torch.empty_like(w_hh)
        buffers = (rows, w_hh, start, gates, cell, tcell, hs, dh_last.contiguous(), dtable, dw)
        status = native.run_split(_kernel(g4 // 4).lstm_backward, steps - start, steps, b, r, *map(native.ptr, buffers))
        if any(status):
            raise MemoryError("LSTM kernel: out of memory for its scratch buffer")
        return dtable, None, dw, None
