#!/usr/bin/env bash
# Data parallelism on the GPU machine, in one call: the NCCL wrapper tests and the trainer's 1-rank
# NCCL path (bitwise against the single-process run, ZeRO-1 on and off, resume) and the failing
# launches (a rank that never starts). Run from the repo root ON the GPU machine; it builds nothing
# there. Before the call, here:
#   bash scripts/build.sh && mkdir -p device_out/dist \
#     && cp build/gfwa_tests scripts/device/dist.sh device_out/dist/ \
#     && cp /lib/x86_64-linux-gnu/{libgomp.so.1,libstdc++.so.6,libgcc_s.so.1} device_out/dist/
# and run `bash device_out/dist/dist.sh`. Logs go to $OUT (or ./device_logs).
# NCCL comes from python's nvidia.nccl package there (GFWA_NCCL_LIBRARY names its libnccl.so.2).
set -uo pipefail
OUT=${OUT:-device_logs}
mkdir -p "$OUT"
BIN=$(cd "$(dirname "$0")" && pwd)
[ -x "$BIN/gfwa_tests" ] || BIN=device_out/dist
export NCCL_NVLS_ENABLE=0

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nccl_dir=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
if [ -n "$nccl_dir" ] && [ -f "$nccl_dir/libnccl.so.2" ]; then
  export GFWA_NCCL_LIBRARY="$nccl_dir/libnccl.so.2"
  echo "NCCL: $GFWA_NCCL_LIBRARY"
else
  echo "NCCL: python's nvidia.nccl not found; relying on the loader's search path"
fi
export LD_LIBRARY_PATH="$BIN:${nccl_dir:+$nccl_dir:}${LD_LIBRARY_PATH:-}"
if ldd "$BIN/gfwa_tests" | grep "not found"; then echo "missing libraries"; exit 1; fi

echo "== data-parallel GPU tests"
"$BIN/gfwa_tests" --gtest_filter='NcclLibrary.*:NcclComm.*:*TrainDistCuda*:TrainDist.*:DistCheckpoint.*:DistDecisions.*' \
  >"$OUT/dist_tests.log" 2>&1
rc=$?
echo "tests rc=$rc"
grep -E "^\[  (FAILED|PASSED|SKIPPED) |^\[       OK|Failure|Expected|Which is|which is|Skipped|error" "$OUT/dist_tests.log" | head -80
echo "== single-process cuda regression (backend parity, resume)"
"$BIN/gfwa_tests" --gtest_filter='*CudaBackend*:TrainResume.ResumedRunIsBitIdenticalOnCuda' >"$OUT/cuda_tests.log" 2>&1
rc2=$?
echo "tests rc=$rc2"
grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error" "$OUT/cuda_tests.log" | head -30
exit $((rc || rc2))
