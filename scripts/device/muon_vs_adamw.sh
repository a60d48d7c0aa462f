#!/usr/bin/env bash
# AdamW vs Muon on one H200 (scripts/experiments/muon_vs_adamw.py --preset h200: the 124m-class
# GatedFWA model, 9.8 M tokens of the Debian mix per optimizer, under a minute each), in one call.
# It uses what scripts/device/experiments.sh stages (the binary, its runtime libraries, one train
# shard and the val shard). Here, before the call:
#   bash scripts/device/experiments.sh stage
# then carry device_out/experiments and run, from the repo root on the GPU machine:
#   bash scripts/device/muon_vs_adamw.sh
# Each run's metrics.jsonl, config.json, train.log and the summary (and the PNG where matplotlib
# is installed) land in $OUT; back here,
#   python3 scripts/experiments/muon_vs_adamw.py --preset h200 --plot-only --out <that folder>
# draws the PNG from them. Env: PRESET (default h200).
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGE_DIR=device_out/experiments
OUT=${OUT:-device_logs}
RUN=$PWD/muon_vs_adamw_run
mkdir -p "$OUT"
[ -x "$STAGE_DIR/gfwa" ] || { echo "no $STAGE_DIR/gfwa: run 'bash scripts/device/experiments.sh stage' here first"; exit 1; }
export LD_LIBRARY_PATH="$PWD/$STAGE_DIR:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
t0=$SECONDS
python3 scripts/experiments/muon_vs_adamw.py --preset "${PRESET:-h200}" --data "$STAGE_DIR/data" --out "$RUN" \
  --gfwa "$STAGE_DIR/gfwa" 2>&1 | tee "$OUT/muon_vs_adamw.log"
rc=${PIPESTATUS[0]}
for o in adamw muon; do  # not the checkpoints
  mkdir -p "$OUT/$o"
  cp "$RUN/$o/metrics.jsonl" "$RUN/$o/config.json" "$RUN/$o/train.log" "$RUN/$o/wall_s.json" "$OUT/$o/" 2>/dev/null
done
cp "$RUN"/summary.* "$RUN"/muon_vs_adamw.png "$OUT/" 2>/dev/null
echo "muon_vs_adamw exit $rc after $((SECONDS - t0)) s"
exit "$rc"
