#!/usr/bin/env bash
# The LibTorch 2.6 / PyTorch 2.6 lane: builds weightd inside the cached Debian
# 13 root (scripts/trixie-root.sh) against its libtorch-dev 2.6 and runs the
# CTest suite there, so every test that links LibTorch or asks Python torch as
# its oracle runs against 2.6 (the generators write their files with torch 2.6).
#
#   scripts/trixie-lane.sh [CTEST ARGS...]     e.g. scripts/trixie-lane.sh -R client
#
# BUILD_TRIXIE: the build directory (default build-trixie), JOBS: build jobs.
# Left out here, and run by the bookworm lane only: the deploy manifests check
# (needs node; nothing in it depends on torch) and the libFuzzer smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_TRIXIE=${BUILD_TRIXIE:-build-trixie}
JOBS=${JOBS:-$(nproc)}
start=$(date +%s)
bash scripts/trixie-root.sh >/dev/null
echo "trixie-lane: root ready after $(( $(date +%s) - start )) s"
# CCACHE_BASEDIR: hits survive the checkout moving (CI clones elsewhere).
scripts/trixie-run.sh env CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1 bash -c '
  set -euo pipefail
  build=$1 jobs=$2; shift 2
  python3 -c "import torch, torchvision, safetensors; print(\"trixie-lane: torch\", torch.__version__, \"torchvision\", torchvision.__version__, \"safetensors\", safetensors.__version__)"
  [ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja -DWEIGHTD_PYTHON=/usr/bin/python3
  cmake --build "$build" -j "$jobs"
  cd "$build"
  ctest --output-on-failure -j "$jobs" -LE "deploy" "$@"
' _ "$BUILD_TRIXIE" "$JOBS" "$@"
echo "trixie-lane: done in $(( $(date +%s) - start )) s"
