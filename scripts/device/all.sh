#!/usr/bin/env bash
# Everything that needs the GPU, in one device call: the whole test suite (GPU tests included),
# the quickstart on the GPU against the CPU backend in the same wall time, and our attention and
# training benchmarks; a short table last. Run ON the GPU machine from the repo root; it builds
# nothing there. Before the call, here:
#   bash scripts/device/stage.sh          # binaries + runtime libraries into device_out/final
# then carry device_out, data (tokenizer + Austen shards) and, for the anchors, bench_py.
# Env: SKIP_TESTS=1, SKIP_QUICKSTART=1, SKIP_BENCH=1 leave a stage out; ANCHORS=1 adds the PyTorch
# anchors (bench_py/e2e_anchor.py, attn_anchor.py: several minutes of torch.compile) and ratios.
set -uo pipefail
OUT=${OUT:-device_logs}
mkdir -p "$OUT"
BIN=device_out/final
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH="$PWD/$BIN:${nccl}:${LD_LIBRARY_PATH:-}"
if ldd $BIN/gfwa $BIN/gfwa_tests | grep "not found"; then echo "missing libraries"; exit 1; fi
# Tests find sources and binaries at the paths they were built with.
src_dir=$(cat $BIN/source_dir)
if [ "$src_dir" != "$PWD" ]; then mkdir -p "$(dirname "$src_dir")" && ln -sfn "$PWD" "$src_dir"; fi
ln -sfn "$PWD/$BIN" build
declare -A row

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== whole test suite"
  $BIN/gfwa_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
  rc=$?
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|tests ran" "$OUT/tests.log" | head -60
  row[tests]="rc=$rc, $(grep -E '^\[  PASSED' "$OUT/tests.log" | head -1), $(grep -cE '^\[  SKIPPED \] [A-Za-z]' "$OUT/tests.log") skipped, $(grep -cE '^\[  FAILED  \] [A-Za-z]' "$OUT/tests.log") failed"
fi

if [ -z "${SKIP_QUICKSTART:-}" ]; then
  echo "== quickstart: cuda, then cpu for the same wall time"
  rm -rf "$OUT/q_gpu" "$OUT/q_cpu"
  t0=$(date +%s.%N)
  $BIN/gfwa train --config configs/quickstart.json --set train.backend=cuda --out "$OUT/q_gpu" >"$OUT/q_gpu.log" 2>&1
  echo "cuda rc=$?"
  secs=$(python3 -c "import time; print(max(1, round(time.time() - $t0)))")
  timeout --preserve-status -s TERM "$secs" $BIN/gfwa train --config configs/quickstart.json --set train.backend=cpu \
    --set checkpoint.every=0 --out "$OUT/q_cpu" >"$OUT/q_cpu.log" 2>&1
  echo "cpu rc=$? (75: stopped by the time limit's SIGTERM after writing a checkpoint)"
  ck=$(ls -d "$OUT"/q_cpu/checkpoints/step_* 2>/dev/null | tail -1)
  gpu_eval=$(grep "eval step" "$OUT/q_gpu.log" | tail -1)
  cpu_eval=$([ -n "$ck" ] && $BIN/gfwa eval --checkpoint "$ck" 2>&1 | tail -1)
  echo "gpu: $gpu_eval"; echo "cpu: $(basename "${ck:-none}") $cpu_eval"
  row[quickstart]="${secs}s each | cuda: ${gpu_eval#*] } | cpu at $(basename "${ck:-none}"): $cpu_eval"
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== gfwa bench attention / train"
  : >"$OUT/bench.log"
  for s in "4 16 8192 128 1024" "1 16 32768 128 2048" "8 12 2048 64 512" "16 12 1024 64 256"; do
    read -r b h t d w <<<"$s"
    for m in gatedfwa swa; do
      $BIN/gfwa bench attention -B $b -H $h -T $t -D $d -W $w --mode $m 2>&1 | tee -a "$OUT/bench.log" | tail -1
    done
  done
  $BIN/gfwa bench attention -B 4 -H 16 -T 8192 -D 128 -W 8192 --mode full 2>&1 | tee -a "$OUT/bench.log" | tail -1
  for c in configs/gpt124m_gatedfwa.json configs/gpt124m_full.json configs/gpt124m_gatedfwa_8k.json; do
    $BIN/gfwa bench train --config "$c" --steps 10 2>&1 | tee -a "$OUT/bench.log" | grep -E "bench train|error"
  done
  if [ -n "${ANCHORS:-}" ]; then
    echo "== PyTorch anchors"
    PYTHONUNBUFFERED=1 python3 bench_py/e2e_anchor.py 1024 32 512 gated,sdpa 2>&1 | tee "$OUT/e2e_anchor.log" | grep -E "T=|FAILED"
    PYTHONUNBUFFERED=1 python3 bench_py/e2e_anchor.py 8192 4 1024 gated 2>&1 | tee -a "$OUT/e2e_anchor.log" | grep -E "T=|FAILED"
    PYTHONUNBUFFERED=1 python3 bench_py/attn_anchor.py --no-ceilings >"$OUT/attn_anchor.log" 2>&1
  fi
fi

echo "== summary"
for k in tests quickstart; do [ -n "${row[$k]:-}" ] && echo "$k: ${row[$k]}"; done
[ -f "$OUT/bench.log" ] && python3 scripts/device/ratios.py "$OUT/bench.log" "$OUT/attn_anchor.log" "$OUT/e2e_anchor.log"
