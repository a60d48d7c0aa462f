#!/usr/bin/env bash
# Attention kernels on the GPU machine, in one call: GPU tests, compute-sanitizer on a small filter, our
# benchmark on the issue-4 shapes, forward and fwd+bwd on both kernel paths (--path sm80 / sm90), PyTorch
# anchors (bench_py/attn_anchor.py) on the same shapes, and a ratio table. Run from the repo root ON the GPU
# machine; it builds nothing there. Before the call, here:
#   bash scripts/build.sh && mkdir -p device_out bench_py && cp build/gfwa build/gfwa_tests device_out/ \
#     && cp /lib/x86_64-linux-gnu/libgomp.so.1 device_out/ && cp ../shared/bench/*.py bench_py/
# in the checkout the device tool sends (a helper's worktree does not travel: use the session checkout's
# git-ignored device_out/<name>/ with BIN=device_out/<name>, and copy this script there too), and carry
# device_out and bench_py. Logs go to $OUT (or ./device_logs). Env: SKIP_TESTS=1, SKIP_SANITIZER=1,
# SKIP_ANCHOR=1 leave a stage out; PROFILE=1 adds an ncu pass (one fwd+bwd, shape 1); extra binaries
# $BIN/gfwa_p* (tuning variants built with other tile shapes) are benchmarked on the head-dim-128 shapes.
set -uo pipefail
OUT=${OUT:-device_logs}
mkdir -p "$OUT"
BIN=${BIN:-device_out}
SHAPES="4,16,8192,128,1024 1,16,32768,128,2048 8,12,2048,64,512 16,12,1024,64,256"

nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"
if ldd $BIN/gfwa_tests $BIN/gfwa | grep -q "not found"; then
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH="$PWD/$BIN:${nccl}:${LD_LIBRARY_PATH:-}"
fi
ldd $BIN/gfwa_tests | grep "not found" && echo "missing libraries" && exit 1

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== GPU tests"
  $BIN/gfwa_tests --gtest_filter='*Cuda*' >"$OUT/tests.log" 2>&1
  echo "tests rc=$?"
  grep -E "^  (gatedfwa|swa|full|gate)|FAILED|Failure|PASSED|SKIPPED \]" "$OUT/tests.log" | grep -v "^\[       OK" | head -80
fi

if [ -z "${SKIP_SANITIZER:-}" ]; then
  echo "== compute-sanitizer"
  F='Windows/*gatedfwa_B2_T333_H3_D64_W65_*:Windows/*gatedfwa_B2_T333_H3_D128_W129_*:Full/*T130*:Tiles/*T65*:GateCuda.MatchesCpuReference'
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 $BIN/gfwa_tests --gtest_filter="$F" >"$OUT/sanitizer_$tool.log" 2>&1
    echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED' "$OUT/sanitizer_$tool.log" | tr '\n' ' ')"
  done
fi

echo "== our benchmark"
: >"$OUT/bench.log"
for s in $SHAPES; do
  IFS=, read -r B H T D W <<<"$s"
  for m in gatedfwa swa; do
    $BIN/gfwa bench attention --B "$B" --H "$H" --T "$T" --D "$D" --W "$W" --mode $m --iters 30 | tee -a "$OUT/bench.log"
  done
done
$BIN/gfwa bench attention --B 4 --H 16 --T 8192 --D 128 --W 8192 --mode full --iters 30 | tee -a "$OUT/bench.log"

echo "== forward and fwd+bwd, both paths (sm80: mma.sync; sm90: wgmma + TMA, compute capability 9.0 only)"
: >"$OUT/paths.log"
for s in $SHAPES 4,16,8192,128,full; do
  IFS=, read -r B H T D W <<<"$s"
  modes="gatedfwa swa"
  [ "$W" = full ] && modes=full && W=$T
  for m in $modes; do
    for path in sm80 sm90; do
      $BIN/gfwa bench attention --B "$B" --H "$H" --T "$T" --D "$D" --W "$W" --mode $m --path $path --iters 30 |
        tee -a "$OUT/paths.log"
    done
  done
done

for variant in $BIN/gfwa_p*; do
  [ -x "$variant" ] || continue
  for s in 4,16,8192,128,1024 1,16,32768,128,2048; do
    IFS=, read -r B H T D W <<<"$s"
    for m in gatedfwa swa; do
      echo "$(basename $variant) $($variant bench attention --B $B --H $H --T $T --D $D --W $W --mode $m --iters 30)"
    done
  done | tee -a "$OUT/variants.log"
done

if [ -n "${PROFILE:-}" ]; then
  echo "== ncu (shape 4,16,8192,128,1024 gatedfwa)"
  ncu --clock-control none -k regex:attn_ --launch-count 5 --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section ComputeWorkloadAnalysis --section LaunchStats \
    $BIN/gfwa bench attention --B 4 --H 16 --T 8192 --D 128 --W 1024 --mode gatedfwa --iters 1 --warmup 0 \
    >"$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"
  grep -E "attn_|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Stall|Executed Ipc A" "$OUT/ncu.txt" | head -60
fi

if [ -z "${SKIP_ANCHOR:-}" ]; then
  echo "== PyTorch anchors"
  anchor_shapes=$(echo $SHAPES | tr ' ' ';')
  PYTHONUNBUFFERED=1 python3 bench_py/attn_anchor.py --shapes "$anchor_shapes" >"$OUT/anchor.log" 2>&1
  echo "anchor rc=$?"
  grep -E "gemm|copy|check" "$OUT/anchor.log"
fi

echo "== ratios (fwd+bwd, same call; >1 means ours is faster)"
python3 - "$OUT/bench.log" "$OUT/anchor.log" <<'PY' | tee "$OUT/ratios.txt"
import json, re, sys
ours = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\w+)=([\w.]+)", line))
    if "mode" in kv:
        ours[(kv["mode"], int(kv["B"]), int(kv["H"]), int(kv["T"]), int(kv["D"]), int(kv["W"]))] = kv
anchor = {}
try:
    for line in open(sys.argv[2]):
        if line.startswith('{"'):
            r = json.loads(line)
            if r.get("kind") == "attn" and "error" not in r:
                anchor[(r["impl"], r["B"], r["H"], r["T"], r["D"], r["W"])] = r
except FileNotFoundError:
    pass
print(f"{'shape B,H,T,D,W':22s} {'gated TF':>9s} {'swa TF':>7s} {'flexG TF':>8s} {'ours/flexG':>10s} "
      f"{'swa/gated':>9s} {'fwd ours/flexG':>14s} {'swa/flexS':>9s}")
for (m, B, H, T, D, W), g in sorted(ours.items(), key=lambda x: -x[0][3]):
    if m != "gatedfwa":
        continue
    s = ours.get(("swa", B, H, T, D, W))
    f = anchor.get(("flex_gated", B, H, T, D, W))
    fs = anchor.get(("flex_swa", B, H, T, D, W))
    gms, gf = float(g["fwdbwd_ms"]), float(g["fwd_ms"])
    cell = lambda x: f"{x:.2f}" if x else "-"
    print(f"{B},{H},{T},{D},{W:<8d} {float(g['fwdbwd_tflops']):9.1f} {float(s['fwdbwd_tflops']) if s else 0:7.1f} "
          f"{f['fwdbwd_tflops'] if f else 0:8.1f} {cell(f and f['fwdbwd_ms'] / gms):>10s} "
          f"{cell(s and float(s['fwdbwd_ms']) / gms):>9s} {cell(f and f['fwd_ms'] / gf):>14s} "
          f"{cell(s and fs and fs['fwdbwd_ms'] / float(s['fwdbwd_ms'])):>9s}")
full = ours.get(("full", 4, 16, 8192, 128, 8192))
sd = anchor.get(("sdpa_causal", 4, 16, 8192, 128, 1024))
if full:
    print(f"full causal 4,16,8192,128: ours {float(full['fwdbwd_tflops']):.1f} TF fwd+bwd, "
          f"{float(full['fwd_tflops']):.1f} TF fwd" +
          (f"; sdpa {sd['fwdbwd_tflops']:.1f} / {sd['fwd_tflops']:.1f}; ours/sdpa fwd+bwd "
           f"{sd['fwdbwd_ms'] / float(full['fwdbwd_ms']):.2f}, fwd {sd['fwd_ms'] / float(full['fwd_ms']):.2f}" if sd else ""))
PY
