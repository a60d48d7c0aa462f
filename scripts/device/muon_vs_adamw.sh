#!/usr/bin/env bash
# AdamW vs Muon on one H200 (scripts/experiments/muon_vs_adamw.py --preset h200: the 124m-class
# GatedFWA model, 19.7 M tokens of the Debian mix per optimizer, about a minute each), in one call.
#
# Here, before the call (builds with CUDA, prepares the Debian mix if needed, stages the binary,
# its runtime libraries and the first two train shards plus the val shard: about 52 MB):
#   bash scripts/device/muon_vs_adamw.sh stage
# then carry device_out/muon_vs_adamw and run, from the repo root on the GPU machine:
#   bash scripts/device/muon_vs_adamw.sh
# It copies each run's metrics.jsonl, config and log and the summary into $OUT; back here,
#   python3 scripts/experiments/muon_vs_adamw.py --preset h200 --plot-only --out <that folder>
# draws the PNG where the GPU machine lacks matplotlib. Env: PRESET (default h200).
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGE_DIR=device_out/muon_vs_adamw

if [ "${1:-}" = stage ]; then
  set -e
  bash scripts/build.sh
  GFWA=$PWD/build/gfwa bash scripts/data/prepare_debian_mix.sh
  rm -rf "$STAGE_DIR" && mkdir -p "$STAGE_DIR/data"
  cp build/gfwa "$STAGE_DIR/"
  for lib in libgomp.so.1 libstdc++.so.6 libgcc_s.so.1; do cp -L "/lib/x86_64-linux-gnu/$lib" "$STAGE_DIR/"; done
  cp data/debian_mix/train_000000.bin data/debian_mix/train_000001.bin data/debian_mix/val_000000.bin "$STAGE_DIR/data/"
  du -sh "$STAGE_DIR"
  exit 0
fi

OUT=${OUT:-device_logs}
RUN=$PWD/muon_vs_adamw_run
mkdir -p "$OUT"
[ -x "$STAGE_DIR/gfwa" ] || { echo "no $STAGE_DIR/gfwa: run 'bash scripts/device/muon_vs_adamw.sh stage' here first"; exit 1; }
export LD_LIBRARY_PATH="$PWD/$STAGE_DIR:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
t0=$SECONDS
python3 scripts/experiments/muon_vs_adamw.py --preset "${PRESET:-h200}" --data "$STAGE_DIR/data" --out "$RUN" \
  --gfwa "$STAGE_DIR/gfwa" 2>&1 | tee "$OUT/muon_vs_adamw.log"
rc=${PIPESTATUS[0]}
for o in adamw muon; do
  mkdir -p "$OUT/$o"
  cp "$RUN/$o/metrics.jsonl" "$RUN/$o/config.json" "$RUN/$o/train.log" "$RUN/$o/wall_s.json" "$OUT/$o/" 2>/dev/null
done
cp "$RUN"/summary.* "$RUN"/muon_vs_adamw.png "$OUT/" 2>/dev/null
echo "muon_vs_adamw exit $rc after $((SECONDS - t0)) s"
exit "$rc"
