//! `meta.k8s.io/v1` Table output for `kubectl get`: a few columns per built-in
//! kind, and a CRD's `additionalPrinterColumns`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Whether the `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table"))
}

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Include {
    /// Nothing.
    None,
    /// PartialObjectMetadata (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// From the query parameter.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

struct Col {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    path: Option<String>,
    compute: Option<fn(&Value) -> Value>,
}

fn col(name: &str, kind: &str, f: fn(&Value) -> Value) -> Col {
    Col {
        name: name.into(),
        kind: kind.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        path: None,
        compute: Some(f),
    }
}

fn name_col() -> Col {
    let mut c = col("Name", "string", |o| o.pointer("/metadata/name").cloned().unwrap_or(Value::Null));
    c.format = "name".into();
    c.description = "Name must be unique within a namespace.".into();
    c
}

fn age_col() -> Col {
    col("Age", "string", |o| json!(age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))))
}

fn int_at(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn columns(rt: &ResourceType, version: &str) -> Vec<Col> {
    if let Some(crd) = &rt.crd {
        let mut cols = vec![name_col()];
        let printer = crd.get(version).map(|v| v.printer_columns.clone()).unwrap_or_default();
        if printer.is_empty() {
            cols.push(age_col());
        }
        for p in printer {
            cols.push(Col {
                name: p.get("name").and_then(Value::as_str).unwrap_or_default().into(),
                kind: p.get("type").and_then(Value::as_str).unwrap_or("string").into(),
                format: p.get("format").and_then(Value::as_str).unwrap_or_default().into(),
                description: p.get("description").and_then(Value::as_str).unwrap_or_default().into(),
                priority: p.get("priority").and_then(Value::as_i64).unwrap_or(0),
                path: p.get("jsonPath").and_then(Value::as_str).map(str::to_string),
                compute: None,
            });
        }
        return cols;
    }
    let mut cols = vec![name_col()];
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => {
            cols.push(col("Ready", "string", |o| {
                let st = o.pointer("/status/containerStatuses").and_then(Value::as_array);
                let total = o.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
                let ready = st.map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
                json!(format!("{ready}/{total}"))
            }));
            cols.push(col("Status", "string", |o| {
                let waiting = o.pointer("/status/containerStatuses/0/state/waiting/reason").and_then(Value::as_str);
                if o.pointer("/metadata/deletionTimestamp").is_some() {
                    return json!("Terminating");
                }
                json!(waiting.or(o.pointer("/status/phase").and_then(Value::as_str)).unwrap_or("Pending"))
            }));
            cols.push(col("Restarts", "integer", |o| {
                json!(
                    o.pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .map_or(0, |s| s.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum::<i64>())
                )
            }));
            cols.push(age_col());
            let mut ip = col("IP", "string", |o| o.pointer("/status/podIP").cloned().unwrap_or(json!("<none>")));
            ip.priority = 1;
            cols.push(ip);
        }
        ("apps", "Deployment") => {
            cols.push(col("Ready", "string", |o| {
                json!(format!("{}/{}", int_at(o, "/status/readyReplicas"), int_at(o, "/spec/replicas")))
            }));
            cols.push(col("Up-to-date", "integer", |o| json!(int_at(o, "/status/updatedReplicas"))));
            cols.push(col("Available", "integer", |o| json!(int_at(o, "/status/availableReplicas"))));
            cols.push(age_col());
        }
        ("apps", "StatefulSet") => {
            cols.push(col("Ready", "string", |o| {
                json!(format!("{}/{}", int_at(o, "/status/readyReplicas"), int_at(o, "/spec/replicas")))
            }));
            cols.push(age_col());
        }
        ("apps", "ReplicaSet") => {
            cols.push(col("Desired", "integer", |o| json!(int_at(o, "/spec/replicas"))));
            cols.push(col("Current", "integer", |o| json!(int_at(o, "/status/replicas"))));
            cols.push(col("Ready", "integer", |o| json!(int_at(o, "/status/readyReplicas"))));
            cols.push(age_col());
        }
        ("", "Service") => {
            cols.push(col("Type", "string", |o| o.pointer("/spec/type").cloned().unwrap_or(json!("ClusterIP"))));
            cols.push(col("Cluster-IP", "string", |o| {
                o.pointer("/spec/clusterIP").cloned().unwrap_or(json!("<none>"))
            }));
            cols.push(col("External-IP", "string", |_| json!("<none>")));
            cols.push(col("Port(s)", "string", |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter().map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))).collect()
                    })
                    .unwrap_or_default();
                json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") })
            }));
            cols.push(age_col());
        }
        ("", "Namespace") => {
            cols.push(col("Status", "string", |o| o.pointer("/status/phase").cloned().unwrap_or(json!("Active"))));
            cols.push(age_col());
        }
        ("", "Secret") => {
            cols.push(col("Type", "string", |o| o.pointer("/type").cloned().unwrap_or(json!("Opaque"))));
            cols.push(col("Data", "integer", |o| {
                json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len()))
            }));
            cols.push(age_col());
        }
        ("", "ConfigMap") => {
            cols.push(col("Data", "integer", |o| {
                json!(
                    o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())
                        + o.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len())
                )
            }));
            cols.push(age_col());
        }
        ("", "Event") => {
            // kubectl's event columns (no Name column first in its output, but
            // the Name cell is what it keys rows on; kept first here).
            cols.push(col("Last Seen", "string", |o| {
                json!(age(o
                    .get("lastTimestamp")
                    .and_then(Value::as_str)
                    .or(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))))
            }));
            cols.push(col("Type", "string", |o| o.get("type").cloned().unwrap_or(Value::Null)));
            cols.push(col("Reason", "string", |o| o.get("reason").cloned().unwrap_or(Value::Null)));
            cols.push(col("Object", "string", |o| {
                json!(format!(
                    "{}/{}",
                    o.pointer("/involvedObject/kind").and_then(Value::as_str).unwrap_or_default().to_lowercase(),
                    o.pointer("/involvedObject/name").and_then(Value::as_str).unwrap_or_default()
                ))
            }));
            cols.push(col("Message", "string", |o| o.get("message").cloned().unwrap_or(Value::Null)));
        }
        ("apiextensions.k8s.io", _) => {
            cols.push(col("Created At", "date", |o| {
                o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)
            }));
        }
        _ => cols.push(age_col()),
    }
    cols
}

/// A simple JSONPath (`.status.phase`, `.spec.items[0].name`) over an object.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let p = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    for seg in p.split('.').filter(|s| !s.is_empty()) {
        let (field, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let idx = idx.trim_end_matches(']');
            if let Ok(i) = idx.parse::<usize>() {
                cur = cur.get(i)?;
            } else {
                cur = cur.get(idx.trim_matches('\'').trim_matches('"'))?;
            }
        }
    }
    Some(cur)
}

/// kubectl's human duration ("5m", "3h20m", "2d").
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        if secs % 60 == 0 { format!("{minutes}m") } else { format!("{minutes}m{}s", secs % 60) }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        if minutes % 60 == 0 { format!("{hours}h") } else { format!("{hours}h{}m", minutes % 60) }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        if hours % 24 == 0 { format!("{days}d") } else { format!("{days}d{}h", hours % 24) }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

fn age(ts: Option<&str>) -> String {
    ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((Utc::now() - t.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn cell(c: &Col, obj: &Value) -> Value {
    if let Some(f) = c.compute {
        return f(obj);
    }
    let v = c.path.as_deref().and_then(|p| json_path(obj, p)).cloned();
    match (c.kind.as_str(), v) {
        (_, None) => Value::Null,
        ("date", Some(Value::String(s))) => json!(age(Some(&s))),
        (_, Some(Value::Array(a))) => json!(
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    o => o.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
        (_, Some(Value::Object(m))) => json!(Value::Object(m).to_string()),
        (_, Some(v)) => v,
    }
}

/// A Table of `objects` (already with kind/apiVersion set).
pub fn table(rt: &ResourceType, version: &str, objects: &[Value], rv: u64, include: Include, headers: bool) -> Value {
    let cols = columns(rt, version);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": cols.iter().map(|c| cell(c, o)).collect::<Vec<_>>() });
            match include {
                Include::None => {}
                Include::Object => row["object"] = o.clone(),
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": rv.to_string() },
        "rows": rows,
    });
    if headers {
        t["columnDefinitions"] = cols
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.kind,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect();
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5 + 60 * 3), "5h3m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }

    #[test]
    fn json_path_walks_fields_and_indices() {
        let o = json!({"status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&o, ".status.conditions[0].type"), Some(&json!("Ready")));
        assert_eq!(json_path(&o, ".status.missing"), None);
    }

    #[test]
    fn accept_header_selects_table_only_when_first() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }
}
