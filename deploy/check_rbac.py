#!/usr/bin/env python3
"""Checks the chart's RBAC against the API calls in the operator's source.

usage: check_rbac.py RENDERED_CHART.yaml OPERATOR_SRC_DIR

Reads operator/src and finds what the operator asks of the API server:
  * `let x: Api<Kind> = ...` followed by `x.get(` / `.get_opt(` / `.list(` /
    `.create(` / `.replace(` / `.patch(` / `.patch_status(` / `.delete(` ...;
    a server-side apply (`PatchParams::apply`) may create, so it needs `create`
    as well as `patch`;
  * the same inside generic functions (`Api<K>`), attributed to each kind at the
    call sites `function::<Kind>(`;
  * watches: `Controller::new(api, ...)`, `watcher(api, ...)`,
    `.owns(Api::<Kind>::all(...))` and `watched::<Kind>(` /
    `watched_meta::<Kind>(` (the operator's cached watches) need `list` and
    `watch`;
  * `Recorder::new` (kube's event recorder) needs `create` and `patch` on
    `events.k8s.io` events;
  * the rules of every Role the operator builds (children/rbac.rs): RBAC lets it
    create a Role only with permissions it holds itself.

Then it compares with the ClusterRole and Role of the rendered chart: a call
the chart does not allow is an error (the operator would fail with 403); a
permission no call needs is an error too (least privilege). Leases must come
from the namespaced Role, everything else from the ClusterRole.
"""
import os
import re
import sys

import yaml

# k8s-openapi / quiver type -> (API group, resource).
RESOURCES = {
    "StatefulSet": ("apps", "statefulsets"),
    "Deployment": ("apps", "deployments"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Secret": ("", "secrets"),
    "ConfigMap": ("", "configmaps"),
    "Pod": ("", "pods"),
    "Event": ("", "events"),
    "Endpoints": ("", "endpoints"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "Lease": ("coordination.k8s.io", "leases"),
    "EndpointSlice": ("discovery.k8s.io", "endpointslices"),
    "DataCluster": ("quiver.dev", "dataclusters"),
}
# Namespaced in the operator's own namespace (the Role), not cluster-wide.
OWN_NAMESPACE = {("coordination.k8s.io", "leases")}

# kube::Api method -> (verbs, subresource).
METHODS = {
    "get": (["get"], ""),
    "get_opt": (["get"], ""),
    "get_metadata": (["get"], ""),
    "get_metadata_opt": (["get"], ""),
    "list": (["list"], ""),
    "list_metadata": (["list"], ""),
    "watch": (["watch"], ""),
    "watch_metadata": (["watch"], ""),
    "create": (["create"], ""),
    "replace": (["update"], ""),
    "patch": (["patch"], ""),
    "patch_metadata": (["patch"], ""),
    "delete": (["delete"], ""),
    "delete_collection": (["deletecollection"], ""),
    "get_status": (["get"], "status"),
    "patch_status": (["patch"], "status"),
    "replace_status": (["update"], "status"),
    "get_scale": (["get"], "scale"),
    "patch_scale": (["patch"], "scale"),
    "replace_scale": (["update"], "scale"),
}

FN = re.compile(r"\bfn\s+(\w+)\s*(<[^>{]*>)?\s*\(")
API_BINDING = re.compile(r"let\s+(?:mut\s+)?(\w+)\s*:\s*Api<\s*([\w:]+(?:<\s*[\w:]+\s*>)?)\s*>")
CALL = re.compile(r"\b(\w+)\s*\.\s*(\w+)\s*\(")
TURBOFISH_API = re.compile(r"Api::<\s*([\w:]+)\s*>::(?:all|namespaced|default_namespaced)")
ERASE = re.compile(r"ApiResource::erase::<\s*([\w:]+)\s*>")


def last_segment(path):
    """`kube::core::DynamicObject` -> `DynamicObject`; `DeserializeGuard<X>` -> `X`."""
    inner = re.search(r"<\s*([\w:]+)\s*>", path)
    if inner:
        path = inner.group(1)
    return path.split("::")[-1]


def functions(text):
    """(name, generics, body) of every fn with a body, by brace matching."""
    for m in FN.finditer(text):
        start = text.find("{", m.end())
        semi = text.find(";", m.end())
        if start < 0 or (0 <= semi < start):
            continue  # a declaration without a body
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    yield m.group(1), m.group(2) or "", text[start : i + 1]
                    break


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def type_params(generics):
    return set(re.findall(r"[<,]\s*([A-Z]\w*)\s*[:,>]", generics + ">")) if generics else set()


def scan(src_dir):
    """Returns ({(group, resource, verb): [where...]}, [problems])."""
    needs = {}
    problems = []
    generic = {}  # fn name -> [(verbs, subresource, where)]
    sources = {}
    for root, _, files in os.walk(src_dir):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                with open(path) as fh:
                    sources[path] = strip_comments(fh.read())

    def need(kind, verbs, sub, where):
        if kind not in RESOURCES:
            problems.append(f"{where}: the operator calls the API for `{kind}`, which check_rbac.py does not know; "
                            "add it to RESOURCES")
            return
        group, resource = RESOURCES[kind]
        if sub:
            resource = f"{resource}/{sub}"
        for v in verbs:
            needs.setdefault((group, resource, v), []).append(where)

    for path, text in sources.items():
        rel = os.path.relpath(path, os.path.dirname(src_dir.rstrip("/")))
        for name, generics, body in functions(text):
            where = f"{rel}:{name}"
            params = type_params(generics)
            bindings = {var: ty for var, ty in API_BINDING.findall(body)}
            erased = ERASE.findall(body)
            applies = "PatchParams::apply" in body
            for var, method in CALL.findall(body):
                if var not in bindings or method not in METHODS:
                    continue
                verbs, sub = METHODS[method]
                if method == "patch" and applies:
                    verbs = ["patch", "create"]
                kind = last_segment(bindings[var])
                if kind == "DynamicObject" and erased:
                    kind = last_segment(erased[0])
                if kind in params:
                    generic.setdefault(name, []).append((verbs, sub, where))
                else:
                    need(kind, verbs, sub, where)
            # Watches of the controller.
            for var in re.findall(r"(?:Controller::new|\bwatcher)\(\s*(\w+)", body):
                if var in bindings:
                    need(last_segment(bindings[var]), ["list", "watch"], "", where + " (watch)")
            for kind in re.findall(r"\.owns\(\s*Api::<\s*([\w:]+)\s*>", body):
                need(last_segment(kind), ["list", "watch"], "", where + " (owns)")
            # Label-selected watches feeding the caches (reconcile::watched, watched_meta).
            for kind in re.findall(r"\bwatched(?:_meta)?::<\s*([\w:]+)\s*>\s*\(", body):
                need(last_segment(kind), ["list", "watch"], "", where + " (watch)")
            if "Recorder::new" in body:
                for v in ("create", "patch"):
                    needs.setdefault(("events.k8s.io", "events", v), []).append(where + " (events)")
    # Generic helpers, attributed to their call sites.
    for path, text in sources.items():
        rel = os.path.relpath(path, os.path.dirname(src_dir.rstrip("/")))
        for fname, calls in generic.items():
            for kind in re.findall(r"\b" + re.escape(fname) + r"::<\s*([\w:]+)\s*>\s*\(", text):
                for verbs, sub, where in calls:
                    need(last_segment(kind), verbs, sub, f"{rel} -> {where}")
    # Roles the operator creates: it must hold what they grant.
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', "\n".join(sources.values())))
    for path, text in sources.items():
        if "PolicyRule {" not in text:
            continue
        rel = os.path.relpath(path, os.path.dirname(src_dir.rstrip("/")))
        for block in re.findall(r"PolicyRule\s*\{(.*?)\n\s*\}\]?\)?,?\n", text, re.S):
            groups = re.search(r"api_groups:\s*Some\(vec!\[(.*?)\]\)", block, re.S)
            resources = re.search(r"resources:\s*Some\(vec!\[(.*?)\]\)", block, re.S)
            verbs = re.search(r"verbs:\s*vec!\[(.*?)\]", block, re.S)
            if not (groups and resources and verbs):
                problems.append(f"{rel}: cannot read a PolicyRule the operator builds; check_rbac.py needs updating")
                continue

            def values(s):
                out = re.findall(r'"([^"]*)"', s)
                out += [consts[c] for c in re.findall(r"\b([A-Z][A-Z_]+)\b", s) if c in consts]
                return out

            for g in values(groups.group(1)):
                for r in values(resources.group(1)):
                    for v in values(verbs.group(1)):
                        needs.setdefault((g, r, v), []).append(f"{rel} (a Role it grants)")
    return needs, problems


def granted(rendered):
    """{(group, resource, verb): kind of the role granting it} from ClusterRoles and Roles."""
    out = {}
    with open(rendered) as f:
        for doc in yaml.safe_load_all(f):
            if not doc or doc.get("kind") not in ("ClusterRole", "Role"):
                continue
            for rule in doc.get("rules", []):
                for g in rule.get("apiGroups", []):
                    for r in rule.get("resources", []):
                        for v in rule.get("verbs", []):
                            out.setdefault((g, r, v), set()).add(doc["kind"])
    return out


def label(key):
    group, resource, verb = key
    return f"{verb} {resource}" + (f".{group}" if group else "")


def compare(needs, have):
    """Errors: needed permissions the chart lacks, granted ones nothing needs."""
    errors = []
    for key in sorted(needs):
        if any(k[:2] == key[:2] and k[2] == "*" for k in have):
            errors.append(f"{label(key)}: the chart grants '*' verbs; name them")
        scope = "Role" if key[:2] in OWN_NAMESPACE else "ClusterRole"
        if scope not in have.get(key, set()):
            errors.append(f"{label(key)}: needed by {needs[key][0]} but the chart's {scope} does not grant it")
    for key in sorted(have):
        if key not in needs:
            errors.append(f"{label(key)}: granted by the chart's {'/'.join(sorted(have[key]))} "
                          "but no operator call needs it")
    return errors


def self_test(needs, have):
    """The comparison catches a missing and a surplus permission."""
    some = sorted(needs)[0]
    fewer = {k: v for k, v in have.items() if k != some}
    more = dict(have)
    more[("", "nodes", "list")] = {"ClusterRole"}
    return any(label(some) in e for e in compare(needs, fewer)) and any(
        "list nodes" in e for e in compare(needs, more)
    )


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    rendered, src = sys.argv[1:]
    needs, problems = scan(src)
    if not needs:
        print(f"ERROR rbac: found no API call in {src}; is it the operator's source?")
        return 1
    have = granted(rendered)
    errors = problems + compare(needs, have)
    if not self_test(needs, have):
        errors.append("self-test: the comparison missed a removed or an added permission")
    for e in errors:
        print(f"ERROR rbac: {e}")
    print(f"rbac: {len(needs)} permission(s) the operator needs, {len(have)} granted, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
