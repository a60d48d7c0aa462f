#!/usr/bin/env bash
# OpenMPI: one `gfwa train` process per GPU on one or more nodes. gfwa reads OMPI_COMM_WORLD_RANK,
# OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK and OMPI_COMM_WORLD_LOCAL_SIZE; MPI is used only
# to start the processes, NCCL does the communication.
#
#   single node:  GPUS_PER_NODE=8 scripts/launch/mpirun.sh CONFIG [more gfwa train options]
#   multi node:   HOSTFILE=hosts GPUS_PER_NODE=8 scripts/launch/mpirun.sh CONFIG
#                 (hosts: one line per node, "node01 slots=8"; the first node runs rank 0)
#
# Rank 0's address for the NCCL id exchange is the first host of the hostfile (or this host);
# set MASTER_ADDR to an address the other nodes reach if the host name resolves elsewhere, or use
# --set distributed.id_exchange=file --set distributed.id_file=/shared/path on a shared file system.
# NVLink multicast stays off: gfwa forces NCCL_NVLS_ENABLE=0 in every rank.
set -euo pipefail
CONFIG=${1:?usage: $0 CONFIG [more gfwa train options]}
shift
GFWA=${GFWA:-build/gfwa}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi -L | wc -l)}

hostargs=()
NODES=1
if [[ -n ${HOSTFILE:-} ]]; then
  hostargs=(--hostfile "$HOSTFILE")
  NODES=$(grep -cvE '^\s*(#|$)' "$HOSTFILE")
  MASTER_ADDR=${MASTER_ADDR:-$(grep -vE '^\s*(#|$)' "$HOSTFILE" | head -n1 | awk '{print $1}')}
fi
export MASTER_ADDR=${MASTER_ADDR:-$(hostname)}
export MASTER_PORT=${MASTER_PORT:-29500}
export NCCL_NVLS_ENABLE=0

exec mpirun -np $((NODES * GPUS_PER_NODE)) "${hostargs[@]}" --map-by "ppr:${GPUS_PER_NODE}:node" --bind-to none \
  -x MASTER_ADDR -x MASTER_PORT -x NCCL_NVLS_ENABLE -x PATH -x LD_LIBRARY_PATH \
  "$GFWA" train --config "$CONFIG" "$@"
