#!/usr/bin/env bash
# One node, one `gfwa train` process per GPU, with the torchrun-style variables set by hand
# (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT); no PyTorch needed.
#
#   scripts/launch/torchrun_env.sh CONFIG [NGPUS] [more `gfwa train` options...]
#   e.g. scripts/launch/torchrun_env.sh configs/gpt124m_gatedfwa.json 2 --resume auto
#
# The same with PyTorch's launcher, if installed (gfwa reads the variables torchrun sets):
#   torchrun --standalone --nproc-per-node=8 --no-python build/gfwa train --config CONFIG
#
# NVLink multicast stays off: gfwa forces NCCL_NVLS_ENABLE=0 in every rank whatever is set here.
# If one rank fails, this script stops the others instead of leaving them to wait for it until
# distributed.timeout_s; SIGINT/SIGTERM are passed on to every rank (each checkpoints and exits 75).
set -uo pipefail
CONFIG=${1:?usage: $0 CONFIG [NGPUS] [more gfwa train options]}
shift
NGPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
if [[ ${1:-} =~ ^[0-9]+$ ]]; then NGPUS=$1; shift; fi
(( NGPUS >= 1 )) || { echo "$0: no GPU found; give NGPUS" >&2; exit 2; }
GFWA=${GFWA:-build/gfwa}

export WORLD_SIZE=$NGPUS LOCAL_WORLD_SIZE=$NGPUS
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-29500}
export GFWA_RUN_ID=${GFWA_RUN_ID:-local-$$-$(date +%s)}
export NCCL_NVLS_ENABLE=0

pids=()
for ((r = 0; r < NGPUS; r++)); do
  RANK=$r LOCAL_RANK=$r "$GFWA" train --config "$CONFIG" "$@" &
  pids+=($!)
done
stopping=0
trap 'stopping=1; kill -TERM "${pids[@]}" 2>/dev/null' INT TERM

status=0
for ((i = 0; i < NGPUS; i++)); do
  wait -n
  rc=$?
  if (( rc != 0 && status == 0 )); then
    status=$rc
    (( stopping )) || echo "$0: a rank exited with status $rc; stopping the others" >&2
    kill -TERM "${pids[@]}" 2>/dev/null
  fi
done
wait  # a signal can end `wait -n` early: reap every rank before leaving
exit "$status"
