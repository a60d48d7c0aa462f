#!/usr/bin/env bash
# The sm90 forward's two schedules (AttnParams::sm90_schedule, docs/kernel_notes.md "v7") on the GPU machine: their
# tests (every case of test_attention_cuda on both schedules, under a time-out: a lost mbarrier arrival hangs), then
# the forward alone on the issue-12 shapes x modes x schedules (per-tile, persistent, and auto with the schedule it
# picked), printed as one table of TFLOP/s (mask-pairs convention).
# Run from the repo root ON the GPU machine with BIN = the directory holding gfwa and gfwa_tests (default
# device_out; see attention.sh for staging them); logs go to $OUT (default device_logs). STAGE=tests or STAGE=bench
# runs one stage only (each fits one device call); ITERS timed runs per line (default 30).
set -uo pipefail
OUT=${OUT:-device_logs}
BIN=${BIN:-device_out}
ITERS=${ITERS:-30}
STAGE=${STAGE:-all}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader

if [ "$STAGE" != bench ]; then
  # The tile cases first (small; they narrow a hang down: docs/kernel_notes.md, v5), then the other suites.
  n=0
  for f in 'Tiles/AttentionCuda.*_sm90*' 'Windows/*_sm90*:Full/*_sm90*:LongT/*_sm90*:GroupedQuery/*_sm90*:AttentionCudaApi.*'; do
    log="$OUT/sm90_schedules_tests_$((n += 1)).log"
    timeout 270 "$BIN/gfwa_tests" --gtest_filter="$f" >"$log" 2>&1
    rc=$?
    echo "tests '$f' rc=$rc $(grep -E '^\[  (PASSED|FAILED)' "$log" | tr '\n' ' ')"
    grep -E '^\[  FAILED  \]' "$log" | head -20
    [ $rc -eq 0 ] || { echo "rc $rc (124: a hang or too slow; the last test started: $(grep '^\[ RUN' "$log" | tail -1))"; break; }
  done
fi

if [ "$STAGE" != tests ]; then
  : >"$OUT/sm90_schedules_bench.log"
  printf '%-22s %-9s %10s %10s %10s %s\n' shape mode per-tile persistent auto "(auto picked)"
  for s in 1,16,32768,128,2048 4,16,8192,128,1024 8,12,2048,64,512; do
    IFS=, read -r B H T D W <<<"$s"
    for m in gatedfwa swa full; do
      printf '%-22s %-9s' "$s" "$m"
      for sched in per-tile persistent auto; do
        line=$(timeout 120 "$BIN/gfwa" bench attention --B "$B" --H "$H" --T "$T" --D "$D" --W "$W" --mode $m \
          --path sm90 --sm90-schedule $sched --fwd-only --iters "$ITERS" 2>&1)
        echo "$line" >>"$OUT/sm90_schedules_bench.log"
        tf=$(sed -n 's/.*fwd_tflops=\([0-9.]*\).*/\1/p' <<<"$line")
        printf ' %10s' "${tf:-ERR}"
      done
      printf ' %s\n' "$(sed -n 's/.* schedule=\([a-z-]*\).*/\1/p' <<<"$line")"
    done
  done
fi
