#!/usr/bin/env bash
# Validates what the operator produces against the Kubernetes schemas:
#  1. every child built for each DataCluster in tests/fixtures/ and
#     deploy/examples/ (running and suspended), plus the CRD, with
#     `kubernetes-validate --strict`;
#  2. those DataCluster manifests against the CRD's openAPIV3Schema with python
#     `jsonschema` (unknown fields are errors; CEL rules are not evaluated).
# Needs: pip install kubernetes-validate jsonschema pyyaml
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$root"

clusters=("$here"/tests/fixtures/*.yaml)
if [ -d deploy/examples ]; then
  while IFS= read -r f; do clusters+=("$f"); done \
    < <(grep -l -r --include='*.yaml' --include='*.yml' '^kind: DataCluster' deploy/examples | sort)
fi

# .ci/run has just built the example with the tests (profile ci, QUIVER_BIN_DIR):
# run that one rather than a second build in another profile.
if [ -n "${QUIVER_BIN_DIR:-}" ] && [ -x "$QUIVER_BIN_DIR/examples/dump_manifests" ]; then
  "$QUIVER_BIN_DIR/examples/dump_manifests" "$out" "${clusters[@]}"
else
  cargo run -q -p quiver-operator --example dump_manifests -- "$out" "${clusters[@]}"
fi
kubernetes-validate --strict --quiet "$out"/*.json crds/*.yaml
echo "kubernetes-validate: $(ls "$out"/*.json | wc -l) child manifests and $(ls crds/*.yaml | wc -l) CRD(s) valid"
python3 "$here/validate_instances.py" crds/datacluster.yaml "${clusters[@]}"
