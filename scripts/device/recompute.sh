#!/usr/bin/env bash
# The memory and speed of train.recompute (docs/benchmarks.md, "Activation recomputation") on one
# GPU, in one call: the recomputation tests, then `gfwa bench train` on the 1.3b preset (T 2048) and
# on the 124m model with W 2048 at 8k, 32k and 128k tokens per sequence (131,072 tokens per
# micro-batch, then 524,288 at 128k) and on the 124m preset with nsa layers (uniform, then alternating
# with gatedfwa ones), each recomputation level that the memory plan fits, and a Markdown table of
# the results. Run from the repo root ON the GPU machine, with the binaries staged
# by scripts/device/stage.sh (device_out/final). Logs go to $OUT (or ./device_logs).
# Env: SKIP_TESTS=1 leaves the tests out; STEPS (default 5) timed and WARMUP (default 2) untimed steps.
set -uo pipefail
OUT=${OUT:-device_logs}
mkdir -p "$OUT"
BIN=${BIN:-device_out/final}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== recomputation tests (bitwise none / selective / full, nsa layers included; the plan; the decoder's prefill)"
  "$BIN/gfwa_tests" --gtest_filter='*CudaBackend*:*MemoryPlan*:*Recompute*:Nsa*:*DecodeCuda*:*CudaTargetLogprobs*' \
    >"$OUT/recompute_tests.log" 2>&1
  echo "tests rc=$?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|which is|error" "$OUT/recompute_tests.log" | head -40
fi

echo "== gfwa bench train, each recomputation level"
: >"$OUT/recompute_bench.log"
bench() {  # config, then --set overrides
  local config=$1
  shift
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  "$BIN/gfwa" bench train --config "$config" "${sets[@]}" --steps "$STEPS" --warmup "$WARMUP" 2>&1 |
    tee -a "$OUT/recompute_bench.log" | grep -E "^bench train|error|needs"
}
for r in none selective full; do
  bench configs/gpt1.3b_gatedfwa.json train.batch_size=16 train.recompute=$r
done
for r in selective full; do
  bench configs/gpt1.3b_gatedfwa.json train.batch_size=32 train.recompute=$r
done
bench configs/gpt1.3b_gatedfwa.json train.batch_size=64 train.recompute=full
for tb in "8192 16" "32768 4" "131072 1"; do
  set -- $tb
  for r in none selective full; do
    bench configs/gpt124m_gatedfwa_8k.json model.attention.window=2048 train.seq_len=$1 train.batch_size=$2 \
      train.recompute=$r
  done
done
bench configs/gpt124m_gatedfwa_8k.json model.attention.window=2048 train.seq_len=131072 train.batch_size=4 \
  train.recompute=full
nsa_gatedfwa="[$(printf '{"mode": "nsa"}, {"mode": "gatedfwa"}, %.0s' 1 2 3 4 5)"'{"mode": "nsa"}, {"mode": "gatedfwa"}]'
for r in none selective full; do
  bench configs/gpt124m_gatedfwa.json model.attention.mode=nsa train.recompute=$r
done
for r in none selective full; do
  bench configs/gpt124m_gatedfwa.json "model.attention.pattern=$nsa_gatedfwa" train.recompute=$r
done

echo "== table"
python3 - "$OUT/recompute_bench.log" <<'PY' | tee "$OUT/recompute_table.md"
import re, sys
print("| mode | params | T | B | W | recompute | ms/step | tokens/s | model TFLOP/s | MFU | device memory |")
print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
for line in open(sys.argv[1]):
    if line.startswith("bench train:"):
        d = dict(re.findall(r"([A-Za-z/+%]+)=([^\s]+)", line))
        mode = d['mode'] + (" (" + d['layers'] + ")" if 'layers' in d else "")
        print(f"| {mode} | {d['params']} | {d['T']} | {d['B']} | {d['W']} | {d['recompute']} | {d['step']} | "
              f"{float(d['tok/s']):,.0f} | {d['TFLOP/s']} | {d['MFU']} | {d['mem']} |")
PY
