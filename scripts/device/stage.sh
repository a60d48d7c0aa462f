#!/usr/bin/env bash
# Builds here and stages what scripts/device/all.sh needs on the GPU machine into device_out/final:
# the two binaries, the GCC runtime libraries they were linked against (the GPU machine's may be
# older), and the source path the tests were built with. Also copies the PyTorch anchors to bench_py/.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/build.sh
bash scripts/data/prepare_austen.sh >/dev/null
rm -rf device_out/final && mkdir -p device_out/final bench_py
cp build/gfwa build/gfwa_tests device_out/final/
for lib in libgomp.so.1 libstdc++.so.6 libgcc_s.so.1; do cp -L "/lib/x86_64-linux-gnu/$lib" device_out/final/; done
pwd > device_out/final/source_dir
cp ../shared/bench/*.py bench_py/ 2>/dev/null || echo "stage: no ../shared/bench: anchors unavailable"
du -sh device_out/final data bench_py
