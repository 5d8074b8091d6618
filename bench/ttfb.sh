#!/usr/bin/env bash
# bench/ttfb.sh: time to the first tensor byte after a fresh daemon start, for
# a 1 GiB and two 8 GiB models (issue 15's cold start): 256 x 4 MiB (1 GiB)
# against 2048 x 4 MiB (more tensors) and 256 x 32 MiB (larger tensors).
# Page cache warm (each file is read once first); a new weightd for every
# call, so the model is loaded and nothing is hashed yet. Each 8 GiB file is
# written, measured and deleted before the next (disk and page cache).
#
#   bench/ttfb.sh [BUILD_DIR]     (default build-bench; run.sh calls it unless TTFB=0)
#
# Env: PY (python with torch), ITERS (default 3; the median is shown), WORK
# (scratch dir), WEIGHTD (the daemon binary), WEIGHTD_OLD (a second one, e.g.
# a build from before checksum trailers, measured on the same files in the
# same run), SKIP_BUILD=1.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
bench_setup ttfb "$@"
bench_build weightd ttfb_bench
WEIGHTD="${WEIGHTD:-$BUILD/server/weightd}"
TTFB="$BUILD/bench/ttfb_bench"
DPID=""
cleanup() {
  [[ -n "$DPID" ]] && kill "$DPID" 2>/dev/null || true
  rm -rf "$WORK/ttfb-repo"
}
trap cleanup EXIT

# make_model NAME TENSORS ROWS: TENSORS float32 [ROWS, 1024] tensors. Their
# values do not matter (hashing and sending cost the same for any bytes), so
# torch.empty: an 8 GiB dict costs no memory before torch.save reads it.
make_model() {
  mkdir -p "$WORK/ttfb-repo/$1/1"
  "$PY" - "$WORK/ttfb-repo/$1/1/model.pt" "$2" "$3" <<'EOF'
import sys, torch
path, n, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.save({f"layers.{i}.weight": torch.empty(rows, 1024) for i in range(n)}, path)
EOF
  cat "$WORK/ttfb-repo/$1/1/model.pt" >/dev/null  # page cache warm
}

# one WHAT MODEL DAEMON: a fresh daemon, one call, its seconds.
one() {
  "$3" --repository "$WORK/ttfb-repo" --listen 127.0.0.1:0 --minloglevel 2 \
    >"$WORK/ttfb-d.out" 2>&1 &
  DPID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/ttfb-d.out" 2>/dev/null && break; sleep 0.05; done
  local target
  target="$(sed -n 's/^listening on //p' "$WORK/ttfb-d.out" | head -1)"
  local t
  t="$("$TTFB" --target "$target" --model "$2" --what "$1" | awk '$1=="RESULT"{print $3}')"
  kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=""
  [[ -n "${VERBOSE:-}" ]] && echo "    $(basename "$(dirname "$3")")/$(basename "$3") $2 $1: $t" >&2
  echo "$t"
}

median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

declare -A T
WHATS=(fetch fetch_include manifest_known manifest_all)
DAEMONS=("$WEIGHTD")
[[ -n "${WEIGHTD_OLD:-}" ]] && DAEMONS+=("$WEIGHTD_OLD")
measure() {
  for D in "${DAEMONS[@]}"; do
    for W in "${WHATS[@]}"; do
      T[$D,$1,$W]="$(for _ in $(seq "$ITERS"); do one "$W" "$1" "$D"; done | median)"
    done
  done
  echo "  measured $1 (load $(cut -d' ' -f1 /proc/loadavg))" >&2
}

echo "ttfb: daemons ${DAEMONS[*]}; load at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
make_model g1x4 256 1024;   measure g1x4
make_model g8x4 2048 1024;  measure g8x4;  rm -rf "$WORK/ttfb-repo/g8x4"
make_model g8x32 256 8192;  measure g8x32; rm -rf "$WORK/ttfb-repo/g8x32"

for D in "${DAEMONS[@]}"; do
echo
echo "Time to first byte after a fresh daemon start, $D (median of $ITERS, page cache warm; load at end: $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
printf '| %-36s | %13s | %13s | %13s | %8s | %8s |\n' call "1 GiB 256x4M" "8 GiB 2048x4M" "8 GiB 256x32M" "8G/1G 4M" "8G/1G 32M"
printf '|%s|%s|%s|%s|%s|%s|\n' -------------------------------------- --------------- --------------- --------------- ---------- ----------
for W in "${WHATS[@]}"; do
  case $W in
    fetch) NAME="Fetch: first tensor byte";;
    fetch_include) NAME="Fetch with include: first byte";;
    manifest_known) NAME="GetManifest (checksums KNOWN)";;
    manifest_all) NAME="GetManifest (checksums ALL)";;
  esac
  awk -v n="$NAME" -v a="${T[$D,g1x4,$W]}" -v b="${T[$D,g8x4,$W]}" -v c="${T[$D,g8x32,$W]}" \
    'BEGIN{printf "| %-36s | %10.1f ms | %10.1f ms | %10.1f ms | %7.2fx | %7.2fx |\n", n, a*1e3, b*1e3, c*1e3, b/a, c/a}'
done
done
