#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's packages (run as root or with sudo).
# The CUDA toolkit (nvcc, cuBLAS, NCCL) is expected under /usr/local/cuda; without it, configure
# with -DGFWA_CUDA=OFF and only the cpu backend is built.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  cmake ninja-build g++ libcxxopts-dev nlohmann-json3-dev libspdlog-dev libfmt-dev \
  libgtest-dev python3 python3-matplotlib ca-certificates curl npm xz-utils >/dev/null
echo "setup: dependencies installed"
