#!/usr/bin/env bash
# Builds the Dockerfile for real with buildah and checks the image from outside:
#   1. base images debian:bookworm and debian:bookworm-slim are made with
#      debootstrap (no image registry is reachable) and cached;
#   2. `buildah bud` builds the Dockerfile (both stages);
#   3. weightd runs from the image's root file system as uid 10001 with that
#      root read-only and the example repository mounted read-only at /models;
#   4. weightctl from the build tree checks it: list, manifest, pull, health;
#   5. the image must hold no compiler and no LibTorch; its size is printed.
#
#   scripts/container-test.sh            (as root; needs buildah, debootstrap)
#
# BUILD: the host build tree with weightctl (default build); REPOSITORY: the
# example repository (made with examples/make_repository.py when missing);
# WEIGHTD_IMAGE_CACHE: where the base rootfs tarball is cached.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPOSITORY=${REPOSITORY:-examples/repository}
CACHE=${WEIGHTD_IMAGE_CACHE:-/var/cache/weightd/images}
BUILDAH=(buildah --storage-driver vfs)
IMAGE=localhost/weightd:test
PORT=${CONTAINER_TEST_PORT:-50071}
HEALTH_PORT=$((PORT + 1))

log() { echo "container-test: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (buildah with chroot isolation, chroot)"
for p in buildah debootstrap python3-grpcio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p"
done
[ -x "$BUILD/client/weightctl" ] || die "no $BUILD/client/weightctl; build first (make build)"
if [ ! -f "$REPOSITORY/.complete" ]; then
  /usr/bin/python3 examples/make_repository.py "$REPOSITORY"
fi

# 1. Base images from debootstrap, cached as a tarball.
mkdir -p "$CACHE"
if [ ! -f "$CACHE/bookworm-minbase.tar" ]; then
  log "debootstrap bookworm (minbase)"
  rm -rf "$CACHE/rootfs"
  debootstrap --variant=minbase bookworm "$CACHE/rootfs" http://deb.debian.org/debian >&2
  rm -rf "$CACHE/rootfs/var/cache/apt/archives/"*.deb "$CACHE/rootfs/var/lib/apt/lists/"*
  tar -C "$CACHE/rootfs" -cf "$CACHE/bookworm-minbase.tar.part" .
  mv "$CACHE/bookworm-minbase.tar.part" "$CACHE/bookworm-minbase.tar"
  rm -rf "$CACHE/rootfs"
fi
if ! "${BUILDAH[@]}" inspect --type image docker.io/library/debian:bookworm >/dev/null 2>&1; then
  log "importing the base image"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$CACHE/bookworm-minbase.tar" / >/dev/null
  "${BUILDAH[@]}" config --cmd /bin/bash "$ctr"
  "${BUILDAH[@]}" commit -q "$ctr" docker.io/library/debian:bookworm >/dev/null
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
  # minbase is what bookworm-slim is for our purpose: no docs or recommends.
  "${BUILDAH[@]}" tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
fi

# 2. The Dockerfile, as it is.
log "buildah bud"
start=$(date +%s)
"${BUILDAH[@]}" bud --isolation chroot --network host --pull=false --layers \
  -t "$IMAGE" -f Dockerfile . >&2
log "image built in $(( $(date +%s) - start )) s"

# 3. Run weightd from the image's root, read-only, as uid 10001.
ctr=$("${BUILDAH[@]}" from "$IMAGE")
mnt=$("${BUILDAH[@]}" mount "$ctr")
config() {  # config KEY: the image's OCI config field KEY, as JSON
  "${BUILDAH[@]}" inspect --type image "$IMAGE" |
    /usr/bin/python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"].get(sys.argv[1])))' "$1"
}
entry=$(config Entrypoint)
user=$(config User | tr -d '"')
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  "${BUILDAH[@]}" umount "$ctr" >/dev/null 2>&1 || true
  "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT
[ "$entry" = '["/usr/local/bin/weightd"]' ] || die "entrypoint is $entry"
[ "$user" = "10001:10001" ] || die "image user is '$user', want 10001:10001"
repo_abs=$(readlink -f "$REPOSITORY")
log "running weightd from the image as $user, root file system read-only"
unshare --mount --propagation private bash -c '
  set -e
  mnt=$1 repo=$2 port=$3 health=$4
  mount --bind "$mnt" "$mnt"
  mount -t proc proc "$mnt/proc"
  mount --bind "$repo" "$mnt/models"
  mount -o remount,bind,ro "$mnt/models"
  mount -o remount,bind,ro "$mnt"
  exec chroot --userspec=10001:10001 "$mnt" /usr/local/bin/weightd --repository=/models \
    --listen=127.0.0.1:$port --health_listen=127.0.0.1:$health
' _ "$mnt" "$repo_abs" "$PORT" "$HEALTH_PORT" > "$tmp/stdout" 2> "$tmp/stderr" &
daemon_pid=$!
for _ in $(seq 100); do
  grep -q "^listening on" "$tmp/stdout" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/stderr" >&2; die "weightd exited"; }
  sleep 0.1
done
grep -q "^listening on 127.0.0.1:$PORT" "$tmp/stdout" || die "no listening line: $(cat "$tmp/stdout")"
uid=$(awk '/^Uid:/{print $2}' "/proc/$(pgrep -P "$daemon_pid" weightd || echo "$daemon_pid")/status")
[ "$uid" = 10001 ] || die "weightd runs as uid $uid"

# 4. From outside, with the host's weightctl.
wctl() { "$BUILD/client/weightctl" "$1" --server "127.0.0.1:$PORT" "${@:2}"; }
wctl list | tee "$tmp/list" >&2 || die "weightctl list failed"
grep -q lenet "$tmp/list" || die "list has no lenet"
wctl manifest lenet > "$tmp/manifest" || die "weightctl manifest lenet failed"
grep -q conv1.weight "$tmp/manifest" || die "manifest lenet has no conv1.weight"
wctl pull lenet -o "$tmp/lenet.safetensors" >&2 || die "weightctl pull lenet failed"
/usr/bin/python3 - "$tmp/lenet.safetensors" "$repo_abs" <<'EOF' || die "pulled lenet differs"
import json, struct, sys
import torch
path, repo = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
src = repo + "/lenet.pt"
sd = torch.load(src, map_location="cpu")
names = [k for k in header if k != "__metadata__"]
assert sorted(names) == sorted(sd), (names, list(sd))
for k in names:
    b, e = header[k]["data_offsets"]
    assert raw[8 + n + b:8 + n + e] == sd[k].contiguous().numpy().tobytes(), k
print("container-test: pulled lenet equals torch.load of the source,", len(names), "tensors")
EOF
for port in "$PORT" "$HEALTH_PORT"; do
  /usr/bin/python3 tests/data/health_check.py "127.0.0.1:$port" >&2 || die "health on port $port is not SERVING"
done

# 5. What the image holds.
for bad in gcc g++ cc c++ clang; do
  [ ! -e "$mnt/usr/bin/$bad" ] || die "the image holds a compiler: /usr/bin/$bad"
done
if find "$mnt" -xdev \( -name 'libtorch*.so*' -o -name 'libc10*.so*' \) | grep -q .; then
  die "the image holds LibTorch"
fi
size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE" 2>/dev/null | head -n1 || true)
du_size=$(du -sh --apparent-size "$mnt" | cut -f1)
log "image: no compiler, no LibTorch; root file system $du_size${size:+, image $size}"
log "PASS"
