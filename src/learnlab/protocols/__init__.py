"""Protocols: how a family of studies trains and measures, below the studies that share it.

A study is a method section — its config, presets, `measure`, claims, notes and figures — and its
`measure` calls a protocol: `biography_lm` (a transformer learning facts from biographies, C2–C8),
`sortedness_lstm` (A1's TinyLSTM on "is this sequence sorted?", and A2's generations of it on
labels), `measurements` (long-format rows). Studies import protocols, never each other
(`tests/test_layers.py`).
"""
