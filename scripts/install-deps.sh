#!/usr/bin/env bash
# Installs every Debian bookworm package needed to build, run and test weightd.
# Idempotent: safe to run again; only missing packages are installed.
set -euo pipefail

#   scripts/install-deps.sh            everything: build, tests, oracles
#   scripts/install-deps.sh --server   only what building weightd and weightctl
#                                      needs (the Dockerfile's build stage)

# weightd and weightctl: neither links LibTorch.
SERVER_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libre2-dev libgoogle-glog-dev libgflags-dev
  libxxhash-dev nlohmann-json3-dev zlib1g-dev libdeflate-dev
  libcpp-httplib-dev libssl-dev
)
PACKAGES=(
  "${SERVER_PACKAGES[@]}" ccache git openssl
  libtorch-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang libclang-rt-14-dev
  python3 python3-torch python3-torchvision python3-numpy python3-xxhash
  python3-grpcio python3-protobuf python3-pytest python3-venv python3-pip python3-setuptools
  python3-wheel debootstrap buildah
)
case "${1:-}" in
  --server) PACKAGES=("${SERVER_PACKAGES[@]}") ;;
  "") ;;
  *) echo "usage: $0 [--server]" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
