#!/usr/bin/env bash
# Builds the project with a sanitizer in its own build directory and runs the
# tests under it (issue 7), through the CMake presets of the same name
# (CMakePresets.json: `cmake --preset tsan && cmake --build --preset tsan &&
# ctest --preset tsan` is the same thing by hand).
#   scripts/sanitize.sh asan   AddressSanitizer + UBSan + LeakSanitizer,
#                              whole CTest suite -> build-asan
#   scripts/sanitize.sh tsan   ThreadSanitizer, `-L server`, `-L reliability`
#                              and `-L tsan` tests -> build-tsan, without
#                              LibTorch (the client library is not under test)
# JOBS (default nproc) sets the build and test parallelism.
#
# Why the presets look as they do (JSON has no comments):
# - Debian's gRPC, protobuf, Abseil and LibTorch are not instrumented; the
#   suppression files in tests/reliability/ name each report we accept and why.
# - asan leaves out bad_corpus (it runs its inputs under RLIMIT_AS, which
#   ASan's terabytes of reserved shadow memory cannot live with) and the
#   install tests (they build examples/trainer as an outside project with its
#   own flags, which cannot link ASan-instrumented libraries). Its reports halt
#   the test (halt_on_error) instead of scrolling by.
# - tsan links tests/tsan's annotations of absl::Mutex (WEIGHTD_TSAN_ABSL),
#   which gRPC uses too; without them every mutex-guarded access is reported.
#   -U__SANITIZE_THREAD__: headers must lay out types as the uninstrumented
#   Debian libraries were built. Protobuf's MapFieldBase grows two fields
#   under that macro, so code of ours compiled with it reads
#   google.protobuf.Struct (allocated by libprotobuf) 8 bytes past its end,
#   which TSan reports as heap-use-after-free. WEIGHTD_TSAN tells our own code
#   (load_test's RSS bound) instead.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-asan}"
jobs="${JOBS:-$(nproc)}"
case "$kind" in
  asan | tsan) ;;
  *)
    echo "usage: $0 asan|tsan" >&2
    exit 2
    ;;
esac

if [[ ! -f "build-$kind/build.ninja" ]]; then
  cmake --preset "$kind"
fi
cmake --build --preset "$kind" -j "$jobs"
ctest --preset "$kind" -j "$jobs"
