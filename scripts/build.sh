#!/usr/bin/env bash
# Configures and builds into build/ (Release). CUDA is built when nvcc is found.
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_FLAG=ON
if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then CUDA_FLAG=OFF; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGFWA_CUDA=$CUDA_FLAG "$@" >/dev/null
cmake --build build -j"$(nproc)"
