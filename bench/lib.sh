# bench/lib.sh: what every bench script starts with; sourced, not run.
#
#   source "$(dirname "$0")/lib.sh"; bench_setup NAME "$@"; bench_build TARGET...
#
# bench_setup sets ROOT (the checkout), BUILD (the first argument, default
# build-bench, configured Release when new), PY, ITERS (default 3) and WORK
# (default a fresh /tmp/weightd-NAME.XXXXXX); bench_build builds the targets
# unless SKIP_BUILD=1 (binaries already there: an edit elsewhere in the
# checkout would otherwise rebuild in the middle of a measurement). PIDS
# holds background processes, killed on exit.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIDS=()
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
bench_setup() {
  local name=$1
  BUILD="${2:-$ROOT/build-bench}"
  PY="${PY:-/usr/bin/python3}"
  ITERS="${ITERS:-3}"
  WORK="${WORK:-$(mktemp -d "/tmp/weightd-$name.XXXXXX")}"
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
}
bench_build() {
  [[ -n "${SKIP_BUILD:-}" ]] || cmake --build "$BUILD" --target "$@" -j"$(nproc)" >/dev/null
}
