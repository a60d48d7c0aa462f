#!/usr/bin/env bash
# Issue 8 on a machine with two GPUs (device kind nvidia-h200-x2), in one call: parity of 2 GPUs
# against 1 GPU with accumulation to the same global batch (ZeRO-1 off and on), scaling at T 1024
# and T 8192, resume after SIGTERM to one rank and after SIGKILL of both, and a rank that fails.
# Stage first (bash scripts/device/stage.sh), carry device_out and data; run from the repo root.
# Env: OPTIMIZER=muon runs it all with Muon (ZeRO-1 then shards Muon's momentum, docs/distributed.md);
# PARITY_ONLY=1 stops after the parity runs; STEPS (default 50).
set -uo pipefail
OUT=${OUT:-device_logs}; mkdir -p "$OUT"
G=$PWD/device_out/final/gfwa
export NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=4
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
export GFWA_NCCL_LIBRARY=$nccl/libnccl.so.2 LD_LIBRARY_PATH="$PWD/device_out/final:$nccl:${LD_LIBRARY_PATH:-}"
nvidia-smi -L
C=configs/gpt124m_gatedfwa.json
COMMON=(--set train.max_steps=${STEPS:-50} --set train.tokens_per_step=65536 --set eval.every=0 --set eval.batches=2
        --set eval.sample_every=0 --set checkpoint.every=20 --set checkpoint.keep_last=5 --set logging.every=10
        --set distributed.timeout_s=20 --set optimizer.type=${OPTIMIZER:-adamw})
port=29600
launch2() {  # launch2 OUTDIR args...: two ranks in the background, pids in P
  local out=$1; shift; port=$((port + 1)); P=()
  for r in 0 1; do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      GFWA_RUN_ID=$out-$port "$G" train --config $C "${COMMON[@]}" --out "$OUT/$out" "$@" >>"$OUT/$out.rank$r.log" 2>&1 &
    P+=($!)
  done
}
waitall() { RC=0; for p in "${P[@]}"; do wait "$p" || RC=$?; done; }  # not in $(...): a subshell cannot wait
until_log() {  # until_log FILE PATTERN: wait (at most 120 s) until a rank's log shows PATTERN
  for _ in $(seq 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1
}
tps() { grep -o '[0-9]* tok/s' "$1" | tail -3 | head -1; }

echo "== parity: 1 GPU x2 accumulation vs 2 GPUs (zero1 off, on)"
"$G" train --config $C "${COMMON[@]}" --out "$OUT/one" >"$OUT/one.log" 2>&1; echo "1 gpu rc=$?"
launch2 two; waitall; echo "2 gpus rc=$RC"
launch2 two_z1 --set distributed.zero1=true; waitall; echo "2 gpus zero1 rc=$RC"
python3 - "$OUT" <<'PY'
import json, sys, numpy as np, glob
o = sys.argv[1]
def losses(d): return {r["step"]: r["loss"] for r in map(json.loads, open(f"{o}/{d}/metrics.jsonl")) if r["type"] == "train"}
def params(d):
    f = sorted(glob.glob(f"{o}/{d}/checkpoints/step_*/model.bin"))[-1]
    return np.fromfile(f, dtype=np.uint8)
a = losses("one")
for d in ("two", "two_z1"):
    try:
        b = losses(d); steps = sorted(set(a) & set(b))
        dl = max(abs(a[s] - b[s]) for s in steps)
        pa, pb = params("one"), params(d)
        n = min(len(pa), len(pb)) // 4 * 4
        fa, fb = pa[-n:].view(np.float32), pb[-n:].view(np.float32)
        print(f"parity {d}: {len(steps)} logged steps, max |loss diff| {dl:.2e}, loss@{steps[-1]} {a[steps[-1]]:.4f} vs {b[steps[-1]]:.4f}, "
              f"final params max|diff| {np.abs(fa-fb).max():.2e} (rel L2 {np.linalg.norm(fa-fb)/np.linalg.norm(fa):.2e})")
    except Exception as e:
        print(f"parity {d}: {e!r}")
PY
echo "scaling T1024: 1 GPU $(tps "$OUT/one.log") | 2 GPUs $(tps "$OUT/two.rank0.log")"

[ -n "${PARITY_ONLY:-}" ] && exit 0
echo "== resume: SIGTERM to rank 1 mid-run, then --resume auto"
launch2 term; until_log "$OUT/term.rank0.log" "step 30/"; kill -TERM "${P[1]}"; waitall; echo "term rc=$RC"
grep -h "stopped" "$OUT"/term.rank*.log | head -2
launch2 term --resume auto; waitall; echo "resumed rc=$RC"
cmp "$OUT/two/checkpoints/step_00000050/model.bin" "$OUT/term/checkpoints/step_00000050/model.bin" \
  && echo "SIGTERM resume: final model bit-identical to the uninterrupted 2-GPU run" || echo "SIGTERM resume: DIFFERS"

echo "== failure: rank 1 exits with a config error; rank 0 must not hang"
port=$((port + 1)); t0=$SECONDS
RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$G" train --config $C \
  --set model.attention.window=0 --out "$OUT/fail" >"$OUT/fail.rank1.log" 2>&1; echo "rank 1 rc=$?: $(tail -1 "$OUT/fail.rank1.log")"
RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$G" train --config $C \
  "${COMMON[@]}" --out "$OUT/fail" >"$OUT/fail.rank0.log" 2>&1; echo "rank 0 rc=$? after $((SECONDS - t0)) s: $(tail -1 "$OUT/fail.rank0.log")"

echo "== scaling T8192 (20 steps)"
COMMON=(--set train.max_steps=20 --set eval.every=0 --set eval.batches=1 --set eval.sample_every=0 --set checkpoint.every=0 --set logging.every=10)
C=configs/gpt124m_gatedfwa_8k.json
"$G" train --config $C "${COMMON[@]}" --out "$OUT/one8k" >"$OUT/one8k.log" 2>&1
launch2 two8k; waitall
echo "scaling T8192: 1 GPU $(tps "$OUT/one8k.log") | 2 GPUs $(tps "$OUT/two8k.rank0.log")"

echo "== SIGKILL both ranks mid-run, then --resume auto"
C=configs/gpt124m_gatedfwa.json
COMMON=(--set train.max_steps=50 --set train.tokens_per_step=65536 --set eval.every=0 --set eval.batches=2
        --set eval.sample_every=0 --set checkpoint.every=20 --set checkpoint.keep_last=5 --set logging.every=10 --set distributed.timeout_s=20)
launch2 kill; until_log "$OUT/kill.rank0.log" "step 30/"; kill -KILL "${P[@]}"; waitall
launch2 kill --resume auto; waitall; echo "resumed rc=$RC"; grep -h "resum" "$OUT"/kill.rank0.log | tail -1
cmp "$OUT/two/checkpoints/step_00000050/model.bin" "$OUT/kill/checkpoints/step_00000050/model.bin" \
  && echo "SIGKILL resume: final model bit-identical to the uninterrupted 2-GPU run" || echo "SIGKILL resume: DIFFERS"
