#!/usr/bin/env python3
"""Validates Kubernetes manifests, DataClusters included, without an API server.

usage: validate_manifests.py --crd CRD.yaml [--crd ...] [-k 1.35.0] [--expect-errors] FILE...

Every YAML document in every FILE is checked:
  * a custom resource whose group/version/kind one of the `--crd` files defines is
    checked against that CRD's openAPIV3Schema with `jsonschema`, the way the API
    server's structural schema treats it: `nullable` admits null,
    `x-kubernetes-int-or-string` admits both, and unknown fields are errors
    (as with `kubectl apply`'s default strict field validation) unless the schema
    preserves them. CEL rules (`x-kubernetes-validations`) are not evaluated;
  * anything else is checked with kubernetes-validate (strict) for the given
    Kubernetes version; a kind it has no schema for is an error, not a warning.

With --expect-errors, every document must fail (a self-test of the checker on
known-bad manifests); the exit code is 0 only if each one was caught.
Exit code 1 on any failure, with one line per problem naming file, object and path.
"""
import argparse
import re
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv


class Loader(yaml.SafeLoader):
    """Keeps timestamps as strings, as the API server receives them."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}

# metadata.name of a namespaced custom resource whose children are Services:
# an RFC 1035 label (Service names must be).
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# Keywords of OpenAPI v3 schemas that hold sub-schemas.
SCHEMA_MAPS = ("properties", "patternProperties")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SCHEMA_ONE = ("items", "not", "additionalProperties")


def structural(node):
    """An OpenAPI v3 schema of a CRD as the equivalent JSON Schema (draft 7)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in SCHEMA_MAPS:
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in SCHEMA_LISTS:
            out[key] = [structural(sub) for sub in value]
        elif key in SCHEMA_ONE and isinstance(value, dict):
            out[key] = structural(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for field in ("apiVersion", "kind", "metadata"):
            props.setdefault(field, {})
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if node.get("nullable"):
        # Widening the type (rather than wrapping in anyOf) keeps error messages
        # pointing at the offending nested field.
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def load_crds(paths):
    """(group, version, kind) -> (validator, scope) for every served version."""
    known = {}
    for path in paths:
        for crd in load_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                schema = structural(version["schema"]["openAPIV3Schema"])
                # The API server checks these itself; the CRD schema leaves them out.
                props = schema.setdefault("properties", {})
                props["apiVersion"] = {"type": "string"}
                props["kind"] = {"type": "string"}
                props["metadata"] = {"type": "object"}
                key = (spec["group"], version["name"], spec["names"]["kind"])
                known[key] = (jsonschema.Draft7Validator(schema), spec["scope"])
    return known


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=Loader) if d]


def describe(doc):
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{doc.get('kind', '?')}/{name}"


def check_custom(doc, validator, scope):
    """Problems of one custom resource, as (path, message) pairs."""
    problems = []
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        problems.append(("metadata.name", "is required"))
    elif len(name) > 63 or not DNS_LABEL.match(name):
        problems.append(("metadata.name", f"{name!r} is not a DNS label (lowercase letters, digits, '-', at most 63)"))
    if scope == "Namespaced" and "namespace" in meta and not DNS_LABEL.match(str(meta["namespace"])):
        problems.append(("metadata.namespace", f"{meta['namespace']!r} is not a DNS label"))
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in e.absolute_path) or "(root)"
        problems.append((where, e.message))
    return problems


def check_builtin(doc, version):
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(root)"
        return [(where, e.message)]
    except kv.SchemaNotFoundError:
        return [("(root)", f"no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {version}"
                 " (a typo in apiVersion or kind, or a custom resource whose CRD was not given with --crd)")]
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crd", action="append", default=[], help="CRD file (repeatable)")
    ap.add_argument("-k", "--kubernetes-version", default="1.35.0")
    ap.add_argument("--expect-errors", action="store_true", help="every document must fail")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    if kv.major_minor(args.kubernetes_version) not in {kv.major_minor(v) for v in kv.all_versions()}:
        print(f"FATAL kubernetes-validate has no schemas for Kubernetes {args.kubernetes_version}")
        return 2
    crds = load_crds(args.crd)
    docs, failed, caught = 0, 0, 0
    for path in args.files:
        try:
            loaded = load_docs(path)
        except (OSError, yaml.YAMLError) as e:
            print(f"ERROR {path}: cannot read: {e}")
            failed += 1
            continue
        if not loaded:
            print(f"ERROR {path}: no Kubernetes object in the file")
            failed += 1
            continue
        for doc in loaded:
            docs += 1
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                problems = [("(root)", "not a Kubernetes object (apiVersion and kind are required)")]
            else:
                group, _, version = doc["apiVersion"].rpartition("/")
                custom = crds.get((group, version, doc["kind"]))
                if custom:
                    problems = check_custom(doc, *custom)
                else:
                    problems = check_builtin(doc, args.kubernetes_version)
            if args.expect_errors:
                if problems:
                    caught += 1
                    where, message = problems[0]
                    print(f"ok    {path}: {describe(doc)} rejected as expected: {where}: {message}")
                else:
                    failed += 1
                    print(f"ERROR {path}: {describe(doc)} is invalid on purpose but passed validation")
            elif problems:
                failed += 1
                for where, message in problems:
                    print(f"ERROR {path}: {describe(doc)}: {where}: {message}")
            else:
                print(f"ok    {path}: {describe(doc)}")
    verdict = "caught" if args.expect_errors else "valid"
    good = caught if args.expect_errors else docs - failed
    print(f"{good} of {docs} document(s) {verdict} (Kubernetes {args.kubernetes_version}, {len(crds)} custom kind(s))")
    return 1 if failed or docs == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
