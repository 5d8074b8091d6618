#!/usr/bin/env bash
# Renders deploy/k8s (base and every overlay) and validates each object
# against the Kubernetes schemas, offline.
#
# usage: validate.sh SOURCE_DIR WORK_DIR
#
# Rendering: `kubectl kustomize` or `kustomize build` when installed, and
# always tests/deploy/render.py (a documented kustomize subset); when both
# exist their outputs must agree. Validation: node + the npm packages below
# (pinned; the only network use is this npm install, cached in WORK_DIR).
# Exit 77 (CTest SKIP) only when node or npm is missing.
set -euo pipefail

src="$1"
work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
python="${WEIGHTD_PYTHON:-/usr/bin/python3}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node/npm not installed"
  exit 77
fi

readonly PACKAGES=(kubernetes-models@5.1.0 yaml@2.8.1)
mkdir -p "$work"
stamp="$work/installed-${PACKAGES[*]// /_}"
stamp="${stamp//@/-}"
if [ ! -f "$stamp" ]; then
  (cd "$work" && echo '{"private": true}' > package.json &&
     npm install --no-audit --no-fund --silent --no-save "${PACKAGES[@]}")
  touch "$stamp"
fi
export WEIGHTD_NODE_MODULES="$work/node_modules"

kustomize_cmd=()
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kustomize_cmd=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
  kustomize_cmd=(kustomize build)
fi

status=0
for dir in "$src/deploy/k8s/base" "$src"/deploy/k8s/overlays/*/; do
  dir="${dir%/}"
  name="${dir#"$src"/deploy/k8s/}"
  out="$work/${name//\//_}"
  echo "== $name"
  "$python" "$here/render.py" "$dir" > "$out.subset.yaml"
  rendered="$out.subset.yaml"
  if [ "${#kustomize_cmd[@]}" -gt 0 ]; then
    "${kustomize_cmd[@]}" "$dir" > "$out.yaml"
    "$python" "$here/compare.py" "$out.subset.yaml" "$out.yaml" || status=1
    rendered="$out.yaml"
  else
    echo "(no kustomize here: validating render.py's output)"
  fi
  extra=()
  [ "$name" != base ] && extra=(--expect-pvc)
  node "$here/validate.mjs" "$rendered" "${extra[@]}" || status=1
done
exit "$status"
