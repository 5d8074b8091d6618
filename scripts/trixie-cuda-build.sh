#!/usr/bin/env bash
# Compile-and-link check against CUDA LibTorch 2.6 without a GPU: builds the
# CUDA client targets in a copy of the trixie root that has libtorch-cuda-dev
# 2.6 and nvidia-cuda-toolkit (default /var/cache/weightd/trixie-cuda), through
# scripts/trixie-run.sh with WEIGHTD_TRIXIE_ROOT pointing there.
#
#   scripts/trixie-cuda-build.sh [NINJA TARGETS...]
#
# That root has no cuDNN (libcudnn.so.9), which libtorch_cuda.so needs: links
# pass -Wl,--allow-shlib-undefined, and nothing that loads LibTorch runs there,
# the CUDA python3-torch included, so the test-data generators are replaced by
# /bin/true (WEIGHTD_PYTHON). Tests run on the GPU machine (scripts/gpu-run.sh).
# BUILD_TRIXIE_CUDA: the build directory (default build-trixie-cuda), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
export WEIGHTD_TRIXIE_ROOT=${WEIGHTD_TRIXIE_CUDA_ROOT:-/var/cache/weightd/trixie-cuda}
BUILD=${BUILD_TRIXIE_CUDA:-build-trixie-cuda}
JOBS=${JOBS:-$(nproc)}
[ $# -gt 0 ] || set -- weightd_client client_gpu_test staging_ring_test gpu_load_bench
scripts/trixie-run.sh env CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1 bash -c '
  set -euo pipefail
  build=$1 jobs=$2; shift 2
  cmake -S . -B "$build" -G Ninja -DWEIGHTD_PYTHON=/bin/true \
    -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined >/dev/null
  grep "^WEIGHTD_CLIENT_CUDA:" "$build/CMakeCache.txt"
  ninja -C "$build" -j "$jobs" "$@"
' _ "$BUILD" "$JOBS" "$@"
