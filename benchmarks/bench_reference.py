"""Wall time of a learnlab study against the source article's own script, on this machine, now.

Both are timed as whole processes (interpreter start, imports, training, evaluation, and for learnlab
the report with figures), alternating, in this one invocation, so they see the same machine:

    python benchmarks/bench_reference.py hard-negatives [--seeds 20] [--repeats 3]
    python benchmarks/bench_reference.py model-collapse [--seeds 20] [--repeats 1]

Prints each pair's wall times, then the medians and their ratio reference / learnlab.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"

# study: (learnlab arguments after `run STUDY`, the reference script) for the same trainings
CASES = {
    "hard-negatives": (["--arms", "baseline,concept"], "hardneg.py"),  # 2 arms x N seeds
    # 3 generations per chain (g0, g1, g2), as the reference trains them
    "model-collapse": (["--arms", "hard-labels", "--set", "generations=3"], "collapse.py"),
}


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(CASES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    extra, script = CASES[args.study]
    reference = REFERENCE / script
    if not reference.is_file():
        sys.exit(f"error: reference script not found: {reference}")

    ours_cmd = [sys.executable, "-m", "learnlab", "run", args.study, "--seeds", str(args.seeds), *extra]
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            ours.append(wall([*ours_cmd, "--device", args.device, "--quiet", "--out", f"{tmp}/run{r}"]))
            theirs.append(wall([sys.executable, str(reference), str(args.seeds)]))
            print(f"repeat {r + 1}: learnlab {ours[-1]:.1f} s, reference {theirs[-1]:.1f} s", flush=True)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"learnlab {' '.join(ours_cmd[3:])}: {a:.1f} s (median of {len(ours)})")
    print(f"reference {script} {args.seeds}: {b:.1f} s (median of {len(theirs)})")
    pairs = ", ".join(f"{t / o:.1f}" for o, t in zip(ours, theirs, strict=True))
    print(f"speed-up (reference / learnlab): {b / a:.1f}x (pairs: {pairs})")


if __name__ == "__main__":
    main()
