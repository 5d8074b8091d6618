#!/usr/bin/env bash
# bench/fanout.sh: fan-out (issue 15): N client processes, each loading a
# 256 MiB model into a LibTorch module of its own, started together, against
# one client alone on the same daemon in the same run; and the server's CPU
# seconds per GiB served (utime+stime from /proc/PID/stat) next to one memcpy
# of a GiB on this machine.
#
#   bench/fanout.sh [BUILD_DIR]     (run.sh calls it; default build-bench)
#
# Env: PY, N (default 16), ITERS (single-client loads, best of; default 3),
# WORK, SKIP_BUILD=1.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
bench_setup fanout "$@"
N="${N:-16}"
trap bench_cleanup EXIT
bench_build weightd fanout_bench
FB="$BUILD/bench/fanout_bench"

mkdir -p "$WORK/fanout-repo/m256/1"
[[ -f "$WORK/fanout-repo/m256/1/model.pt" ]] || "$PY" -c "
import torch; torch.manual_seed(0)
torch.save({f'layers.{i}.weight': torch.randn(1024, 1024) for i in range(64)}, '$WORK/fanout-repo/m256/1/model.pt')"
"$BUILD/server/weightd" --repository "$WORK/fanout-repo" --listen 127.0.0.1:0 --minloglevel 2 \
  >"$WORK/fanout-d.out" 2>&1 &
WPID=$!; PIDS+=("$WPID")
for _ in $(seq 100); do grep -q "listening on" "$WORK/fanout-d.out" 2>/dev/null && break; sleep 0.05; done
TARGET="$(sed -n 's/^listening on //p' "$WORK/fanout-d.out" | head -1)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$WPID/stat"; }
HZ="$(getconf CLK_TCK)"

"$FB" --target "$TARGET" >/dev/null  # warm-up: the server loads and caches the model
echo "fanout: $N processes; load at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# One client alone (best of ITERS), and the server CPU of those loads.
C0="$(cpu_ticks)"; BEST=1e30
for _ in $(seq "$ITERS"); do
  OUT="$("$FB" --target "$TARGET" | awk '$1=="RESULT"{print $3, $4}')"
  read -r S BYTES <<<"$OUT"
  BEST="$(awk -v a="$S" -v b="$BEST" 'BEGIN{print (a<b)?a:b}')"
done
C1="$(cpu_ticks)"
ONE_CPU="$(awk -v t=$((C1 - C0)) -v hz="$HZ" -v n="$ITERS" -v b="$BYTES" 'BEGIN{print t/hz/(n*b/2^30)}')"

# N at once: all set up first ("ready"), then released together.
rm -f "$WORK/go"; FPIDS=()
for i in $(seq "$N"); do
  "$FB" --target "$TARGET" --go "$WORK/go" >"$WORK/fan$i.out" 2>&1 &
  FPIDS+=("$!"); PIDS+=("$!")
done
for i in $(seq "$N"); do
  for _ in $(seq 600); do grep -q ready "$WORK/fan$i.out" && break; sleep 0.1; done
done
C0="$(cpu_ticks)"; touch "$WORK/go"
FAIL=0; for p in "${FPIDS[@]}"; do wait "$p" || FAIL=$((FAIL + 1)); done
C1="$(cpu_ticks)"
WALL="$(cat "$WORK"/fan*.out | awk '$1=="RESULT"{if ($3>m) m=$3} END{print m}')"
FAN_CPU="$(awk -v t=$((C1 - C0)) -v hz="$HZ" -v n="$N" -v b="$BYTES" 'BEGIN{print t/hz/(n*b/2^30)}')"
MEMCPY="$("$FB" --memcpy_gib 1 | awk '$1=="RESULT"{print $3}')"

echo
echo "Fan-out, $((BYTES >> 20)) MiB model, each client its own module (load at end: $(cut -d' ' -f1-3 /proc/loadavg)):"
awk -v b="$BYTES" -v one="$BEST" -v n="$N" -v wall="$WALL" -v fail="$FAIL" \
    -v c1="$ONE_CPU" -v cn="$FAN_CPU" -v mc="$MEMCPY" 'BEGIN{
  r1 = b / one / 1e9; rn = n * b / wall / 1e9;
  printf "| %-44s | %8s | %8s |\n", "case", "GB/s", "x one";
  printf "|%s|%s|%s|\n", "----------------------------------------------", "----------", "----------";
  printf "| %-44s | %8.2f | %8.2f |\n", "1 client (best of loads)", r1, 1;
  printf "| %-44s | %8.2f | %8.2f |\n", sprintf("%d processes at once, aggregate (%d failed)", n, fail), rn, rn / r1;
  printf "server CPU per GiB served: %.3f s (1 client), %.3f s (%d processes); one memcpy of a GiB: %.3f s\n", c1, cn, n, mc;
}'
