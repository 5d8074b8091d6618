#!/usr/bin/env bash
# The Python client tests under Debian 13's torch 2.6: weightd (built on the
# host, bookworm) runs outside the trixie root on 127.0.0.1, and the README's
# install command plus pytest run inside it (scripts/trixie-run.sh; the network
# namespace is shared). Tests that start their own daemon are skipped there.
#
#   tests/python/run_trixie.sh BUILD_DIR [PYTEST_ARGS...]
#
# BUILD_DIR: a configured and built tree (weightd, and the python_test_repository
# target, which this script builds). The venv goes to BUILD_DIR/tests/python/trixie.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [PYTEST_ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
shift
data=$build/tests/python/data
work=$build/tests/python/trixie
cmake --build "$build" --target weightd python_test_repository >&2

mkdir -p "$work"
out=$work/weightd.out
"$build/server/weightd" --repository "$data/repo" --listen 127.0.0.1:0 --minloglevel 2 >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$out" 2>/dev/null && break
  sleep 0.1
done
address=$(sed -n 's/^listening on //p' "$out" | head -1)
[ -n "$address" ] || { echo "run_trixie: weightd did not start" >&2; exit 1; }

cd "$top"
# Inside the root: python3 is trixie's; the install command is the README's.
# A root without python3-setuptools (trixie's pip no longer pulls it in)
# cannot build the package: then install the wheel built here instead (same
# protobuf 3.21 and grpcio 1.51 in both releases) and say so.
if scripts/trixie-run.sh /usr/bin/python3 -c 'import setuptools.build_meta' 2>/dev/null; then
  scripts/trixie-run.sh env WEIGHTD_VENV_DIR="$work" WEIGHTD_PYTHON=/usr/bin/python3 \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider "$here/install_test.py"
else
  echo "run_trixie: the root has no python3-setuptools; installing a wheel built on the host" >&2
  rm -rf "$work/wheel" "$work/.venv"
  /usr/bin/python3 -m pip wheel -q --no-build-isolation --no-deps -w "$work/wheel" "$top/python"
  scripts/trixie-run.sh bash -c 'python3 -m venv --system-site-packages "$1/.venv" &&
    "$1/.venv/bin/pip" install -q --no-index --no-deps "$1"/wheel/weightd-*.whl' _ "$work"
fi
scripts/trixie-run.sh env WEIGHTD_ADDRESS="$address" WEIGHTD_PYTHON_TEST_DATA="$data" \
  "$work/.venv/bin/python" -c 'import torch; print("torch", torch.__version__)'
scripts/trixie-run.sh env WEIGHTD_ADDRESS="$address" WEIGHTD_PYTHON_TEST_DATA="$data" \
  "$work/.venv/bin/python" -m pytest -q -p no:cacheprovider "$here" \
  --ignore="$here/install_test.py" "$@"
