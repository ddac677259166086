"""Training the looped-introspection seeds as one ensemble against a plain PyTorch loop over seeds.

    python benchmarks/bench_looped.py                    # laptop preset, CPU
    python benchmarks/bench_looped.py --seeds 20 --batch-size 16   # many seeds, small batches
    python benchmarks/bench_looped.py --device cuda --steps 50

Both train the same looped model on the same batches, in one process: the ensemble steps all K members
at once (stacked weights, one optimizer, `learnlab.engine.train`'s loss = the sum of members' losses);
the loop steps K one-member models one after another, each with its own torch.optim.Adam. Prints ms
per step (all seeds) for each and the ratio (issue 14's goal: at least 3x).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from learnlab.engine.adam import adam
from learnlab.studies import looped_introspection as li


def timed(device: str, steps: int, step: Callable[[int], None]) -> float:
    for s in range(3):
        step(s)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for s in range(3, steps + 3):
        step(s)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    parser.add_argument("--seeds", type=int, help="seeds (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="problems per step per seed (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (training uses 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    values = {**li.PRESETS[args.preset], "device": args.device}
    if args.seeds:
        values["seeds"] = args.seeds
    if args.batch_size:
        values["batch_size"] = args.batch_size
    cfg = li.Config(**values)
    seeds = cfg.seed_list
    batches = li.Batches(cfg, seeds, cfg.device)
    data = [batches(s) for s in range(args.steps + 3)]

    ensemble = li.build(cfg, seeds)
    optimizer = adam(ensemble.parameters(), cfg.lr, cfg.weight_decay, (0.9, 0.999))

    def ensemble_step(s: int) -> None:
        loss = li.loss_fn(cfg.n_nodes, ensemble, data[s]).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    singles = [li.build(cfg, [seed]) for seed in seeds]
    optimizers = [torch.optim.Adam(m.parameters(), cfg.lr) for m in singles]

    def loop_step(s: int) -> None:
        tokens, targets = data[s]
        for k, (model, opt) in enumerate(zip(singles, optimizers, strict=True)):
            loss = li.loss_fn(cfg.n_nodes, model, (tokens[k : k + 1], targets[k : k + 1])).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    together = timed(args.device, args.steps, ensemble_step)
    one_by_one = timed(args.device, args.steps, loop_step)
    print(
        f"{cfg.seeds} seeds, {cfg.loops} loops, d_model {cfg.d_model}, batch {cfg.batch_size} on {args.device}: "
        f"ensemble {together:.1f} ms/step, loop over seeds {one_by_one:.1f} ms/step, "
        f"ratio {one_by_one / together:.2f}x"
    )


if __name__ == "__main__":
    main()
