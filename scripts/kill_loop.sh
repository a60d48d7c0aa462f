#!/usr/bin/env bash
# Kill loop: trains a tiny model on the cpu backend with a checkpoint every step, kills it with
# SIGKILL at random moments (mid-step, mid-save, at start-up), restarts it each time with
# --resume auto, lets the last start finish, and compares the result bit for bit with a run that
# was never interrupted: model.bin, optimizer.bin and every logged loss.
#
#   bash scripts/kill_loop.sh [--kills N] [--steps S] [--build DIR] [--seed X] [--keep DIR]
#
# Exit status 0 when the results are identical, 1 when they differ, 2 on a usage or setup error.
# CI runs it with a few kills (tests/CMakeLists via ctest); docs/training.md has a long run.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=30 STEPS=60 BUILD=build SEED=$$ KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) KILLS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    *) echo "kill_loop: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
GFWA=$BUILD/gfwa
[ -x "$GFWA" ] || { echo "kill_loop: no $GFWA (build first: bash scripts/build.sh)" >&2; exit 2; }
RANDOM=$SEED

WORK=${KEEP:-$(mktemp -d -t gfwa_kill_loop.XXXXXX)}
mkdir -p "$WORK"
[ -n "$KEEP" ] || trap 'rm -rf "$WORK"' EXIT

# Tiny shards in llm.c's format (a 256-int32 header, then uint16 tokens) with a learnable pattern.
python3 - "$WORK" <<'EOF'
import random, struct, sys
rnd = random.Random(5)
def shard(path, n):
    toks = [rnd.randrange(97) if rnd.random() < 0.2 else (i * 7) % 97 for i in range(n)]
    head = [20240520, 1, n, 3 * n, 0] + [0] * 251
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *head))
        f.write(struct.pack("<%dH" % n, *toks))
shard(sys.argv[1] + "/train_000.bin", 3001)
shard(sys.argv[1] + "/train_001.bin", 1777)
shard(sys.argv[1] + "/val_000.bin", 611)
EOF
cat >"$WORK/tiny.json" <<EOF
{
  "model": {"vocab_size": 97, "n_layers": 2, "d_model": 32, "n_heads": 2, "attention": {"mode": "gatedfwa", "window": 8}},
  "optimizer": {"lr": 0.003},
  "schedule": {"type": "cosine", "warmup_steps": 3},
  "train": {"backend": "cpu", "seed": 11, "batch_size": 4, "seq_len": 32, "tokens_per_step": 256, "max_steps": $STEPS},
  "eval": {"every": 10, "batches": 2},
  "data": {"train": "$WORK/train_*.bin", "val": "$WORK/val_*.bin"},
  "checkpoint": {"every": 1, "keep_last": 2},
  "logging": {"every": 1, "level": "warn"}
}
EOF
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

"$GFWA" train --config "$WORK/tiny.json" --out "$WORK/ref" >"$WORK/ref.log" 2>&1 || {
  echo "kill_loop: the reference run failed:" >&2; tail -5 "$WORK/ref.log" >&2; exit 2; }
ms_of() { local t0; t0=$(date +%s%N); "$@" >/dev/null 2>&1; echo $(( ($(date +%s%N) - t0) / 1000000 )); }
RUN_MS=$(ms_of "$GFWA" train --config "$WORK/tiny.json" --out "$WORK/probe")
START_MS=$(ms_of "$GFWA" train --config "$WORK/tiny.json" --out "$WORK/probe" --resume auto)  # nothing left to do
# Kills land at start-up, mid-step or mid-save; on average a start gets 1/KILLS of the run done, so
# the run ends near the last kill.
SPAN_MS=$(( START_MS + 2 * RUN_MS / KILLS + 1 ))

landed=0 finished_early=0
for ((k = 1; k <= KILLS; ++k)); do
  "$GFWA" train --config "$WORK/tiny.json" --out "$WORK/run" --resume auto >>"$WORK/run.log" 2>&1 &
  pid=$!
  sleep "$(awk -v ms=$((RANDOM % SPAN_MS)) 'BEGIN { printf "%.3f", ms / 1000 }')"
  if kill -9 "$pid" 2>/dev/null; then landed=$((landed + 1)); fi
  status=0; { wait "$pid"; } 2>/dev/null || status=$?
  if [ "$status" -ne 137 ]; then
    [ "$status" -eq 0 ] || { echo "kill_loop: start $k exited with $status:" >&2; tail -5 "$WORK/run.log" >&2; exit 1; }
    finished_early=$((finished_early + 1))
  fi
done
"$GFWA" train --config "$WORK/tiny.json" --out "$WORK/run" --resume auto >>"$WORK/run.log" 2>&1 || {
  echo "kill_loop: the final resume failed:" >&2; tail -5 "$WORK/run.log" >&2; exit 1; }

last=$(printf 'step_%08d' "$STEPS")
ok=1
for f in model.bin optimizer.bin; do
  cmp -s "$WORK/ref/checkpoints/$last/$f" "$WORK/run/checkpoints/$last/$f" || { echo "kill_loop: $f differs" >&2; ok=0; }
done
losses() { python3 -c 'import json,sys; print("\n".join(str(r["loss"]) for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train"))' "$1"; }
if [ "$(losses "$WORK/ref/metrics.jsonl")" != "$(losses "$WORK/run/metrics.jsonl")" ]; then
  echo "kill_loop: the logged losses differ (or a step is missing or doubled)" >&2; ok=0
fi
leftover=$(find "$WORK/run/checkpoints" -maxdepth 1 -name '.tmp-*' | wc -l)
echo "kill_loop: $KILLS starts, $landed killed with SIGKILL ($finished_early ran to the end first), $STEPS steps" \
     "of ~${RUN_MS} ms in all, checkpoint every step; final state $([ $ok = 1 ] && echo identical || echo DIFFERENT)" \
     "to the uninterrupted run; $leftover temporary checkpoint folders left"
[ $ok = 1 ]
