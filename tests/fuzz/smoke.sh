#!/usr/bin/env bash
# Builds every libFuzzer target with clang and runs each for a short while on
# seeds made from real PyTorch files. A crash, leak or sanitizer report fails.
#   FUZZ_SECONDS=30 (per target)  FUZZ_BUILD=build-fuzz
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD:-build-fuzz}

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DWEIGHTD_CORE_ONLY=ON -DWEIGHTD_FUZZ=ON \
  -DWEIGHTD_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"

seeds="$build/seeds"
/usr/bin/python3 tests/fuzz/make_seeds.py "$seeds"

fuzzers=("$build"/tests/fuzz/*_fuzzer)
if [ ! -x "${fuzzers[0]}" ]; then
  echo "no fuzz targets were built in $build/tests/fuzz" >&2
  exit 1
fi

status=0
for fuzzer in "${fuzzers[@]}"; do
  name=$(basename "$fuzzer" _fuzzer)
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  echo "== $name: ${seconds}s"
  if ! "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 "$corpus" "$seeds/$name" >"$build/$name.log" 2>&1; then
    echo "FAILED: $name (log: $build/$name.log)"
    tail -n 40 "$build/$name.log"
    status=1
  else
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$build/$name.log" || true
  fi
done
exit $status
