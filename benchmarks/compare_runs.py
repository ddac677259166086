"""Are two sets of runs the same numbers? For checking that a refactoring changed nothing.

    python benchmarks/compare_runs.py BEFORE AFTER [--strict-extras]

BEFORE and AFTER are run roots holding one run directory per study (as `learnlab run STUDY --out
ROOT/STUDY` writes them), or two single run directories. For every run in either root it compares
summary.json's "table", "claims" and "reference" exactly: parsed from JSON, so floats must be equal bit
for bit (NaN equal to NaN), and key order counts. It also compares, as extras, the summary's "config",
"notes" and "comparison" and metrics.parquet (every row, column and float); a difference there is
reported and, with --strict-extras, fails too. Exit status 0: everything required is identical; 1: a
difference (each is printed with its path); 2: bad arguments (a root without runs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

REQUIRED = ("table", "claims", "reference")
EXTRAS = ("config", "notes", "comparison")


def runs(root: Path) -> dict[str, Path]:
    """{name: run directory}: ROOT itself if it is a run, else its sub-directories that are."""
    if (root / "summary.json").is_file():
        return {root.name: root}
    return {d.name: d for d in sorted(root.iterdir()) if (d / "summary.json").is_file()} if root.is_dir() else {}


def differences(a: Any, b: Any, path: str) -> list[str]:
    """Where two JSON values differ: exact equality, NaN equal to NaN, dict key order included."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    if type(a) is not type(b) or a != b:
        return [f"{path}: {a!r} != {b!r}"]
    return []


def metrics_differences(a: Path, b: Path) -> list[str]:
    """metrics.parquet of two runs, row for row (NaN equal to NaN)."""
    fa, fb = a / "metrics.parquet", b / "metrics.parquet"
    if not (fa.is_file() and fb.is_file()):
        return [] if fa.is_file() == fb.is_file() else ["metrics.parquet: only in one run"]
    x, y = pd.read_parquet(fa), pd.read_parquet(fb)
    try:
        pd.testing.assert_frame_equal(x, y, check_exact=True)
    except AssertionError as err:
        return ["metrics.parquet: " + " ".join(str(err).split())[:300]]
    return []


def compare(before: Path, after: Path) -> tuple[list[str], list[str]]:
    """(required differences, extra differences) between two runs."""
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (before, after))
    required = [d for key in REQUIRED for d in differences(sa.get(key), sb.get(key), key)]
    extra = [d for key in EXTRAS for d in differences(sa.get(key), sb.get(key), key)]
    return required, extra + metrics_differences(before, after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--strict-extras", action="store_true", help="fail on config/notes/metrics differences too")
    args = parser.parse_args(argv)
    old, new = runs(args.before), runs(args.after)
    if not old or not new:
        print(f"no runs under {args.before if not old else args.after}", file=sys.stderr)
        return 2
    failed = False
    for name in sorted(old.keys() | new.keys()):
        if name not in old or name not in new:
            print(f"{name}: only in {'after' if name in new else 'before'}")
            failed = True
            continue
        required, extra = compare(old[name], new[name])
        failed |= bool(required) or (args.strict_extras and bool(extra))
        verdict = "identical" if not required else "DIFFERENT"
        print(f"{name}: {verdict} (table, claims, reference)" + ("" if not extra else "; extras differ"))
        for line in required + extra:
            print(f"    {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
