//! The workload controllers, as one loop woken by every change:
//! Deployment → ReplicaSets (rolling update with maxSurge / maxUnavailable, or
//! Recreate) → Pods; StatefulSet → ordinal Pods (OrderedReady or Parallel;
//! RollingUpdate with partition and maxUnavailable, or OnDelete). Status fields
//! are written as the real controllers write them (replicas, readyReplicas,
//! availableReplicas, updatedReplicas, currentRevision / updateRevision,
//! observedGeneration, conditions). `minReadySeconds` is not simulated (ready
//! is available) and there are no ControllerRevision objects.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::Sim;
use crate::api::{internal, meta_str, now};
use crate::fields::canonical;
use crate::selectors::LabelSelector;

const MANAGER: &str = "kube-controller-manager";

/// A short stable hash of a pod template (the `pod-template-hash` /
/// `controller-revision-hash` label values).
pub fn template_hash(template: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in canonical(template).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10).map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char).collect()
}

fn uid(o: &Value) -> &str {
    meta_str(o, "uid").unwrap_or_default()
}

fn name(o: &Value) -> &str {
    meta_str(o, "name").unwrap_or_default()
}

fn controlled_by<'a>(all: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let u = uid(owner);
    all.iter()
        .filter(|o| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == u && r["controller"] == true))
        })
        .collect()
}

fn terminating(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn int(o: &Value, p: &str, default: i64) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(default)
}

/// `maxSurge` / `maxUnavailable` as a count of `replicas` (percentages
/// round up for surge, down for unavailable, as the real controller does).
fn int_or_percent(v: Option<&Value>, replicas: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) if s.ends_with('%') => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up { (p * replicas + 99) / 100 } else { p * replicas / 100 }
        }
        Some(Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn pod_from_template(template: &Value, pod_name: &str, ns: &str, labels: Value, owner: Value) -> Value {
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    meta["name"] = json!(pod_name);
    meta["namespace"] = json!(ns);
    meta["labels"] = labels;
    meta["ownerReferences"] = json!([owner]);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

fn template_labels(template: &Value) -> serde_json::Map<String, Value> {
    template.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default()
}

fn suffix() -> String {
    crate::api::random_suffix()
}

/// Keeps a condition's transition time when its status did not change.
fn condition(old: &Value, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let (transition, update) = match prev {
        Some(p) if p["status"] == status => (
            p["lastTransitionTime"].clone(),
            if p["reason"] == reason { p["lastUpdateTime"].clone() } else { json!(now()) },
        ),
        _ => (json!(now()), json!(now())),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": transition, "lastUpdateTime": update})
}

/// A Warning event on `owner`, aggregated as the real event recorder does
/// (one object per owner and reason; `count` and `lastTimestamp` move on at
/// most once a second).
pub fn warn(sim: &Sim, owner: &Value, kind: &str, component: &str, reason: &str, message: &str) {
    let ns = meta_str(owner, "namespace").unwrap_or_default();
    let ev_name = format!("{}.{}", name(owner), reason.to_lowercase());
    let t = now();
    if sim.store.get("events", ns, &ev_name).is_some() {
        let _ = internal::modify(sim, "", "events", ns, &ev_name, None, component, |e| {
            if e["lastTimestamp"] != json!(t) || e["message"] != json!(message) {
                e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
                e["lastTimestamp"] = json!(t);
                e["message"] = json!(message);
            }
        });
        return;
    }
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": ev_name, "namespace": ns},
        "involvedObject": {"apiVersion": "apps/v1", "kind": kind, "name": name(owner), "namespace": ns, "uid": uid(owner)},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "firstTimestamp": t, "lastTimestamp": t,
        "source": {"component": component}, "reportingComponent": component,
    });
    let _ = internal::create(sim, "", "events", ns, ev, component);
}

fn replica_sets(sim: &Sim) {
    let (sets, _) = sim.store.list("replicasets.apps", None);
    let (pods, _) = sim.store.list("pods", None);
    for rs in &sets {
        let ns = meta_str(rs, "namespace").unwrap_or_default();
        let want = int(rs, "/spec/replicas", 1);
        let mut mine: Vec<&Value> = controlled_by(&pods, rs).into_iter().filter(|p| !terminating(p)).collect();
        let have = mine.len() as i64;
        if !terminating(rs) {
            if have < want {
                let mut labels = template_labels(&rs["spec"]["template"]);
                if let Some(h) = rs.pointer("/metadata/labels/pod-template-hash") {
                    labels.insert("pod-template-hash".into(), h.clone());
                }
                for _ in have..want {
                    let pod = pod_from_template(
                        &rs["spec"]["template"],
                        &format!("{}-{}", name(rs), suffix()),
                        ns,
                        Value::Object(labels.clone()),
                        owner_ref(rs, "ReplicaSet", "apps/v1"),
                    );
                    if let Err(e) = internal::create(sim, "", "pods", ns, pod, MANAGER) {
                        tracing::warn!(replicaset = name(rs), error = %e, "pod create failed");
                        warn(
                            sim,
                            rs,
                            "ReplicaSet",
                            "replicaset-controller",
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                        );
                        break;
                    }
                }
            } else if have > want {
                // Not-ready pods go first, then the newest.
                mine.sort_by_key(|p| {
                    (pod_ready(p), std::cmp::Reverse(meta_str(p, "creationTimestamp").unwrap_or_default().to_string()))
                });
                for p in mine.iter().take((have - want) as usize) {
                    let _ = internal::delete(sim, "", "pods", ns, name(p));
                }
            }
        }
        let live: Vec<&Value> = controlled_by(&pods, rs).into_iter().filter(|p| !terminating(p)).collect();
        let ready = live.iter().filter(|p| pod_ready(p)).count() as i64;
        let gen_ = int(rs, "/metadata/generation", 1);
        let _ = internal::modify(sim, "apps", "replicasets", ns, name(rs), Some("status"), MANAGER, |o| {
            o["status"] = json!({
                "replicas": live.len(),
                "fullyLabeledReplicas": live.len(),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": gen_,
            });
        });
    }
}

fn deployments(sim: &Sim) {
    let (deps, _) = sim.store.list("deployments.apps", None);
    let (sets, _) = sim.store.list("replicasets.apps", None);
    for d in &deps {
        if terminating(d) {
            continue;
        }
        let ns = meta_str(d, "namespace").unwrap_or_default();
        let replicas = int(d, "/spec/replicas", 1);
        let template = &d["spec"]["template"];
        let hash = template_hash(template);
        let owned = controlled_by(&sets, d);
        let new_rs = owned
            .iter()
            .find(|rs| rs.pointer("/metadata/labels/pod-template-hash").and_then(Value::as_str) == Some(hash.as_str()));
        let new_rs = match new_rs {
            Some(rs) => (*rs).clone(),
            None => {
                let mut labels = template_labels(template);
                labels.insert("pod-template-hash".into(), json!(hash));
                let mut tmpl = template.clone();
                tmpl["metadata"]["labels"] = Value::Object(labels.clone());
                let mut selector = d["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": format!("{}-{}", name(d), hash),
                        "namespace": ns,
                        "labels": labels,
                        "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")],
                        "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string()},
                    },
                    "spec": {"replicas": 0, "selector": selector, "template": tmpl},
                });
                match internal::create(sim, "apps", "replicasets", ns, rs, MANAGER) {
                    Ok(rs) => rs,
                    Err(e) => {
                        tracing::warn!(deployment = name(d), error = %e, "replicaset create failed");
                        continue;
                    }
                }
            }
        };
        let olds: Vec<&&Value> = owned.iter().filter(|rs| uid(rs) != uid(&new_rs)).collect();
        let old_total: i64 = olds.iter().map(|rs| int(rs, "/spec/replicas", 0)).sum();
        let old_ready: i64 = olds.iter().map(|rs| int(rs, "/status/readyReplicas", 0)).sum();
        let new_spec = int(&new_rs, "/spec/replicas", 0);
        let new_ready = int(&new_rs, "/status/readyReplicas", 0);
        let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        let ru = d.pointer("/spec/strategy/rollingUpdate");
        let surge = int_or_percent(ru.and_then(|r| r.get("maxSurge")), replicas, true, 1);
        let unavailable = int_or_percent(ru.and_then(|r| r.get("maxUnavailable")), replicas, false, 0);
        let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable };
        let scale = |rs: &Value, n: i64| {
            if int(rs, "/spec/replicas", 0) != n {
                let _ = internal::modify(sim, "apps", "replicasets", ns, name(rs), None, MANAGER, |o| {
                    o["spec"]["replicas"] = json!(n);
                });
            }
        };
        if recreate {
            let old_pods: i64 = olds.iter().map(|rs| int(rs, "/status/replicas", 0)).sum();
            for rs in &olds {
                scale(rs, 0);
            }
            if old_pods == 0 {
                scale(&new_rs, replicas);
            }
        } else {
            // Scale up the new set within the surge...
            let target_new = replicas.min(new_spec.max(replicas + surge - old_total)).max(0);
            if target_new != new_spec {
                scale(&new_rs, target_new);
            }
            // ...and down the old ones: their unready pods at once, ready ones
            // while enough stay available.
            let min_available = replicas - unavailable;
            let mut can_remove = (old_ready + new_ready - min_available).max(0);
            for rs in &olds {
                let spec = int(rs, "/spec/replicas", 0);
                let not_ready = (spec - int(rs, "/status/readyReplicas", 0)).max(0);
                let remove = (not_ready + can_remove).min(spec);
                if remove > 0 {
                    scale(rs, spec - remove);
                    can_remove = (can_remove - (remove - not_ready).max(0)).max(0);
                }
            }
        }
        // Status from the sets as they are now.
        let (sets_now, _) = sim.store.list("replicasets.apps", Some(ns));
        let mine = controlled_by(&sets_now, d);
        let total: i64 = mine.iter().map(|rs| int(rs, "/status/replicas", 0)).sum();
        let ready: i64 = mine.iter().map(|rs| int(rs, "/status/readyReplicas", 0)).sum();
        let updated = mine
            .iter()
            .find(|rs| rs.pointer("/metadata/labels/pod-template-hash").and_then(Value::as_str) == Some(hash.as_str()))
            .map_or(0, |rs| int(rs, "/status/replicas", 0));
        let gen_ = int(d, "/metadata/generation", 1);
        let available_ok = ready >= replicas - unavailable;
        let complete = updated == replicas && total == replicas && ready == replicas;
        let _ = internal::modify(sim, "apps", "deployments", ns, name(d), Some("status"), MANAGER, |o| {
            let conds = json!([
                condition(
                    o,
                    "Available",
                    available_ok,
                    if available_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    if available_ok {
                        "Deployment has minimum availability."
                    } else {
                        "Deployment does not have minimum availability."
                    }
                ),
                condition(
                    o,
                    "Progressing",
                    true,
                    if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                    &format!("ReplicaSet \"{}-{}\" is progressing.", name(d), hash)
                ),
            ]);
            let mut st = json!({
                "observedGeneration": gen_,
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": conds,
            });
            if total - ready > 0 {
                st["unavailableReplicas"] = json!(total - ready);
            }
            o["status"] = st;
        });
    }
}

fn ordinal(sts: &Value, pod: &Value) -> Option<i64> {
    name(pod).strip_prefix(&format!("{}-", name(sts)))?.parse().ok()
}

fn stateful_sets(sim: &Sim) {
    let (all, _) = sim.store.list("statefulsets.apps", None);
    let (pods, _) = sim.store.list("pods", None);
    for sts in &all {
        if terminating(sts) {
            continue;
        }
        let ns = meta_str(sts, "namespace").unwrap_or_default();
        let replicas = int(sts, "/spec/replicas", 1);
        let template = &sts["spec"]["template"];
        let revision = format!("{}-{}", name(sts), template_hash(template));
        let parallel = sts.pointer("/spec/podManagementPolicy").and_then(Value::as_str) == Some("Parallel");
        let on_delete = sts.pointer("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
        let partition = int(sts, "/spec/updateStrategy/rollingUpdate/partition", 0);
        let max_unavailable =
            int_or_percent(sts.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"), replicas, false, 1).max(1);
        let mut mine: Vec<(i64, &Value)> =
            controlled_by(&pods, sts).into_iter().filter_map(|p| ordinal(sts, p).map(|o| (o, p))).collect();
        mine.sort_by_key(|(o, _)| *o);
        let at = |i: i64| mine.iter().find(|(o, _)| *o == i).map(|(_, p)| *p);
        let healthy = |p: &Value| pod_ready(p) && !terminating(p);
        // Create missing ordinals (in order, each after the previous is ready, unless Parallel).
        for i in 0..replicas {
            if at(i).is_some() {
                continue;
            }
            if !parallel && (0..i).any(|j| !at(j).is_some_and(healthy)) {
                break;
            }
            let mut labels = template_labels(template);
            let pod_name = format!("{}-{i}", name(sts));
            labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
            labels.insert("controller-revision-hash".into(), json!(revision));
            labels.insert("apps.kubernetes.io/pod-index".into(), json!(i.to_string()));
            let mut pod = pod_from_template(
                template,
                &pod_name,
                ns,
                Value::Object(labels),
                owner_ref(sts, "StatefulSet", "apps/v1"),
            );
            pod["spec"]["hostname"] = json!(pod_name);
            if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str) {
                pod["spec"]["subdomain"] = json!(svc);
            }
            if let Err(e) = internal::create(sim, "", "pods", ns, pod, MANAGER) {
                tracing::warn!(statefulset = name(sts), error = %e, "pod create failed");
                warn(
                    sim,
                    sts,
                    "StatefulSet",
                    "statefulset-controller",
                    "FailedCreate",
                    &format!("create Pod {pod_name} in StatefulSet {} failed error: {e}", name(sts)),
                );
                break;
            }
            if !parallel {
                break;
            }
        }
        // Remove ordinals past the end (highest first; one at a time unless Parallel).
        let extra: Vec<&Value> = mine.iter().rev().filter(|(o, _)| *o >= replicas).map(|(_, p)| *p).collect();
        let all_healthy_below = mine.iter().filter(|(o, _)| *o < replicas).all(|(_, p)| healthy(p));
        for p in &extra {
            if terminating(p) {
                if !parallel {
                    break;
                }
                continue;
            }
            if !parallel && !all_healthy_below {
                break;
            }
            let _ = internal::delete(sim, "", "pods", ns, name(p));
            if !parallel {
                break;
            }
        }
        // Rolling update: replace outdated pods at or above the partition, highest first.
        if !on_delete {
            let in_range: Vec<&(i64, &Value)> = mine.iter().filter(|(o, _)| *o < replicas).collect();
            let unavailable = (replicas - in_range.iter().filter(|(_, p)| healthy(p)).count() as i64).max(0);
            let mut budget = (max_unavailable - unavailable).max(0);
            if !parallel && max_unavailable <= 1 {
                budget = if unavailable == 0 { 1 } else { 0 };
            }
            for (o, p) in in_range.iter().rev() {
                if budget == 0 {
                    break;
                }
                let outdated = p.pointer("/metadata/labels/controller-revision-hash").and_then(Value::as_str)
                    != Some(revision.as_str());
                if *o >= partition && outdated && !terminating(p) {
                    let _ = internal::delete(sim, "", "pods", ns, name(p));
                    budget -= 1;
                }
            }
        }
        let (pods_now, _) = sim.store.list("pods", Some(ns));
        let live: Vec<&Value> = controlled_by(&pods_now, sts).into_iter().filter(|p| !terminating(p)).collect();
        let ready = live.iter().filter(|p| pod_ready(p)).count() as i64;
        let updated = live
            .iter()
            .filter(|p| {
                p.pointer("/metadata/labels/controller-revision-hash").and_then(Value::as_str)
                    == Some(revision.as_str())
            })
            .count() as i64;
        let current_revision = if updated == live.len() as i64 && live.len() as i64 == replicas {
            revision.clone()
        } else {
            sts.pointer("/status/currentRevision").and_then(Value::as_str).unwrap_or(&revision).to_string()
        };
        let current = live
            .iter()
            .filter(|p| {
                p.pointer("/metadata/labels/controller-revision-hash").and_then(Value::as_str)
                    == Some(current_revision.as_str())
            })
            .count() as i64;
        let gen_ = int(sts, "/metadata/generation", 1);
        let _ = internal::modify(sim, "apps", "statefulsets", ns, name(sts), Some("status"), MANAGER, |o| {
            o["status"] = json!({
                "observedGeneration": gen_,
                "replicas": live.len(),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": current,
                "updatedReplicas": updated,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            });
        });
    }
}

/// Pods of a label selector object in a namespace (for Services, PDBs).
pub fn selected_pods(sim: &Sim, ns: &str, selector: &Value) -> Vec<Value> {
    let sel = LabelSelector::from_object(&json!({"matchLabels": selector}));
    let (pods, _) = sim.store.list("pods", Some(ns));
    pods.into_iter().filter(|p| !sel.is_empty() && sel.matches(p)).collect()
}

/// Endpoints and an EndpointSlice per Service with a selector: the selected
/// pods' IPs, ready ones as addresses, the rest as not ready. Both carry an
/// owner reference to the Service (the real endpoints controller deletes
/// Endpoints itself; here the garbage collector does).
fn endpoints(sim: &Sim) {
    let (services, _) = sim.store.list("services", None);
    for svc in &services {
        let Some(selector) = svc.pointer("/spec/selector").filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
        else {
            continue;
        };
        if terminating(svc) {
            continue;
        }
        let ns = meta_str(svc, "namespace").unwrap_or_default();
        let pods: Vec<Value> = selected_pods(sim, ns, selector)
            .into_iter()
            .filter(|p| !terminating(p) && p.pointer("/status/podIP").is_some())
            .collect();
        let not_ready_too = svc.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true);
        let addr = |p: &Value| json!({"ip": p["status"]["podIP"], "nodeName": crate::kubelet::NODE, "targetRef": {"kind": "Pod", "name": name(p), "namespace": ns, "uid": uid(p)}});
        let ready: Vec<Value> = pods.iter().filter(|p| not_ready_too || pod_ready(p)).map(addr).collect();
        let unready: Vec<Value> = pods.iter().filter(|p| !(not_ready_too || pod_ready(p))).map(addr).collect();
        let ports: Vec<Value> = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let target = p
                            .get("targetPort")
                            .filter(|t| t.is_number())
                            .or(p.get("port"))
                            .cloned()
                            .unwrap_or(Value::Null);
                        let mut o =
                            json!({"port": target, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
                        if let Some(n) = p.get("name") {
                            o["name"] = n.clone();
                        }
                        o
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !unready.is_empty() {
            subset["notReadyAddresses"] = json!(unready);
        }
        let subsets = if ready.is_empty() && unready.is_empty() { json!([]) } else { json!([subset]) };
        let owner = owner_ref(svc, "Service", "v1");
        let labels = svc.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name(svc), "namespace": ns, "labels": labels, "ownerReferences": [owner]}, "subsets": subsets});
        let mut slice_labels = labels.clone();
        slice_labels["kubernetes.io/service-name"] = json!(name(svc));
        slice_labels["endpointslice.kubernetes.io/managed-by"] = json!("endpointslice-controller.k8s.io");
        let slice_endpoints: Vec<Value> = pods
            .iter()
            .map(|p| {
                let r = not_ready_too || pod_ready(p);
                json!({"addresses": [p["status"]["podIP"]], "conditions": {"ready": r, "serving": r, "terminating": false},
                       "nodeName": crate::kubelet::NODE, "targetRef": {"kind": "Pod", "name": name(p), "namespace": ns, "uid": uid(p)}})
            })
            .collect();
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": format!("{}-sim", name(svc)), "namespace": ns, "labels": slice_labels, "ownerReferences": [owner_ref(svc, "Service", "v1")]},
            "endpoints": slice_endpoints, "ports": ports});
        for (group, plural, obj) in [("", "endpoints", ep), ("discovery.k8s.io", "endpointslices", slice)] {
            let oname = meta_str(&obj, "name").unwrap_or_default().to_string();
            let key = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
            if sim.store.get(&key, ns, &oname).is_some() {
                let _ = internal::modify(sim, group, plural, ns, &oname, None, MANAGER, |o| {
                    for f in ["subsets", "endpoints", "ports"] {
                        if let Some(v) = obj.get(f) {
                            o[f] = v.clone();
                        }
                    }
                });
            } else {
                let _ = internal::create(sim, group, plural, ns, obj, MANAGER);
            }
        }
    }
}

/// One pass of every controller.
pub fn pass(sim: &Sim) {
    deployments(sim);
    replica_sets(sim);
    stateful_sets(sim);
    endpoints(sim);
}

/// Runs the controllers until the simulator stops.
pub async fn run(sim: Arc<Sim>) {
    let mut rx = sim.store.follow();
    loop {
        match rx.recv().await {
            Ok(c)
                if !matches!(
                    c.key.as_str(),
                    "pods" | "services" | "deployments.apps" | "replicasets.apps" | "statefulsets.apps"
                ) =>
            {
                continue;
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        for _ in 0..20 {
            while rx.try_recv().is_ok() {}
            let before = sim.store.current_rv();
            pass(&sim);
            if sim.store.current_rv() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_changes_with_the_template() {
        let a = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}});
        let b = json!({"spec": {"containers": [{"name": "c", "image": "y"}]}});
        assert_eq!(template_hash(&a), template_hash(&a.clone()));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, true, 0), 1);
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, false, 0), 0);
        assert_eq!(int_or_percent(Some(&json!(2)), 3, false, 0), 2);
    }
}
