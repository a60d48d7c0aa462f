#!/usr/bin/env bash
# The cuda backend on the GPU machine, in one call: its GPU tests, `gfwa bench train` on the
# 124m-class shapes, the PyTorch end-to-end anchor (bench_py/e2e_anchor.py) on the same shapes, and
# a ratio table (ours / PyTorch tokens/s). Run from the repo root ON the GPU machine; it builds
# nothing there. Before the call, here (binaries beside this script, so it can travel with them):
#   bash scripts/build.sh && mkdir -p device_out/cudabackend bench_py \
#     && cp build/gfwa build/gfwa_tests scripts/device/train.sh device_out/cudabackend/ \
#     && cp /lib/x86_64-linux-gnu/{libgomp.so.1,libstdc++.so.6,libgcc_s.so.1} device_out/cudabackend/ \
#     && cp ../shared/bench/*.py bench_py/
# and carry device_out/cudabackend and bench_py. Logs go to $OUT (or ./device_logs).
# Env: SKIP_TESTS=1, SKIP_BENCH=1, SKIP_ANCHOR=1 leave a stage out; SANITIZE=1 adds a memcheck of a
# few tests; STEPS (default 10) timed steps; ANCHOR_S caps the anchors' seconds; GFWA_CUDA_PROFILE=1 adds the per-phase time table.
set -uo pipefail
OUT=${OUT:-device_logs}
mkdir -p "$OUT"
BIN=$(cd "$(dirname "$0")" && pwd)
[ -x "$BIN/gfwa" ] || BIN=device_out/cudabackend
STEPS=${STEPS:-10}

nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
if ldd "$BIN/gfwa_tests" "$BIN/gfwa" | grep -q "not found"; then
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH="$BIN:${nccl}:${LD_LIBRARY_PATH:-}"
fi
if ldd "$BIN/gfwa_tests" "$BIN/gfwa" | grep "not found"; then echo "missing libraries"; exit 1; fi

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== GPU tests (layers and backend)"
  "$BIN/gfwa_tests" --gtest_filter='*MatmulCuda*:*EmbeddingCuda*:*RmsnormCuda*:*SwigluCuda*:*ClassifierCuda*:*AdamWCuda*:*ReduceCuda*:*QkNormRopeCuda*:*CudaBackend*' \
    >"$OUT/tests.log" 2>&1
  echo "tests rc=$?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|which is|info \]|error" "$OUT/tests.log" | head -80
fi

if [ -n "${SANITIZE:-}" ]; then
  echo "== compute-sanitizer memcheck (small filter)"
  compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/gfwa_tests" \
    --gtest_filter='*QkNormRopeCuda*/0:*RmsnormCuda*:*EmbeddingCuda*:*ClassifierCuda*:*CudaBackendParity*/0' >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tr '\n' ' ')"
  grep -m5 -A3 "Invalid" "$OUT/memcheck.log"
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== gfwa bench train"
  : >"$OUT/bench.log"
  for c in "configs/gpt124m_gatedfwa.json" "configs/gpt124m_full.json" "configs/gpt124m_gatedfwa_8k.json"; do
    "$BIN/gfwa" bench train --config "$c" --steps "$STEPS" 2>&1 | tee -a "$OUT/bench.log" | grep -E "bench train|GiB|error| ms "
  done
fi

if [ -z "${SKIP_ANCHOR:-}" ]; then
  echo "== PyTorch anchors (e2e_anchor.py), within ANCHOR_S=${ANCHOR_S:=600} s, most important first"
  : >"$OUT/anchor.log"
  end=$((SECONDS + ANCHOR_S))
  for args in "1024 32 512 gated" "1024 32 512 sdpa" "8192 4 1024 gated"; do
    left=$((end - SECONDS))
    if [ "$left" -lt 30 ]; then echo "anchor $args: skipped (time)"; continue; fi
    PYTHONUNBUFFERED=1 timeout "$left" python3 bench_py/e2e_anchor.py $args 2>&1 | tee -a "$OUT/anchor.log"
  done
fi

echo "== ratios (tokens/s, same call; > 1 means ours is faster)"
python3 - "$OUT/bench.log" "$OUT/anchor.log" <<'PY' | tee "$OUT/ratios.txt"
import re, sys
def kv(line):
    return dict(re.findall(r"([A-Za-z/+%]+)=([^\s]+)", line))
ours, theirs = {}, {}
for line in open(sys.argv[1]):
    if line.startswith("bench train:"):
        d = kv(line)
        ours[({"gatedfwa": "gated", "full": "sdpa", "swa": "swa"}[d["mode"]], d["T"], d["B"])] = d
try:
    for line in open(sys.argv[2]):
        m = re.match(r"(sdpa|swa|gated)\s+T=", line)
        if m:
            d = kv(line)
            theirs[(m.group(1), d["T"], d["B"])] = d
except FileNotFoundError:
    pass
print(f"{'variant':8s} {'T':>5s} {'B':>3s} {'ours tok/s':>11s} {'torch tok/s':>11s} {'ratio':>6s} {'ours TFLOP/s':>12s} {'MFU':>6s} {'ours ms':>8s} {'mem':>8s}")
for k, d in ours.items():
    t = theirs.get(k)
    ot = float(d["tok/s"])
    tt = float(t["tok/s"].replace(",", "")) if t else float("nan")
    print(f"{k[0]:8s} {k[1]:>5s} {k[2]:>3s} {ot:11,.0f} {tt:11,.0f} {ot/tt:6.2f} {d['TFLOP/s']:>12s} {d['MFU']:>6s} {d['step']:>8s} {d['mem']:>8s}")
PY
