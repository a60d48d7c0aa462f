#!/usr/bin/env bash
# Decode speed on the GPU machine, in one call (about 3-4 minutes): the GPU decode tests, `gfwa bench
# generate` for the 124m-class gatedfwa and full-attention models (random weights) at batch 1 and 64
# with prompts of 1k and 32k tokens, the PyTorch loop in the authors' style
# (scripts/bench/decode_anchor.py: O(T) cache, prefix sums recomputed each step) on the same shapes,
# and a ratio table. Run ON the GPU machine from the repo root; it builds nothing there. Before the
# call, here:
#   bash scripts/device/stage.sh     # binaries + runtime libraries into device_out/final
# then carry device_out (configs/ and scripts/ travel with the checkout). Logs go to $OUT (or
# ./device_logs). Env: SKIP_TESTS=1, SKIP_ANCHOR=1 leave a stage out; NEW (default 64) tokens
# generated per sequence; BIN (default device_out/final).
set -uo pipefail
OUT=${OUT:-device_logs}
mkdir -p "$OUT"
BIN=${BIN:-device_out/final}
NEW=${NEW:-64}
SHAPES="1,1024 64,1024 1,32768 64,32768"

nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH="$PWD/$BIN:${nccl}:${LD_LIBRARY_PATH:-}"
if ldd "$BIN/gfwa" "$BIN/gfwa_tests" | grep "not found"; then echo "missing libraries"; exit 1; fi

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== decode tests (GPU and CPU)"
  "$BIN/gfwa_tests" --gtest_filter='*DecodeKernels*:*DecodeCuda*:*DecodeCpu*:*Generate*:Sampling*:Prompts*' >"$OUT/decode_tests.log" 2>&1
  echo "tests rc=$?"
  grep -E "^  |FAILED|Failure|PASSED|SKIPPED \]" "$OUT/decode_tests.log" | head -40
fi

echo "== gfwa bench generate ($NEW new tokens per sequence)"
: >"$OUT/generate.log"
for mode in gatedfwa full; do
  for s in $SHAPES; do
    IFS=, read -r B P <<<"$s"
    timeout 120 "$BIN/gfwa" bench generate --config configs/gpt124m_$mode.json --batch "$B" --prompt-len "$P" \
      --new-tokens "$NEW" 2>&1 | tee -a "$OUT/generate.log"
  done
done

if [ -z "${SKIP_ANCHOR:-}" ]; then
  echo "== PyTorch anchor"
  shapes=$(echo $SHAPES | tr ' ' ';')
  timeout 150 python3 scripts/bench/decode_anchor.py --shapes "$shapes" --new-tokens 32 2>&1 | tee "$OUT/anchor.log"
fi

echo "== decode tokens/s (ratios: gatedfwa over the others)"
python3 - "$OUT/generate.log" "$OUT/anchor.log" <<'PY'
import re, sys
def rows(path, tag):
    out = {}
    try:
        for line in open(path):
            if not line.startswith(tag):
                continue
            kv = dict(re.findall(r"(\w+)=(\S+)", line.replace("tok/s", "tok_s")))
            out[(kv.get("mode", "anchor"), int(kv["B"]), int(kv["prompt"]))] = float(kv["tok_s"])
    except FileNotFoundError:
        pass
    return out
ours, anchor = rows(sys.argv[1], "bench generate:"), rows(sys.argv[2], "decode_anchor:")
print(f"{'batch':>5} {'prompt':>6} {'gatedfwa':>10} {'full':>10} {'pytorch':>10} {'gated/full':>10} {'gated/pytorch':>13}")
for B, P in [(1, 1024), (64, 1024), (1, 32768), (64, 32768)]:
    g, f, a = ours.get(("gatedfwa", B, P)), ours.get(("full", B, P)), anchor.get(("anchor", B, P))
    fmt = lambda x: f"{x:10.0f}" if x else f"{'-':>10}"
    ratio = lambda x, y: f"{x / y:.2f}x" if x and y else "-"
    print(f"{B:>5} {P:>6} {fmt(g)} {fmt(f)} {fmt(a)} {ratio(g, f):>10} {ratio(g, a):>13}")
PY
