"""Training SCAN seq2seq seeds as one ensemble against a plain PyTorch loop over seeds with `nn.GRU`.

    python benchmarks/bench_scan.py                       # laptop sizes, CPU, every core (as the study)
    python benchmarks/bench_scan.py --seeds 35 --steps 10
    python benchmarks/bench_scan.py --device cuda --seeds 55

Both train GRU encoder-decoders with Luong dot attention of the same sizes on the same batches, in one
process. The ensemble (`learnlab.models.seq2seq`, the `compositional` study's model) steps all K members
at once (stacked weights, batched matmuls, one Adam, the loss the sum of the members'), its decoder in
`--chunks` length-sorted groups (the study's default; `--chunks 1` times the plain padded batch). The loop
steps K one-seed models one after another, each with its own torch.optim.Adam: `nn.Embedding`, an `nn.GRU`
encoder over packed commands, an `nn.GRU` decoder over the teacher-forced targets (fused over time),
attention by bmm, `nn.Linear` readouts, cross-entropy ignoring padding. Prints ms per step (all seeds),
wall and process CPU time (the CPU time is the fairer number on a shared machine), and the ratios
(issue 15's goal: at least 3x).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from learnlab.models.seq2seq import EnsembleSeq2Seq
from learnlab.tasks import scan


class PlainSeq2Seq(nn.Module):
    """One seed's GRU encoder-decoder with dot attention, written the ordinary PyTorch way."""

    def __init__(self, d_embed: int, d_hidden: int):
        super().__init__()
        self.src = nn.Embedding(scan.IN_SIZE, d_embed)
        self.tgt = nn.Embedding(scan.OUT_SIZE, d_embed)
        self.encoder = nn.GRU(d_embed, d_hidden, batch_first=True)
        self.decoder = nn.GRU(d_embed, d_hidden, batch_first=True)
        self.combine = nn.Linear(2 * d_hidden, d_hidden)
        self.out = nn.Linear(d_hidden, scan.OUT_SIZE)

    def loss(self, src: Tensor, tgt: Tensor) -> Tensor:
        lengths = (src != scan.PAD).sum(1)
        packed = pack_padded_sequence(self.src(src), lengths.cpu(), batch_first=True, enforce_sorted=False)
        enc, h = self.encoder(packed)
        enc, _ = nn.utils.rnn.pad_packed_sequence(enc, batch_first=True, total_length=src.shape[1])
        tgt_in = torch.cat([torch.full_like(tgt[:, :1], scan.BOS), tgt[:, :-1]], dim=1)
        dec, _ = self.decoder(self.tgt(tgt_in), h)
        scores = (dec @ enc.transpose(1, 2)).masked_fill((src == scan.PAD)[:, None, :], float("-inf"))
        context = scores.softmax(-1) @ enc
        logits = self.out(torch.tanh(self.combine(torch.cat([dec, context], dim=-1))))
        return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=scan.PAD)


def timed(device: str, steps: int, step: Callable[[int], None]) -> tuple[float, float]:
    """(wall, CPU) ms per step after 2 warm-up steps."""
    for s in range(2):
        step(s)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for s in range(2, steps + 2):
        step(s)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - wall) / steps, 1000 * (time.process_time() - cpu) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--d-embed", type=int, default=32)
    parser.add_argument("--d-hidden", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=4, help="the ensemble decoder's length-sorted groups")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="PyTorch CPU threads (the study uses every core)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k, dev = args.seeds, args.device
    x, y = (torch.as_tensor(a) for a in scan.encode(scan.split("simple").train))
    rng = np.random.default_rng(0)
    data = []
    for _ in range(args.steps + 2):
        idx = torch.as_tensor(rng.integers(0, len(x), (k, args.batch_size)))
        tgt = y[idx]
        data.append((x[idx].to(dev), tgt[..., : int((tgt != scan.PAD).sum(-1).max())].to(dev)))

    ensemble = EnsembleSeq2Seq(k, scan.IN_SIZE, scan.OUT_SIZE, args.d_embed, args.d_hidden).to(dev)
    ensemble.reset_parameters([torch.Generator(dev).manual_seed(s) for s in range(k)])
    optimizer = torch.optim.Adam(ensemble.parameters(), 1e-3)

    def ensemble_step(s: int, chunks: int = args.chunks) -> None:
        loss = ensemble.loss(*data[s], scan.BOS, scan.PAD, chunks).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    singles = [PlainSeq2Seq(args.d_embed, args.d_hidden).to(dev) for _ in range(k)]
    optimizers = [torch.optim.Adam(m.parameters(), 1e-3) for m in singles]

    def loop_step(s: int) -> None:
        src, tgt = data[s]
        for i, (model, opt) in enumerate(zip(singles, optimizers, strict=True)):
            loss = model.loss(src[i], tgt[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    one_by_one = timed(dev, args.steps, loop_step)
    together = timed(dev, args.steps, ensemble_step)
    padded = timed(dev, args.steps, lambda s: ensemble_step(s, 1))
    print(f"SCAN seq2seq, {k} seeds x batch {args.batch_size}, E={args.d_embed} H={args.d_hidden}, {dev}, "
          f"{args.threads} thread(s), {args.steps} steps; ms/step wall (CPU):")  # fmt: skip
    print(f"  loop over seeds (nn.GRU)        {one_by_one[0]:8.1f} ({one_by_one[1]:.1f})")
    print(f"  ensemble, {args.chunks} decoder chunks      {together[0]:8.1f} ({together[1]:.1f})")
    print(f"  ensemble, padded batch          {padded[0]:8.1f} ({padded[1]:.1f})")
    print(f"ratio loop / ensemble: {one_by_one[0] / together[0]:.2f}x wall, {one_by_one[1] / together[1]:.2f}x CPU "
          f"(padded batch: {one_by_one[1] / padded[1]:.2f}x CPU); goal >= 3x")  # fmt: skip


if __name__ == "__main__":
    main()
