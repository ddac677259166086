"""Training throughput of the knowledge-acquisition transformer: tokens per second and, on a GPU, model
FLOPs utilisation (MFU: the model's training FLOPs per second over the device's dense peak).

    python benchmarks/bench_knowledge.py                         # laptop preset, CPU
    python benchmarks/bench_knowledge.py --preset paper --device cuda --steps 30

Training FLOPs per token are counted as in the PaLM paper's appendix B: 6 x (non-embedding parameters +
unembedding) + 12 x layers x context x d_model for attention; the token embedding is a lookup, not a matmul.
"""

from __future__ import annotations

import argparse
import time

import torch

from learnlab.engine.adam import adam
from learnlab.protocols import biography_lm as bl
from learnlab.studies import knowledge_acquisition as ka

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}  # dense


def flops_per_token(model: torch.nn.Module, cfg: bl.BiographyConfig, context: int) -> float:
    matmul = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks.") or n == "w_unembed")
    return 6 * matmul / model.n_models + 12 * cfg.n_layers * context * cfg.d_model


def peak_flops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    parser.add_argument("--seeds", type=int, help="models trained together (default: the preset's)")
    args = parser.parse_args()
    values = {**ka.PRESETS[args.preset], "device": args.device, "steps": args.steps + 3}
    if args.seeds:
        values["seeds"] = args.seeds
    cfg = ka.Config(**values)
    enc = bl.world_of(cfg)
    model = bl.build_model(cfg, enc, cfg.seed_list)
    stream = bl.BiographyStream(cfg, enc, cfg.seed_list, list(range(cfg.seeds)))
    loss_fn = bl.lm_loss(cfg, enc.pad_id)
    optimizer = adam(model.parameters(), cfg.lr, cfg.weight_decay, (0.9, cfg.beta2), decoupled=True)
    tokens = 0
    for step in range(cfg.steps):
        if step == 3:
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        batch = stream(step)
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        tokens += batch[..., 1:].numel()  # predicted positions, padding included: the work done
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = tokens / seconds
    context = batch.shape[-1]
    model_flops = rate * flops_per_token(model, cfg, context)
    print(
        f"{args.preset} preset, {cfg.seeds} model(s), batch {cfg.batch_size} x {context} tokens, device {args.device}"
        f"{' (' + torch.cuda.get_device_name(args.device) + ')' if args.device.startswith('cuda') else ''}"
    )
    print(f"{1000 * seconds / args.steps:.1f} ms/step, {rate:,.0f} tokens/s, {model_flops / 1e12:.2f} TFLOP/s (model)")
    peak = peak_flops(args.device)
    if peak:
        print(f"MFU {100 * model_flops / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s (bf16 dense peak)")


if __name__ == "__main__":
    main()
