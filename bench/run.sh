#!/usr/bin/env bash
# bench/run.sh: weightd against the physical limit (iperf3 over loopback) and
# against what users do today (torch.load + load_state_dict, HTTP + torch.load),
# side by side in one run on one machine. See bench/RESULTS.md.
#
#   bench/run.sh [BUILD_DIR]      (default build-bench; builds what it needs)
#
# Env: PY (python with torch; default /usr/bin/python3), ITERS (default 3),
# CLIENTS (default 16), WORK (scratch dir; default a fresh mktemp -d),
# TTFB=0 (skip bench/ttfb.sh: time to first byte of 1 vs 8 GiB models; writes
# two 8 GiB files in turn, minutes), FANOUT=0 (skip bench/fanout.sh: CLIENTS
# processes each loading 256 MiB into a module of its own), SN_ITERS (default 10:
# the same-node rows, best of). The torch 2.x row
# runs in the trixie root when scripts/trixie-root.sh has built it.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
bench_setup bench "$@"
CLIENTS="${CLIENTS:-16}"
trap bench_cleanup EXIT
bench_build weightd weightctl load_bench local_limit_bench fanout_bench ttfb_bench
WEIGHTD="$BUILD/server/weightd"
WEIGHTCTL="$BUILD/client/weightctl"
LOADBENCH="$BUILD/bench/load_bench"
LIMITBENCH="$BUILD/bench/local_limit_bench"

if ! command -v iperf3 >/dev/null; then
  echo "installing iperf3 (apt-get)" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)," \
  "$(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "work dir: $WORK"

# ---------------------------------------------------------------- the data
mkdir -p "$WORK/repo/big/1" "$WORK/repo/resnet50/1" "$WORK/http"
"$PY" - "$WORK" <<'EOF'
import sys, os, torch, torchvision
work = sys.argv[1]
torch.manual_seed(0)
big = f"{work}/repo/big/1/model.pt"
if not os.path.exists(big):
    sd = {f"layers.{i}.weight": torch.randn(1024, 1024) for i in range(256)}
    torch.save(sd, big)
rn = f"{work}/repo/resnet50/1/model.pt"
if not os.path.exists(rn):
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), rn)
EOF
ln -sf "$WORK/repo/big/1/model.pt" "$WORK/http/big.pt"
ln -sf "$WORK/repo/resnet50/1/model.pt" "$WORK/http/resnet50.pt"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --------------------------------------------------------------- servers
# TCP first (TARGET is the first "listening on" line), and a Unix socket for
# the same-node rows.
"$WEIGHTD" --repository "$WORK/repo" --listen "127.0.0.1:0,unix:$WORK/weightd.sock" \
  >"$WORK/weightd.out" 2>"$WORK/weightd.err" &
WPID=$!; PIDS+=("$WPID")
for _ in $(seq 100); do grep -q "listening on" "$WORK/weightd.out" 2>/dev/null && break; sleep 0.1; done
TARGET="$(sed -n 's/^listening on //p' "$WORK/weightd.out" | head -1)"
[[ -n "$TARGET" ]] || { echo "weightd did not start:"; cat "$WORK/weightd.err"; exit 1; }

HTTP_PORT="$(free_port)"
(cd "$WORK/http" && exec "$PY" -m http.server "$HTTP_PORT" --bind 127.0.0.1) >/dev/null 2>&1 &
PIDS+=("$!")
IPERF_PORT="$(free_port)"
iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 &
PIDS+=("$!")
sleep 1

# ------------------------------------------------------------- measurements
declare -A SEC BYTES FAULTS
# iperf3: single stream, 5 s, receiver's rate.
IPERF_BPS="$(iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t 5 -J |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8)')"

for M in big resnet50; do
  # Python: local torch.load (page cache warm: one untimed pass first) +
  # load_state_dict, and HTTP GET + torch.load from the bytes.
  PYOUT="$("$PY" - "$WORK" "$M" "$HTTP_PORT" "$ITERS" <<'EOF'
import io, sys, time, urllib.request, torch, torchvision
work, m, port, iters = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
path = f"{work}/repo/{m}/1/model.pt"
torch.set_num_threads(1)
sd = torch.load(path)
if m == "resnet50":
    mod = torchvision.models.resnet50(weights=None)
else:
    mod = torch.nn.Module()
    layers = torch.nn.ModuleList()
    for _ in range(256):
        l = torch.nn.Module(); l.weight = torch.nn.Parameter(torch.zeros(1024, 1024)); layers.append(l)
    mod.layers = layers
nbytes = sum(t.numel() * t.element_size() for t in sd.values())
def best(f):
    b = 1e30
    for _ in range(iters):
        t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
    return b
def local():
    mod.load_state_dict(torch.load(path))
def http():
    data = urllib.request.urlopen(f"http://127.0.0.1:{port}/{m}.pt").read()
    mod.load_state_dict(torch.load(io.BytesIO(data)))
print("bytes", nbytes)
print("torch_load", best(local))
print("http_torch_load", best(http))
EOF
)"
  BYTES[$M]="$(awk '$1=="bytes"{print $2}' <<<"$PYOUT")"
  SEC[$M,torch]="$(awk '$1=="torch_load"{print $2}' <<<"$PYOUT")"
  SEC[$M,http]="$(awk '$1=="http_torch_load"{print $2}' <<<"$PYOUT")"

  EXTRA=()
  [[ "$M" == big ]] && EXTRA=(--clients "$CLIENTS" --server_pid "$WPID")
  LB="$("$LOADBENCH" --target "$TARGET" --model "$M" --iters "$ITERS" "${EXTRA[@]}")"
  echo "$LB" | sed "s/^RESULT /  load_bench[$M] /"
  r() { awk -v k="$1" '$1=="RESULT" && $2==k{print $3}' <<<"${2:-$LB}"; }  # r KEY [OUTPUT]
  SEC[$M,load]="$(r load_best_s)"
  FAULTS[$M,load]="$(r load_faults)"
  FAULTS[$M,fetch]="$(r fetch_faults)"
  # The same Load with glibc's trim and mmap thresholds fixed, so freed gRPC
  # receive buffers are reused instead of returned to the kernel and faulted
  # in again (bench/RESULTS.md, run 3).
  LBT="$(env MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_MMAP_THRESHOLD_=33554432 \
    MALLOC_TOP_PAD_=67108864 "$LOADBENCH" --target "$TARGET" --model "$M" --iters "$ITERS" \
    --load_only 1)"
  SEC[$M,tuned]="$(r load_best_s "$LBT")"
  FAULTS[$M,tuned]="$(r load_faults "$LBT")"
  SEC[$M,lpart]="$(r load_part_best_s)"
  SEC[$M,fetch]="$(r fetch_best_s)"
  SEC[$M,part]="$(r fetch_part_best_s)"
  if [[ "$M" == big ]]; then
    CONC_S="$(r concurrent_s)"; CONC_FAIL="$(r concurrent_failures)"
    RSS_BEFORE="$(r rss_before_kib)"; RSS_PEAK="$(r rss_peak_kib)"; RSS_AFTER="$(r rss_after_kib)"
  fi

  # weightctl pull: server -> local .pt file (best of ITERS).
  B=1e30
  for _ in $(seq "$ITERS"); do
    rm -f "$WORK/pull.pt"
    T0=$(date +%s.%N)
    "$WEIGHTCTL" pull "$M" -o "$WORK/pull.pt" --server "$TARGET" >/dev/null 2>&1
    T1=$(date +%s.%N)
    B=$(awk -v a="$T0" -v b="$T1" -v c="$B" 'BEGIN{d=b-a; print (d<c)?d:c}')
  done
  SEC[$M,pull]="$B"
  rm -f "$WORK/pull.pt"
done

# ------------------------------------------------------------------- table
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'iperf3 single TCP stream over loopback: %.2f GB/s\n\n' "$(awk -v b="$IPERF_BPS" 'BEGIN{print b/1e9}')"
printf '| %-8s | %-40s | %8s | %7s | %9s |\n' model case seconds GB/s "x iperf3"
printf '|%s|%s|%s|%s|%s|\n' ---------- ------------------------------------------ ---------- --------- -----------
for M in big resnet50; do
  for C in torch http load tuned lpart fetch part pull; do
    case $C in
      torch) NAME="torch.load (warm cache) + load_state_dict";;
      http)  NAME="HTTP GET (loopback) + torch.load + lsd";;
      load)  NAME="weightd Client::Load into module";;
      tuned) NAME="weightd Client::Load, malloc thresholds";;
      lpart) NAME="weightd Client::Load (module: 10% keys)";;
      fetch) NAME="weightd Client::Fetch (all keys)";;
      part)  NAME="weightd Client::Fetch (10% of keys)";;
      pull)  NAME="weightctl pull -o FILE";;
    esac
    S="${SEC[$M,$C]}"
    if [[ $C == part || $C == lpart ]]; then
      # Rate and ratio of a partial call are meaningless; cost vs full instead.
      FULL="${SEC[$M,fetch]}"
      [[ $C == lpart ]] && FULL="${SEC[$M,load]}"
      printf '| %-8s | %-40s | %8.3f | %7s | %9s |\n' "$M" "$NAME" "$S" "-" \
        "$(awk -v p="$S" -v f="$FULL" 'BEGIN{printf "%.0f%% of full", 100*p/f}')"
      continue
    fi
    awk -v m="$M" -v n="$NAME" -v s="$S" -v b="${BYTES[$M]}" -v i="$IPERF_BPS" \
      'BEGIN{printf "| %-8s | %-40s | %8.3f | %7.2f | %9.2f |\n", m, n, s, b/s/1e9, (b/s)/i}'
  done
done
echo
for M in big resnet50; do
  printf '%s: minor page faults per call (client): Load %.0f, Load with malloc thresholds %.0f, Fetch %.0f\n' \
    "$M" "${FAULTS[$M,load]}" "${FAULTS[$M,tuned]}" "${FAULTS[$M,fetch]}"
done
awk -v t="${SEC[big,torch]}" -v l="${SEC[big,load]}" \
  'BEGIN{printf "1 GiB: Client::Load is %.2fx faster than torch.load + load_state_dict\n", t/l}'
printf '%s concurrent clients (1 GiB model, cached): %.2f s, %s failures; server VmRSS before %d MiB, peak %d MiB, after %d MiB (peak growth %d MiB)\n' \
  "$CLIENTS" "$CONC_S" "${CONC_FAIL%.*}" "$((${RSS_BEFORE%.*} / 1024))" "$((${RSS_PEAK%.*} / 1024))" \
  "$((${RSS_AFTER%.*} / 1024))" "$(((${RSS_PEAK%.*} - ${RSS_BEFORE%.*}) / 1024))"

# --------------------------------------------------------- same-node rows
# The 1 GiB model over unix: (descriptors + one copy into the module) against
# the physical limit: mmap of the page-cached file copied into pre-touched
# buffers, in a fresh process (bench/local_limit_bench.cc: memcpy on one
# thread, non-temporal stores, and the client's ParallelCopier), and against
# torch 2.6's torch.load(mmap=True) + load_state_dict in the trixie root
# (scripts/trixie-root.sh), when it is there. Then pull over TCP and over
# unix: against what writing the same bytes into a new file costs here.
echo
BIGPT="$WORK/repo/big/1/model.pt"
# These calls take 0.1-0.2 s and vary by 20% from call to call on a VM: best
# of SN_ITERS (default 10).
SN_ITERS="${SN_ITERS:-10}"
LBU="$("$LOADBENCH" --target "unix:$WORK/weightd.sock" --model big --iters "$SN_ITERS")"
LBU1="$("$LOADBENCH" --target "unix:$WORK/weightd.sock" --model big --iters "$SN_ITERS" \
  --load_only 1 --copy_threads 1)"
LIM="$("$LIMITBENCH" "$BIGPT" --iters "$SN_ITERS" --write_dir "$WORK")"
T26=""
TROOT="$(bash "$ROOT/scripts/trixie-root.sh" --path)"
if compgen -G "$TROOT/usr/lib/python3/dist-packages/torch/__init__.py" >/dev/null; then
  T26="$(cd "$WORK" && WEIGHTD_TRIXIE_BIND="$WORK" bash "$ROOT/scripts/trixie-run.sh" \
    python3 - "$BIGPT" "$SN_ITERS" <"$ROOT/bench/torch_load_baseline.py")" || T26=""
fi
T26V="$(sed -n 's/^torch \([^,]*\),.*/\1/p' <<<"$T26")"
PULLU=1e30
for _ in $(seq "$ITERS"); do
  rm -f "$WORK/pull.pt"
  T0=$(date +%s.%N)
  "$WEIGHTCTL" pull big -o "$WORK/pull.pt" --server "unix:$WORK/weightd.sock" --quiet
  T1=$(date +%s.%N)
  PULLU=$(awk -v a="$T0" -v b="$T1" -v c="$PULLU" 'BEGIN{d=b-a; print (d<c)?d:c}')
done
rm -f "$WORK/pull.pt"
ru() { awk -v k="$1" '$1=="RESULT" && $2==k{print $3}' <<<"$2"; }
echo "same-node rows, 1 GiB (256 x 4 MiB fp32), best of $SN_ITERS (pulls: $ITERS); load now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads for the copy: $(sed -n 's/^threads for the parallel rows: //p' <<<"$LIM") (Load: at::get_num_threads())"
printf '| %-58s | %8s | %9s |\n' case seconds "x limit"
printf '|%s|%s|%s|\n' ------------------------------------------------------------ ---------- -----------
LIMIT="$(ru mmap_populate_best_s "$LIM")"
row() { awk -v n="$1" -v s="$2" -v l="$LIMIT" 'BEGIN{ if (s == "") printf "| %-58s | %8s | %9s |\n", n, "-", "-"; else printf "| %-58s | %8.3f | %9.2f |\n", n, s, s/l }'; }
row "physical limit: mmap (MAP_POPULATE) + memcpy, 1 thread" "$LIMIT"
row "  same, plain faulting mmap" "$(ru mmap_fault_best_s "$LIM")"
row "  same, non-temporal stores, 1 thread" "$(ru mmap_populate_nt_best_s "$LIM")"
row "  same, memcpy split over the threads" "$(ru mmap_populate_threads_best_s "$LIM")"
row "  same, faulting mmap, memcpy split over the threads" "$(ru mmap_fault_threads_best_s "$LIM")"
row "  same, the client's ParallelCopier (Load's copy), populated" "$(ru mmap_populate_copier_best_s "$LIM")"
row "  same, the client's ParallelCopier, faulting mmap (as Load)" "$(ru mmap_fault_copier_best_s "$LIM")"
row "weightd same-node Client::Load (default copy threads)" "$(ru load_best_s "$LBU")"
row "weightd same-node Client::Load, copy_threads 1" "$(ru load_best_s "$LBU1")"
row "weightd same-node Client::Fetch (all keys)" "$(ru fetch_best_s "$LBU")"
row "weightd Client::Load over TCP" "${SEC[big,load]}"
row "torch ${T26V:-2.x (no trixie root)} torch.load(mmap=True) + load_state_dict" "$(ru torch_load_mmap_best_s "$T26")"
row "torch $("$PY" -c 'import torch; print(torch.__version__)') torch.load + load_state_dict (1 thread)" "${SEC[big,torch]}"
echo
awk -v ok="$(ru load_local "$LBU")" 'BEGIN{ if (ok != 1) print "WARNING: the unix: Load did NOT take the same-node path" }'
awk -v u="$(ru load_best_s "$LBU")" -v t="$(ru torch_load_mmap_best_s "$T26")" -v l="$LIMIT" \
    -v x="$(ru xxh64_mapped_best_s "$LIM")" -v pf="$(ru load_faults "$LBU")" 'BEGIN{
  printf "same-node Load: %.2fx the physical limit, %.0f minor faults; ", u/l, pf
  if (t != "") printf "%.2fx faster than torch 2.x mmap load", t/u; else printf "torch 2.x: not measured"
  printf "\nxxh64 of 1 GiB (verify_local_checksums): %.3f s\n", x }'
W="$(ru file_write_best_s "$LIM")"; WD="$(ru file_write_fsync_best_s "$LIM")"
awk -v pt="${SEC[big,pull]}" -v pu="$PULLU" -v lt="${SEC[big,load]}" -v lu="$(ru load_best_s "$LBU")" \
    -v w="$W" -v wd="$WD" 'BEGIN{
  printf "pull limit here: write() of 1 GiB into a new file %.3f s, durably (writeback + fsync) %.3f s\n", w, wd
  printf "weightctl pull -o FILE over TCP:  %.3f s = %.2fx Load over TCP'"'"'s throughput, %.2fx the durable write limit'"'"'s\n", pt, lt/pt, wd/pt
  printf "weightctl pull -o FILE over unix: %.3f s = %.2fx same-node Load'"'"'s throughput, %.2fx the durable write limit'"'"'s\n", pu, lu/pu, wd/pu }'
# Fan-out over processes (the row above uses threads sharing one module) and
# the server's CPU per GiB; then (TTFB=0 skips it) cold-start time to first byte.
if [[ "${FANOUT:-1}" != 0 ]]; then
  echo
  SKIP_BUILD=1 N="$CLIENTS" ITERS="$ITERS" WORK="$WORK" PY="$PY" bash "$ROOT/bench/fanout.sh" "$BUILD"
fi
if [[ "${TTFB:-1}" != 0 ]]; then
  SKIP_BUILD=1 ITERS="$ITERS" WORK="$WORK" PY="$PY" bash "$ROOT/bench/ttfb.sh" "$BUILD"
fi
