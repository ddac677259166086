"""Wall time of `learnlab run hard-negatives` against the source's own script, on this machine, now.

Both are timed as whole processes (interpreter start, imports, training, evaluation, and for learnlab
the report with figures), one after the other in this one invocation, so they see the same machine:

    python benchmarks/bench_hard_negatives.py [--seeds 20] [--repeats 1] [--reference PATH]

Prints both wall times and the ratio reference / learnlab.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "hardneg.py"


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--arms", default="baseline,concept", help="the reference trains these two arms")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not args.reference.is_file():
        sys.exit(f"error: reference script not found: {args.reference}")

    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            cmd = [
                sys.executable,
                "-m",
                "learnlab",
                "run",
                "hard-negatives",
                "--seeds",
                str(args.seeds),
                "--arms",
                args.arms,
                "--device",
                args.device,
                "--quiet",
                "--out",
                f"{tmp}/run{r}",
            ]
            ours.append(wall(cmd))
            theirs.append(wall([sys.executable, str(args.reference), str(args.seeds)]))
            print(f"repeat {r + 1}: learnlab {ours[-1]:.1f} s, reference {theirs[-1]:.1f} s", flush=True)
    a, b = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
    print(f"learnlab run hard-negatives --seeds {args.seeds} --arms {args.arms}: {a:.1f} s")
    print(f"reference hardneg.py {args.seeds}:                          {b:.1f} s")
    print(f"speed-up (reference / learnlab): {b / a:.1f}x")


if __name__ == "__main__":
    main()
