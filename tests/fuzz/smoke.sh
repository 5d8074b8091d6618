#!/usr/bin/env bash
# Builds every libFuzzer target with clang and runs each for a short while on
# seeds made from real PyTorch files (and serialized requests). A crash, leak,
# timeout or sanitizer report fails. Targets run FUZZ_JOBS at a time (each
# fuzzer is single-threaded), so the smoke stays a few minutes on 2 cores.
#   FUZZ_SECONDS=30 (per target)  FUZZ_BUILD=build-fuzz  FUZZ_JOBS=$(nproc)
#   FUZZ_TIMEOUT=10 (seconds one input may take; raise it on a shared machine,
#   where a starved fuzzer reports timeouts its inputs do not have)
#   FUZZ_TARGETS="a b" (only these targets; default: all that tests/fuzz/CMakeLists.txt
#   builds: request rules safetensors safetensors_index side_channel torch_file
#   torch_legacy unpickler whole_model zip_reader)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD:-build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}
timeout=${FUZZ_TIMEOUT:-10}

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DWEIGHTD_CORE_ONLY=ON -DWEIGHTD_FUZZ=ON \
  -DWEIGHTD_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"

seeds="$build/seeds"
/usr/bin/python3 tests/fuzz/make_seeds.py "$seeds"
mkdir -p "$seeds/request"
"$build/tests/fuzz/request_seed_writer" "$seeds/request"

if [ -n "${FUZZ_TARGETS:-}" ]; then
  fuzzers=()
  for name in $FUZZ_TARGETS; do fuzzers+=("$build/tests/fuzz/${name}_fuzzer"); done
else
  fuzzers=("$build"/tests/fuzz/*_fuzzer)
fi
if [ ! -x "${fuzzers[0]}" ]; then
  echo "no fuzz targets were built in $build/tests/fuzz" >&2
  exit 1
fi

run() {  # run FUZZER: one target; its log is $build/NAME.log
  local fuzzer=$1 name
  name=$(basename "$fuzzer" _fuzzer)
  mkdir -p "$build/corpus/$name" "$seeds/$name" "$build/artifacts"
  "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout="$timeout" \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" \
    "$build/corpus/$name" "$seeds/$name" >"$build/$name.log" 2>&1
}

status=0
pids=()
names=()
report() {  # report INDEX: waits for that run and prints its result
  local name=${names[$1]}
  if wait "${pids[$1]}"; then
    echo "== $name: ok ($(grep -E '^#[0-9]+[[:space:]]+DONE' "$build/$name.log" | tail -n 1 |
      sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/'))"
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$build/$name.log" |
      sed 's/^/   /' || true
  else
    echo "FAILED: $name (log: $build/$name.log)"
    tail -n 40 "$build/$name.log"
    status=1
  fi
}

next=0
for fuzzer in "${fuzzers[@]}"; do
  names+=("$(basename "$fuzzer" _fuzzer)")
  run "$fuzzer" &
  pids+=($!)
  if [ $(( ${#pids[@]} - next )) -ge "$jobs" ]; then
    report $next
    next=$((next + 1))
  fi
done
while [ $next -lt ${#pids[@]} ]; do
  report $next
  next=$((next + 1))
done
exit $status
