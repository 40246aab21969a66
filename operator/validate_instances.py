"""Validates DataCluster manifests against the CRD's openAPIV3Schema.

usage: validate_instances.py CRD.yaml MANIFEST.yaml...

The OpenAPI schema is turned into JSON Schema (`nullable` becomes a null type,
`x-kubernetes-*` keywords are dropped: int-or-string becomes integer|string), and
unknown fields are errors, as with `kubectl apply --validate=strict` (the API
server would otherwise prune them silently). CEL rules (`x-kubernetes-validations`)
are not evaluated here. Documents of other kinds in a file are skipped.
"""
import sys

import jsonschema
import yaml


class NoDatesLoader(yaml.SafeLoader):
    """YAML loader that keeps timestamps as strings, as the API server does."""


NoDatesLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def to_json_schema(s):
    if isinstance(s, list):
        return [to_json_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes-") or k == "nullable":
            continue
        if k in ("properties",):
            out[k] = {name: to_json_schema(sub) for name, sub in v.items()}
        else:
            out[k] = to_json_schema(v)
    if "properties" in s and "additionalProperties" not in s and not s.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        out["additionalProperties"] = False
    if s.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if s.get("nullable") and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
    return out


def main():
    crd_path, *manifests = sys.argv[1:]
    with open(crd_path) as f:
        crd = yaml.load(f, Loader=NoDatesLoader)
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = to_json_schema(version["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are checked by the API server itself.
    for field in ("apiVersion", "kind", "metadata"):
        schema["properties"].setdefault(field, {})
    validator = jsonschema.Draft7Validator(schema)
    checked, failures = 0, 0
    for path in manifests:
        with open(path) as f:
            docs = [d for d in yaml.load_all(f, Loader=NoDatesLoader) if d]
        for doc in docs:
            if doc.get("kind") != "DataCluster":
                continue
            checked += 1
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            for e in errors:
                failures += 1
                where = ".".join(str(p) for p in e.path) or "(root)"
                print(f"ERROR {path}: {where}: {e.message}")
    print(f"DataCluster schema: {checked} manifest(s) checked, {failures} error(s)")
    if checked == 0:
        print("ERROR no DataCluster manifest found")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
