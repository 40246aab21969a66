//! Defaults the real API server fills in for the built-in kinds (the ones
//! clients read back: Service cluster IPs, replicas, Secret `stringData`,
//! Namespace phase, CRD status). Every function is idempotent: it runs on
//! every write.

use base64::Engine;
use serde_json::{Value, json};

use crate::Sim;
use crate::resources::ResourceType;

fn default(obj: &mut Value, path: &[&str], v: Value) {
    let mut cur = obj;
    for (i, p) in path.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        let m = cur.as_object_mut().expect("object");
        if i == path.len() - 1 {
            m.entry(p.to_string()).or_insert(v);
            return;
        }
        cur = m.entry(p.to_string()).or_insert_with(|| json!({}));
    }
}

fn pod_spec(spec: &mut Value) {
    default(spec, &["restartPolicy"], json!("Always"));
    default(spec, &["terminationGracePeriodSeconds"], json!(30));
    default(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default(spec, &["schedulerName"], json!("default-scheduler"));
    default(spec, &["securityContext"], json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default(c, &["terminationMessagePath"], json!("/dev/termination-log"));
                default(c, &["terminationMessagePolicy"], json!("File"));
                let latest = c
                    .get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| !i.rsplit('/').next().unwrap_or(i).contains(':'));
                default(c, &["imagePullPolicy"], json!(if latest { "Always" } else { "IfNotPresent" }));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        default(p, &["protocol"], json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Fills in defaults for `obj` of type `rt`.
pub fn apply(sim: &Sim, rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                default(obj, &["status", "phase"], json!("Active"));
            }
            let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
            default(obj, &["metadata", "labels", "kubernetes.io/metadata.name"], name);
        }
        ("", "Secret") => {
            default(obj, &["type"], json!("Opaque"));
            if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
                for (k, v) in sd {
                    let enc = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
                    if !obj.get("data").is_some_and(Value::is_object) {
                        obj["data"] = json!({});
                    }
                    obj["data"][k] = json!(enc);
                }
            }
        }
        ("", "Service") => {
            default(obj, &["spec", "type"], json!("ClusterIP"));
            default(obj, &["spec", "sessionAffinity"], json!("None"));
            let external_name = obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            if !external_name {
                if obj.pointer("/spec/clusterIP").and_then(Value::as_str).is_none_or(str::is_empty) {
                    obj["spec"]["clusterIP"] = json!(sim.allocate_cluster_ip());
                }
                let ip = obj["spec"]["clusterIP"].clone();
                default(obj, &["spec", "clusterIPs"], json!([ip]));
                default(obj, &["spec", "ipFamilies"], json!(["IPv4"]));
                default(obj, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
                default(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
            }
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    default(p, &["protocol"], json!("TCP"));
                    let port = p.get("port").cloned().unwrap_or(Value::Null);
                    default(p, &["targetPort"], port);
                }
            }
            default(obj, &["status", "loadBalancer"], json!({}));
        }
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
            default(obj, &["status", "phase"], json!("Pending"));
        }
        ("apps", "Deployment") => {
            default(obj, &["spec", "replicas"], json!(1));
            default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            default(
                obj,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                pod_spec(spec);
            }
        }
        ("apps", "StatefulSet") => {
            default(obj, &["spec", "replicas"], json!(1));
            default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            default(
                obj,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy"],
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                pod_spec(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            default(obj, &["spec", "replicas"], json!(1));
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                pod_spec(spec);
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
            let mut accepted = names.clone();
            if accepted.get("singular").is_none() {
                let kind = names.get("kind").and_then(Value::as_str).unwrap_or_default().to_lowercase();
                accepted["singular"] = json!(kind);
            }
            if accepted.get("listKind").is_none() {
                let kind = names.get("kind").and_then(Value::as_str).unwrap_or_default();
                accepted["listKind"] = json!(format!("{kind}List"));
            }
            let stored: Vec<Value> = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                        .filter_map(|v| v.get("name").cloned())
                        .collect()
                })
                .unwrap_or_default();
            let since = obj
                .pointer("/status/conditions/0/lastTransitionTime")
                .cloned()
                .unwrap_or_else(|| json!(crate::api::now()));
            obj["status"] = json!({
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since},
                ],
                "storedVersions": stored,
            });
        }
        _ => {}
    }
}
