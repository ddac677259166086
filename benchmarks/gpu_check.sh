#!/usr/bin/env bash
# GPU readiness in one script (at most about 8 minutes on one GPU; CI has none):
#   1. every study's smoke preset with --device $DEVICE (a run's wall time, its verdicts are undetermined);
#   2. the knowledge-acquisition paper model for 300 steps: tokens/s and MFU (benchmarks/bench_knowledge.py);
#   3. hard-negatives as one ensemble of 1000 members (5 arms x 200 seeds) against one member at a time
#      (one run per arm with one seed, its in-run wall time times 200 seeds).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]      (run from the repository root, with .venv built)
# A dry run of its plumbing on a CPU: DEVICE=cpu STUDIES="hard-negatives robustness" SEEDS=10 bash ...
set -uo pipefail
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-200}
OUT=${1:-gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
wall() { "$PY" -c "import json,sys; print(json.load(open(sys.argv[1] + '/summary.json'))['wall_seconds'])" "$1"; }

if [ "$DEVICE" = cuda ]; then
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('device:', torch.cuda.get_device_name(0))" || exit 1
fi

echo "== 1. smoke presets on cuda"
for study in ${STUDIES:-$("$PY" -m learnlab list | awk '{print $1}')}; do
  if timeout 120 "$PY" -m learnlab run "$study" --preset smoke --device $DEVICE --out "$OUT/smoke/$study" --quiet > "$OUT/smoke-$study.log" 2>&1; then
    echo "  $study: $(wall "$OUT/smoke/$study") s"
  else
    echo "  $study: FAILED ($(tail -n 1 "$OUT/smoke-$study.log"))"
  fi
done

echo "== 2. knowledge-acquisition paper model: throughput"
timeout 180 "$PY" benchmarks/bench_knowledge.py --preset paper --device $DEVICE --steps 300 || echo "  FAILED"

echo "== 3. hard-negatives: 5 arms x $SEEDS seeds at once against one member at a time"
timeout 180 "$PY" -m learnlab run hard-negatives --device $DEVICE --seeds "$SEEDS" --out "$OUT/hn-1000" --quiet > "$OUT/hn-1000.log" 2>&1 \
  && together=$(wall "$OUT/hn-1000") || together=""
single=0
for arm in baseline concept; do
  "$PY" -m learnlab run hard-negatives --device $DEVICE --seeds 1 --arms "$arm" --out "$OUT/hn-1-$arm" --quiet > /dev/null 2>&1 \
    && single=$("$PY" -c "print($single + $(wall "$OUT/hn-1-$arm"))")
done
"$PY" - "$together" "$single" "$SEEDS" <<'PYEND'
import sys
together, single, members = sys.argv[1], float(sys.argv[2]) / 2, 5 * int(sys.argv[3])  # a run of one member
if not together or not single:
    sys.exit("  FAILED (see the logs)")
print(f"  {members} members as one ensemble: {float(together):.1f} s; one member at a time: {single:.1f} s each, "
      f"{members * single:.0f} s for {members}; ratio {members * single / float(together):.0f}x")
PYEND
echo "results under $OUT"
