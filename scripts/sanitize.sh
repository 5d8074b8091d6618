#!/usr/bin/env bash
# Builds the project with a sanitizer in its own build directory and runs the
# tests under it (issue 7).
#   scripts/sanitize.sh asan   AddressSanitizer + UBSan + LeakSanitizer,
#                              whole CTest suite -> build-asan
#   scripts/sanitize.sh tsan   ThreadSanitizer, `-L server`, `-L reliability`
#                              and `-L tsan` tests -> build-tsan, without
#                              LibTorch (the client library is not under test)
# Debian's gRPC, protobuf, Abseil and LibTorch are not instrumented; the
# suppression files in tests/reliability/ name each report we accept and why.
# For TSan, tests/tsan annotates absl::Mutex (which gRPC uses too), without
# which every mutex-guarded access would be reported.
# JOBS (default nproc) sets the build parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-asan}"
jobs="${JOBS:-$(nproc)}"
supp="$PWD/tests/reliability"
common="-fno-omit-frame-pointer -g -O1"

case "$kind" in
  asan)
    dir=build-asan
    flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined $common"
    # halt_on_error: the first report fails the test instead of scrolling by.
    export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    # bad_corpus runs its inputs under RLIMIT_AS, which ASan's shadow memory
    # (terabytes of reserved address space) cannot live with.
    ctest_args=(-E '^bad_corpus$')
    cmake_args=()
    ;;
  tsan)
    dir=build-tsan
    # -U__SANITIZE_THREAD__: headers must lay out types as the uninstrumented
    # Debian libraries were built. Protobuf's MapFieldBase grows two fields
    # under that macro, so code of ours compiled with it reads
    # google.protobuf.Struct (allocated by libprotobuf) 8 bytes past its end,
    # which TSan reports as heap-use-after-free. WEIGHTD_TSAN tells our own
    # code (load_test's RSS bound) instead.
    flags="-fsanitize=thread -U__SANITIZE_THREAD__ -DWEIGHTD_TSAN $common"
    export TSAN_OPTIONS="suppressions=$supp/tsan.supp:halt_on_error=1:second_deadlock_stack=1"
    ctest_args=(-L 'server|reliability|tsan')
    cmake_args=(-DWEIGHTD_TSAN_ABSL=ON -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON)
    ;;
  *)
    echo "usage: $0 asan|tsan" >&2
    exit 2
    ;;
esac

if [[ ! -f "$dir/build.ninja" ]]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" "${cmake_args[@]}"
fi
cmake --build "$dir" -j "$jobs"

cd "$dir" && ctest --output-on-failure -j "$jobs" "${ctest_args[@]}"
