#!/usr/bin/env bash
# Issue 15's GPU check: python/gfwa_torch.py (fp32, CPU) against the cuda backend (bf16) on tiny
# freshly trained checkpoints, every attention mode with token shift off and on; bf16 tolerances
# (tests/python/torch_parity.py). Run ON the GPU machine from the repo root, with a python3 that
# has torch. Before the call, here: bash scripts/device/stage.sh, then carry device_out.
set -euo pipefail
BIN=device_out/final
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$PWD/$BIN:${nccl}:${LD_LIBRARY_PATH:-}"
python3 tests/python/torch_parity.py --gfwa "$BIN/gfwa" --backend cuda "$@"
