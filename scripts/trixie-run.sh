#!/usr/bin/env bash
# Runs a command inside the trixie root (scripts/trixie-root.sh) with the
# current directory's tree bind-mounted at the same path, so build directories
# and test paths mean the same inside and out. The mounts live in a private
# mount namespace and vanish with the command.
#
#   scripts/trixie-run.sh CMD [ARGS...]     e.g. scripts/trixie-run.sh python3 -c 'import torch'
#
# WEIGHTD_TRIXIE_BIND: the directory to bind (default: the git top of $PWD, else $PWD).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
ROOT=$("$(dirname "$0")/trixie-root.sh" --path)
if [ ! -f "$ROOT/.weightd-packages" ]; then
  echo "trixie-run: no root at $ROOT; run scripts/trixie-root.sh first" >&2
  exit 1
fi
BIND=${WEIGHTD_TRIXIE_BIND:-$(git rev-parse --show-toplevel 2>/dev/null || pwd)}
exec unshare --mount --propagation private bash -c '
  set -e
  root=$1 bind=$2 cwd=$3; shift 3
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mkdir -p "$root$bind" "$root/tmp"
  mount --bind "$bind" "$root$bind"
  chmod 1777 "$root/tmp"
  exec chroot "$root" /usr/bin/env -C "$cwd" HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    LANG=C.UTF-8 "$@"
' _ "$ROOT" "$BIND" "$PWD" "$@"
