#!/usr/bin/env bash
# The prepared run on the GPU machine (issue #16, client part): builds only
# what the GPU checks need against the machine's CUDA LibTorch, writes their
# test data with the machine's torch, runs `ctest -L gpu` and
# bench/gpu_load_bench (host Load vs CUDA Load vs raw pinned cudaMemcpy, one
# daemon, one run), and leaves every step's log under $OUT as it goes, so a
# step that fails still leaves the logs of the ones before it.
#
# Here, once:   bash ../shared/gpu/prepare.sh nlohmann-json3-dev pkgconf pkgconf-bin \
#                 libpkgconf3 libssl3 libbrotli1 libdeflate-dev libdeflate0
# There:        bash scripts/gpu-run.sh          (the `run` tool, carry [".gpu"])
#
# $OUT/summary.txt says which step passed or failed and how long it took;
# $OUT/NN-step.log holds each step's output; $OUT/gpu_bench.md the table.
# Exit status: 0 only when every step passed.
#
# Env: OUT (default: a new /tmp/weightd-gpu-out.*), BUILD (/tmp/weightd-gpu),
# JOBS (nproc), ITERS (3), MODEL_MIB (1024: 4 MiB float32 tensors),
# PY (python3 with torch; default python3), WEIGHTD_CMAKE_ARGS (more CMake options).
# WEIGHTD_GPU_DRY_RUN=1: rehearse on a machine without a GPU or .gpu/: the
# system's packages, BUILD (default ./build) as configured already, the GPU
# tests expected to skip and the bench's CUDA rows to say why they are empty.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DRY=${WEIGHTD_GPU_DRY_RUN:-0}
OUT=${OUT:-$(mktemp -d /tmp/weightd-gpu-out.XXXXXX)}
if [ "$DRY" = 1 ]; then BUILD=${BUILD:-$ROOT/build}; else BUILD=${BUILD:-/tmp/weightd-gpu}; fi
JOBS=${JOBS:-$(nproc)}
ITERS=${ITERS:-3}
MODEL_MIB=${MODEL_MIB:-1024}
DEB=${WEIGHTD_GPU_DEB_ROOT:-/opt/deb}
PY=${PY:-$(command -v python3)}
WORK=$(mktemp -d /tmp/weightd-gpu-work.XXXXXX)
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
FAILED=0
N=0
trap 'rm -rf "$WORK"' EXIT

# step NAME CMD...: runs CMD with its output in $OUT/NN-NAME.log; records the
# outcome in summary.txt; prints the log's tail when it fails.
step() {
  local name=$1 rc=0 t0
  shift
  N=$((N + 1))
  local log
  log=$(printf '%s/%02d-%s.log' "$OUT" "$N" "$name")
  t0=$(date +%s)
  echo "gpu-run: $name ..."
  # In the background, so that errexit holds inside (a function run in a
  # `||` list would ignore it); the first failing command ends the step.
  ("$@") >"$log" 2>&1 &
  wait $! || rc=$?
  local s=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    echo "ok     $name (${s} s)" | tee -a "$SUMMARY"
  else
    FAILED=1
    echo "FAILED $name (rc $rc, ${s} s; log $(basename "$log"))" | tee -a "$SUMMARY"
    tail -n 40 "$log" | sed 's/^/  | /'
  fi
  return "$rc"
}

finish() {
  echo "gpu-run: $([ "$FAILED" = 0 ] && echo "all steps passed" || echo "some steps FAILED")," \
    "results in $OUT" | tee -a "$SUMMARY"
  exit "$FAILED"
}

environment() {
  date -u '+%Y-%m-%d %H:%M:%S UTC'
  echo "dry run: $DRY; build: $BUILD; jobs: $JOBS"
  uname -a
  echo "cores: $(nproc); $(grep MemTotal /proc/meminfo)"
  nvidia-smi || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())'
  for tool in cmake ninja g++ nvcc pkg-config; do
    printf '%s: ' "$tool"; command -v "$tool" || echo "(not on PATH)"
  done
  cmake --version | head -1
  git -C "$ROOT" log --oneline -1 2>/dev/null || true
}

# Debian's packages (../shared/gpu/prepare.sh put them in .gpu/debs) under
# $DEB, where the configure step points CMake, pkg-config and the loader.
unpack() {
  ls .gpu/debs/*.deb >/dev/null 2>&1 || {
    echo "no .gpu/debs/*.deb: run bash ../shared/gpu/prepare.sh (see this script's header)" \
      "here and carry .gpu"
    return 1
  }
  mkdir -p "$DEB"
  for f in .gpu/debs/*.deb; do dpkg -x "$f" "$DEB"; done
  ls "$DEB/usr/include/nlohmann/json.hpp" "$DEB/usr/bin/pkgconf" "$DEB/usr/include/libdeflate.h" >/dev/null || {
    echo "missing nlohmann-json3-dev, pkgconf or libdeflate-dev: name them to prepare.sh"
    return 1
  }
  # What the unpacked libraries need and neither they nor the system have.
  local lib=$DEB/usr/lib/x86_64-linux-gnu missing=0
  for so in "$lib"/*.so.*; do
    [ -f "$so" ] || continue
    for need in $(readelf -d "$so" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
      [ -e "$lib/$need" ] || ldconfig -p | grep -q "/$need\$" ||
        { echo "unresolved: $(basename "$so") needs $need"; missing=1; }
    done
  done
  echo "unpacked $(ls .gpu/debs/*.deb | wc -l) packages under $DEB"
  return "$missing"
}

use_debs() {
  export LD_LIBRARY_PATH=$DEB/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  export LIBRARY_PATH=$DEB/usr/lib/x86_64-linux-gnu PATH=$DEB/usr/bin:$PATH
  export CPATH=$DEB/usr/include
  # The .pc files say prefix=/usr: the sysroot maps that onto $DEB.
  export PKG_CONFIG_LIBDIR=$DEB/usr/lib/x86_64-linux-gnu/pkgconfig:$DEB/usr/share/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=$DEB
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  fi
}

# tests/*/make_*.py hash with the xxhash module; where pip has none, a
# stand-in over the packaged libxxhash (ctypes) does the same.
xxhash_module() {
  if "$PY" -c 'import xxhash' 2>/dev/null; then
    echo "python3 has xxhash"
    return 0
  fi
  mkdir -p "$BUILD/pyshim"
  cat >"$BUILD/pyshim/xxhash.py" <<'EOF'
"""xxhash.xxh64 over libxxhash (scripts/gpu-run.sh): the part tests use."""
import ctypes, ctypes.util, glob
_paths = glob.glob("/opt/deb/usr/lib/x86_64-linux-gnu/libxxhash.so.0*") + [ctypes.util.find_library("xxhash")]
_lib = ctypes.CDLL(next(p for p in _paths if p))
_lib.XXH64.restype = ctypes.c_uint64
_lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
class xxh64:
    def __init__(self, data=b"", seed=0):
        self._data, self._seed = bytearray(data), seed
    def update(self, data):
        self._data += data
    def intdigest(self):
        return _lib.XXH64(bytes(self._data), len(self._data), self._seed)
    def hexdigest(self):
        return "%016x" % self.intdigest()
EOF
  sed -i "s|/opt/deb|$DEB|" "$BUILD/pyshim/xxhash.py"
  PYTHONPATH=$BUILD/pyshim "$PY" -c \
    'import xxhash; assert xxhash.xxh64(b"abc").hexdigest() == "44bc2cf5ad770999"'
  echo "python3 lacks xxhash: using $BUILD/pyshim/xxhash.py"
}

configure() {
  if [ "$DRY" = 1 ] && [ -f "$BUILD/build.ninja" ]; then
    echo "dry run: keeping $BUILD as configured"
    cmake "$BUILD" >/dev/null
  else
    local torch
    torch=$("$PY" -c "import torch,os;print(os.path.dirname(torch.__file__))")
    local deb_args=()
    if [ "$DRY" != 1 ]; then
      deb_args=(-DCMAKE_PREFIX_PATH="$DEB/usr;$DEB/usr/lib/x86_64-linux-gnu/cmake;$torch/share/cmake"
        -DProtobuf_INCLUDE_DIR="$DEB/usr/include"
        -DProtobuf_LIBRARY="$DEB/usr/lib/x86_64-linux-gnu/libprotobuf.so"
        -DProtobuf_PROTOC_EXECUTABLE="$DEB/usr/bin/protoc" -DOPENSSL_ROOT_DIR="$DEB/usr"
        -DZLIB_ROOT="$DEB/usr")
    fi
    # --allow-shlib-undefined: libtorch_cuda's own dependencies (cuDNN...)
    # are found at run time through its RUNPATH, not needed at link time.
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DWEIGHTD_PYTHON="$PY" \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined \
      "${deb_args[@]}" ${WEIGHTD_CMAKE_ARGS:-}
  fi
  grep -E '^WEIGHTD_CLIENT_CUDA:' "$BUILD/CMakeCache.txt"
  if [ "$DRY" != 1 ] && ! grep -q '^WEIGHTD_CLIENT_CUDA:INTERNAL=ON' "$BUILD/CMakeCache.txt"; then
    echo "CMake did not find LibTorch's CUDA: the staging ring would not be built"
    return 1
  fi
}

build() {
  ninja -C "$BUILD" -j "$JOBS" weightd client_gpu_test staging_ring_test gpu_load_bench
}

# ctest -V: skips are visible in the log (ctest counts them as passed).
gpu_tests() {
  cd "$BUILD"
  local rc=0
  ctest -L gpu --output-on-failure -V --timeout 300 -j 4 || rc=$?
  "$BUILD/tests/client/staging_ring_test" || rc=$?
  return "$rc"
}

check_no_skips() {
  local log
  log=$(ls "$OUT"/*-gpu_tests.log)
  local skipped
  skipped=$(grep -c 'no CUDA device: GPU load not tested' "$log" || true)
  echo "gtest cases: $(grep -c '\[       OK \]' "$log" || true) ok," \
    "$(grep -c '\[  SKIPPED \]' "$log" || true) skipped lines," \
    "$(grep -c '\[  FAILED  \]' "$log" || true) failed lines"
  grep -E '\[  SKIPPED \] .*\([0-9]+ ms\)' "$log" || true
  echo "tests skipped for want of CUDA: $skipped"
  if [ "$DRY" = 1 ]; then return 0; fi
  [ "$skipped" -eq 0 ]
}

bench() {
  mkdir -p "$WORK/repo/big/1"
  "$PY" - "$WORK/repo/big/1/model.pt" "$MODEL_MIB" <<'EOF'
import sys, torch
path, mib = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
torch.save({f"layers.{i}.weight": torch.randn(1024, 1024) for i in range(mib // 4)}, path)
EOF
  ls -la "$WORK/repo/big/1/model.pt"
  "$BUILD/server/weightd" --repository "$WORK/repo" --listen 127.0.0.1:0 \
    >"$OUT/weightd.out" 2>"$OUT/weightd.err" &
  local pid=$!
  # This runs in step's subshell: stop the daemon however the step ends.
  trap "kill $pid 2>/dev/null || true" EXIT
  local target=""
  for _ in $(seq 100); do
    target=$(sed -n 's/^listening on //p' "$OUT/weightd.out" 2>/dev/null | head -1)
    [ -n "$target" ] && break
    sleep 0.1
  done
  [ -n "$target" ] || { echo "weightd did not start:"; cat "$OUT/weightd.err"; return 1; }
  echo "weightd at $target"
  # The malloc settings README "Tuning a trainer" recommends (as bench/run.sh
  # does): without them glibc may fault gRPC's receive buffers in again on
  # every message, which would blur both the host and the CUDA rows.
  local rc=0
  env MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_MMAP_THRESHOLD_=33554432 \
    MALLOC_TOP_PAD_=67108864 "$BUILD/bench/gpu_load_bench" --target "$target" --model big \
    --iters "$ITERS" --out "$OUT/gpu_bench.md" || rc=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return "$rc"
}

step environment environment || true
if [ "$DRY" != 1 ]; then
  step unpack unpack || finish
  use_debs
fi
step xxhash xxhash_module || finish
if [ -f "$BUILD/pyshim/xxhash.py" ]; then export PYTHONPATH=$BUILD/pyshim${PYTHONPATH:+:$PYTHONPATH}; fi
step configure configure || finish
step build build || finish
step gpu_tests gpu_tests || true
step check_no_skips check_no_skips || true
step bench bench || true
finish
