//! Discovery documents: `/version`, `/api`, `/apis`, per group-version
//! resource lists, the aggregated (`apidiscovery.k8s.io/v2`) form, and minimal
//! OpenAPI documents.

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceType};

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": "v1.35.0-quiver-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg.groups().iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let groups = reg.groups();
    let vs = groups.get(name)?;
    let mut doc = group_doc(name, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn served_in(reg: &Registry, group: &str, version: &str) -> Vec<std::sync::Arc<ResourceType>> {
    reg.all().into_iter().filter(|t| t.group == group && t.versions.iter().any(|v| v == version)).collect()
}

/// `/api/v1`, `/apis/<group>/<version>`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = served_in(reg, group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if t.group.is_empty() && t.kind == "Pod" {
            resources.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
        if t.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// The content type of aggregated discovery.
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the `Accept` header prefers aggregated discovery (v2).
pub fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2") && !a.contains("v=v2beta1"))
}

/// Aggregated discovery for `/api` (core) or `/apis` (every other group).
pub fn aggregated(reg: &Registry, core: bool) -> Value {
    let mut items = Vec::new();
    let group_names: Vec<(String, Vec<String>)> =
        if core { vec![(String::new(), vec!["v1".to_string()])] } else { reg.groups().into_iter().collect() };
    for (g, versions) in group_names {
        let mut vdocs = Vec::new();
        for v in &versions {
            let mut resources = Vec::new();
            for t in served_in(reg, &g, v) {
                let mut subs = Vec::new();
                if t.status_subresource {
                    subs.push(json!({
                        "subresource": "status",
                        "responseKind": {"group": t.group, "version": v, "kind": t.kind},
                        "verbs": ["get", "patch", "update"],
                    }));
                }
                if t.scale.is_some() {
                    subs.push(json!({
                        "subresource": "scale",
                        "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                        "verbs": ["get", "patch", "update"],
                    }));
                }
                let mut r = json!({
                    "resource": t.plural,
                    "responseKind": {"group": t.group, "version": v, "kind": t.kind},
                    "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": t.singular,
                    "verbs": t.verbs(),
                });
                if !t.short_names.is_empty() {
                    r["shortNames"] = json!(t.short_names);
                }
                if !t.categories.is_empty() {
                    r["categories"] = json!(t.categories);
                }
                if !subs.is_empty() {
                    r["subresources"] = json!(subs);
                }
                resources.push(r);
            }
            vdocs.push(json!({"version": v, "resources": resources, "freshness": "Current"}));
        }
        let mut item = json!({"metadata": {"creationTimestamp": null}, "versions": vdocs});
        if !g.is_empty() {
            item["metadata"]["name"] = json!(g);
        }
        items.push(item);
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `/openapi/v2`: a valid, empty Swagger document. Clients fall back to their
/// built-in knowledge of the types (kubectl) or skip schema validation.
pub fn openapi_v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": {},
        "definitions": {},
    })
}

/// The protobuf form of [`openapi_v2`] (kubectl asks for it): a gnostic
/// `openapi_v2.Document` with `swagger` (field 1) and `info.title` (field 2 / 1).
pub fn openapi_v2_protobuf() -> Vec<u8> {
    let title = b"Kubernetes";
    let mut info = vec![0x0a, title.len() as u8];
    info.extend_from_slice(title);
    let mut doc = vec![0x0a, 3];
    doc.extend_from_slice(b"2.0");
    doc.push(0x12);
    doc.push(info.len() as u8);
    doc.extend_from_slice(&info);
    doc
}

/// The content type of [`openapi_v2_protobuf`].
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v3`: the index, with no group-versions listed.
pub fn openapi_v3() -> Value {
    json!({ "paths": {} })
}
