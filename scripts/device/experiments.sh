#!/usr/bin/env bash
# The paper's experiments (scripts/experiments/run.py --preset h200) on one H200, on the Debian mix,
# in one call: quality, length, throughput and memory, gates, recall; the report tarred into $OUT
# (checkpoints left out) and a short table last. docs/results.md holds what it produced.
#
# Here, before the call (builds, prepares the Debian mix if needed, about 3 min, and stages the
# binary, its runtime libraries and one train shard plus the val shard: about 31 MB):
#   bash scripts/device/experiments.sh stage
# then carry device_out/experiments and run, from the repo root on the GPU machine:
#   bash scripts/device/experiments.sh
# Env: BUDGET_S (default 420) seconds for all the runs: once spent, the remaining steps are skipped
# and the report is built from what finished; STAGES (default quality,throughput,recall); PRESET
# (default h200) and BACKEND (default cuda) for a dry run elsewhere (PRESET=toy BACKEND=cpu).
# Exit status: 0 when every step finished; 1 otherwise (the report and tarball are still written).
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGE_DIR=device_out/experiments

if [ "${1:-}" = stage ]; then
  set -e
  bash scripts/build.sh
  GFWA=$PWD/build/gfwa bash scripts/data/prepare_debian_mix.sh
  rm -rf "$STAGE_DIR" && mkdir -p "$STAGE_DIR/data"
  cp build/gfwa "$STAGE_DIR/"
  for lib in libgomp.so.1 libstdc++.so.6 libgcc_s.so.1; do cp -L "/lib/x86_64-linux-gnu/$lib" "$STAGE_DIR/"; done
  cp data/debian_mix/train_000000.bin data/debian_mix/val_000000.bin "$STAGE_DIR/data/"
  du -sh "$STAGE_DIR"
  exit 0
fi

OUT=${OUT:-device_logs}
RUN=${RUN:-$PWD/experiments_run}
mkdir -p "$OUT"
t0=$SECONDS
fail() { echo "experiments: $*" | tee -a "$OUT/summary.txt"; exit 1; }
[ -x "$STAGE_DIR/gfwa" ] || fail "no $STAGE_DIR/gfwa: run 'bash scripts/device/experiments.sh stage' here and carry $STAGE_DIR"
export LD_LIBRARY_PATH="$PWD/$STAGE_DIR:${LD_LIBRARY_PATH:-}"
if ldd "$STAGE_DIR/gfwa" | grep "not found"; then fail "missing libraries"; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" \
  || fail "nvidia-smi failed: no GPU?"
command -v python3 >/dev/null || fail "no python3"
plots=()
if ! python3 -c "import matplotlib" 2>/dev/null; then
  plots=(--no-plots)
  echo "experiments: matplotlib missing here: tables only; rebuild the plots where it is installed with" \
       "python3 scripts/experiments/report.py experiments_run (from the tarball)"
fi

echo "== run.py --preset ${PRESET:=h200} (budget ${BUDGET_S:=420} s)"
python3 scripts/experiments/run.py --data "$STAGE_DIR/data" --out "$RUN" --preset "$PRESET" --gfwa "$STAGE_DIR/gfwa" \
  --backend "${BACKEND:-cuda}" --budget "$BUDGET_S" --stages "${STAGES:-quality,throughput,recall}" "${plots[@]}" 2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
echo "run.py exit $rc after $((SECONDS - t0)) s"

# Everything but the checkpoints, in one file (at most 8 files of 16 MB come back).
tar czf "$OUT/experiments.tar.gz" --exclude=checkpoints -C "$(dirname "$RUN")" "$(basename "$RUN")"
tar_rc=$?
ls -la "$OUT/experiments.tar.gz"
[ -f "$RUN/report/report.md" ] && cp "$RUN/report/report.md" "$OUT/report.md"

{
  echo "== summary (run.py exit $rc, tar exit $tar_rc, $((SECONDS - t0)) s)"
  for t in quality length throughput recall; do
    [ -f "$RUN/report/$t.md" ] && grep -E "^\||^At the longest" "$RUN/report/$t.md"
    echo
  done
} | tee "$OUT/summary.txt"
[ "$rc" -eq 0 ] && [ "$tar_rc" -eq 0 ]
