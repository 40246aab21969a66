#!/usr/bin/env bash
# Validates everything Quiver ships for Kubernetes, without an API server:
#   1. charts/quiver/crds/ is a byte-identical copy of crds/ (crdgen's output);
#   2. `helm lint --strict` and `helm template` of the chart with the default
#      values and with every charts/quiver/ci/*-values.yaml;
#   3. values the chart must refuse are refused (schema and template checks);
#   4. the rendered chart, the CRDs and the examples validate against the
#      Kubernetes schemas (kubernetes-validate, strict); DataClusters against the
#      CRD's openAPIV3Schema (deploy/validate_manifests.py); the examples also
#      through `kubectl kustomize`;
#   5. known-bad manifests are rejected (the validator can fail);
#   6. the chart's RBAC is exactly what the operator's API calls need
#      (deploy/check_rbac.py).
# Needs helm, kubectl (for kustomize) and python3 with kubernetes-validate,
# jsonschema and pyyaml; `.ci/run` installs them (helm and kubectl into
# .ci/tools/bin). Exits non-zero, naming the failed step, on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
export PATH="$root/.ci/tools/bin:$PATH"

# The Kubernetes version of the kubectl/helm the CI installs.
KUBE_VERSION=${KUBE_VERSION:-1.35.0}
chart=charts/quiver
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

failures=0
fail() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
step() { printf '\n--> %s\n' "$*"; }

need() {
  command -v "$1" >/dev/null 2>&1 || { printf 'FAIL: %s not found (%s)\n' "$1" "$2" >&2; exit 1; }
}
need helm "install it with .ci/run, which unpacks it into .ci/tools/bin"
need kubectl "install it with .ci/run, which unpacks it into .ci/tools/bin"
need python3 "apt-get install python3"
python3 -c 'import jsonschema, yaml, kubernetes_validate' 2>/dev/null \
  || { echo "FAIL: python3 lacks jsonschema, pyyaml or kubernetes-validate (pip install -r .ci/requirements.txt)" >&2; exit 1; }
echo "helm $(helm version --short), $(kubectl version --client=true 2>/dev/null | sed -n 1p), Kubernetes schemas $KUBE_VERSION"

step "CRDs: $chart/crds/ is a copy of crds/"
for f in crds/*.yaml; do
  if ! cmp -s "$f" "$chart/crds/$(basename "$f")"; then
    fail "$chart/crds/$(basename "$f") differs from $f; run: cp crds/*.yaml $chart/crds/"
  fi
done
for f in "$chart"/crds/*.yaml; do
  [ -f "crds/$(basename "$f")" ] || fail "$f has no counterpart in crds/; remove it"
done
echo "$(ls crds/*.yaml | wc -l) CRD file(s) checked"

step "helm lint and helm template"
value_sets=("")
for v in "$chart"/ci/*-values.yaml; do value_sets+=("$v"); done
rendered=()
for v in "${value_sets[@]}"; do
  name=${v:+$(basename "$v" .yaml)}
  name=${name:-default}
  args=(--kube-version "$KUBE_VERSION")
  [ -n "$v" ] && args+=(-f "$v")
  if ! helm lint --strict "$chart" "${args[@]}" >"$out/lint-$name.log" 2>&1; then
    cat "$out/lint-$name.log" >&2
    fail "helm lint --strict with $name values"
  fi
  if helm template quiver "$chart" --namespace quiver-system --include-crds "${args[@]}" \
      >"$out/chart-$name.yaml" 2>"$out/template-$name.log"; then
    rendered+=("$out/chart-$name.yaml")
    echo "$name: $(grep -c '^kind:' "$out/chart-$name.yaml") objects rendered"
  else
    cat "$out/template-$name.log" >&2
    fail "helm template with $name values"
  fi
done

step "values the chart must refuse"
# refuse WHY EXPECTED-MESSAGE HELM-ARGS...: rendering must fail, for that reason.
refuse() {
  local why=$1 expected=$2; shift 2
  if helm template quiver "$chart" --kube-version "$KUBE_VERSION" "$@" >"$out/refused.yaml" 2>"$out/refused.log"; then
    fail "helm template accepted $why ($*)"
  elif ! grep -q -- "$expected" "$out/refused.log"; then
    cat "$out/refused.log" >&2
    fail "helm template refused $why ($*), but not with a message containing: $expected"
  else
    echo "refused: $why: $(grep -m1 -- "$expected" "$out/refused.log" | sed 's/^[[:space:]-]*//' | cut -c1-150)"
  fi
}
refuse "an unknown top-level key" "'replicas' not allowed" --set replicas=2
refuse "an unknown nested key" "'reposit' not allowed" --set image.reposit=x
refuse "a log format the operator does not know" "/logFormat" --set logFormat=xml
refuse "a non-duration poll interval" "/pollInterval" --set pollInterval=often
refuse "a PodDisruptionBudget that blocks every drain" "must be below replicaCount" \
  --set replicaCount=2 --set podDisruptionBudget.minAvailable=2
refuse "two replicas without leader election" "needs replicaCount=1" --set leaderElection.enabled=false
refuse "an external ServiceAccount without a name" "serviceAccount.name is required" --set serviceAccount.create=false
refuse "a Kubernetes older than the CRD's CEL rules need" "requires kubeVersion" --kube-version 1.27.0

step "kubernetes-validate (strict, Kubernetes $KUBE_VERSION): rendered chart and crds/"
if kubernetes-validate --strict --quiet -k "$KUBE_VERSION" "${rendered[@]}" crds/*.yaml >"$out/kv.log" 2>&1; then
  # A kind without a schema is only a warning there: treat it as a failure.
  if grep -q '^WARN' "$out/kv.log"; then
    cat "$out/kv.log" >&2
    fail "kubernetes-validate found objects it has no schema for"
  else
    echo "$(cat "${rendered[@]}" crds/*.yaml | grep -c '^kind:') objects valid"
  fi
else
  cat "$out/kv.log" >&2
  fail "kubernetes-validate rejected the rendered chart or a CRD"
fi

step "examples: each file, then the kustomization"
examples=()
for f in deploy/examples/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || examples+=("$f")
done
python3 "$here/validate_manifests.py" -k "$KUBE_VERSION" --crd crds/datacluster.yaml "${examples[@]}" \
  || fail "an example in deploy/examples/ is invalid"
if kubectl kustomize deploy/examples >"$out/kustomized.yaml" 2>"$out/kustomize.log"; then
  python3 "$here/validate_manifests.py" -k "$KUBE_VERSION" --crd crds/datacluster.yaml "$out/kustomized.yaml" \
    || fail "kubectl kustomize deploy/examples renders invalid objects"
  # Every example is part of the kustomization, and only those.
  python3 - "${examples[@]}" <<'PY' || fail "deploy/examples/kustomization.yaml and the folder disagree"
import os, sys, yaml
listed = set(yaml.safe_load(open("deploy/examples/kustomization.yaml"))["resources"])
present = {os.path.basename(f) for f in sys.argv[1:]}
for f in sorted(present - listed):
    print(f"ERROR {f} is not listed in deploy/examples/kustomization.yaml")
for f in sorted(listed - present):
    print(f"ERROR kustomization.yaml lists {f}, which is not in deploy/examples/")
sys.exit(1 if listed != present else 0)
PY
else
  cat "$out/kustomize.log" >&2
  fail "kubectl kustomize deploy/examples"
fi

step "known-bad manifests are rejected"
python3 "$here/validate_manifests.py" -k "$KUBE_VERSION" --crd crds/datacluster.yaml --expect-errors \
  deploy/testdata/invalid-manifests.yaml || fail "the validator accepted a manifest that is wrong on purpose"

step "RBAC: the chart grants exactly what operator/src calls"
python3 "$here/check_rbac.py" "$out/chart-default.yaml" operator/src || fail "the chart's RBAC does not match the operator"

echo
if [ "$failures" -gt 0 ]; then
  echo "deploy/validate.sh: $failures check(s) failed" >&2
  exit 1
fi
echo "deploy/validate.sh: chart, CRDs, examples and RBAC all valid"
