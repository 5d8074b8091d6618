#!/usr/bin/env bash
# Builds (once) and caches a Debian 13 (trixie) root with LibTorch 2.6,
# PyTorch 2.6, torchvision, safetensors and everything weightd builds and tests
# with: the "modern stack" lane. Idempotent: a root whose package list is
# unchanged is reused as it is; a new list installs only what is missing; an
# interrupted debootstrap is started again from scratch.
#
#   scripts/trixie-root.sh            build or refresh the root, print its path
#   scripts/trixie-root.sh --path     print the path only
#
# WEIGHTD_TRIXIE_ROOT overrides the location (default /var/cache/weightd/trixie).
# Commands run inside it with scripts/trixie-run.sh. Needs root, debootstrap and
# the Debian registry.
set -euo pipefail

ROOT=${WEIGHTD_TRIXIE_ROOT:-/var/cache/weightd/trixie}
MIRROR=${WEIGHTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${1:-}" = "--path" ]; then echo "$ROOT"; exit 0; fi

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libre2-dev libgoogle-glog-dev libgflags-dev
  libtorch-dev libxxhash-dev nlohmann-json3-dev zlib1g-dev libdeflate-dev
  libcpp-httplib-dev libssl-dev openssl
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-torch python3-torchvision python3-numpy python3-xxhash
  python3-safetensors python3-grpcio python3-protobuf python3-pytest python3-venv
  python3-pip python3-setuptools python3-wheel
)

if [ "$(id -u)" -ne 0 ]; then
  echo "trixie-root: needs root (debootstrap, chroot)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

want=$(printf '%s\n' "${PACKAGES[@]}" | sort | sha256sum | cut -c1-16)
if [ -f "$ROOT/.weightd-packages" ] && [ "$(cat "$ROOT/.weightd-packages")" = "$want" ]; then
  echo "$ROOT"
  exit 0
fi

mkdir -p "$(dirname "$ROOT")"
if [ ! -f "$ROOT/.weightd-base" ]; then
  # A half-written root from an interrupted run is not trusted.
  rm -rf "$ROOT"
  echo "trixie-root: debootstrap trixie into $ROOT" >&2
  debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >&2
  touch "$ROOT/.weightd-base"
fi

cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# No daemons are started inside the root by package scripts.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"

echo "trixie-root: installing ${#PACKAGES[@]} packages" >&2
unshare --mount --propagation private bash -c '
  set -e
  mount -t proc proc "$1/proc"
  mount --rbind /dev "$1/dev"
  shift
  chroot "$0" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c "
    apt-get update -q && apt-get install -y -q --no-install-recommends $* && apt-get clean"
' "$ROOT" "$ROOT" "${PACKAGES[@]}" >&2
echo "$want" > "$ROOT/.weightd-packages"
echo "$ROOT"
