//! Admission: checks run on every write before it is stored, and the effects
//! of writes on what is served (a CRD's kinds appear when it is created and
//! vanish, with their objects, when it is deleted).

use serde_json::Value;

use crate::Sim;
use crate::api::{Target, meta_str};
use crate::error::{ApiError, Cause};
use crate::resources::from_crd;

/// Validates (and, for custom resources, defaults) an object about to be stored.
pub fn admit(sim: &Sim, t: &Target, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let name = t.name.as_deref().unwrap_or_default();
    if t.rt.group == "apiextensions.k8s.io" && t.rt.kind == "CustomResourceDefinition" {
        let Some(ct) = from_crd(obj) else {
            return Err(ApiError::invalid(
                &t.rt,
                name,
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: spec.group, spec.names.kind, spec.names.plural and at least one served version are required".into(),
                    field: "spec".into(),
                }],
            ));
        };
        let expected = format!("{}.{}", ct.plural, ct.group);
        if name != expected {
            return Err(ApiError::invalid(
                &t.rt,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
                    field: "metadata.name".into(),
                }],
            ));
        }
        let _ = sim;
    }
    if t.rt.crd.is_some() {
        crate::crd::validate(t, old, obj)?;
    }
    Ok(())
}

/// After a write is stored.
pub fn after_write(sim: &Sim, t: &Target, obj: &Value) {
    if t.rt.group == "apiextensions.k8s.io"
        && t.rt.kind == "CustomResourceDefinition"
        && obj.pointer("/metadata/deletionTimestamp").is_none()
        && let Some(ct) = from_crd(obj)
    {
        tracing::info!(group = %ct.group, kind = %ct.kind, "serving custom resource");
        sim.registry.upsert_custom(ct);
    }
}

/// After a delete request was stored (removed or marked for deletion).
pub fn after_delete(sim: &Sim, t: &Target, obj: &Value) {
    if t.rt.group == "apiextensions.k8s.io"
        && t.rt.kind == "CustomResourceDefinition"
        && sim.store.get(&t.rt.qualified(), "", meta_str(obj, "name").unwrap_or_default()).is_none()
        && let Some(ct) = from_crd(obj)
    {
        let key = ct.qualified();
        for (k, ns, o) in sim.store.all() {
            if k == key {
                sim.store.remove(&k, &ns, meta_str(&o, "name").unwrap_or_default());
            }
        }
        sim.registry.remove_custom(&ct.group, &ct.plural);
        tracing::info!(group = %ct.group, kind = %ct.kind, "no longer serving custom resource");
    }
}

/// ResourceQuota on pod creation: a namespace's quotas with `pods` (or
/// `count/pods`) in `spec.hard` refuse a pod past the limit with the real
/// server's 403 wording. Other quota resources (cpu, memory, ...) are not
/// counted. Checked before the write, outside the store's lock.
pub fn check_quota(sim: &Sim, t: &Target) -> Result<(), ApiError> {
    if !(t.rt.group.is_empty() && t.rt.kind == "Pod") {
        return Ok(());
    }
    let ns = t.namespace.as_deref().unwrap_or_default();
    let (quotas, _) = sim.store.list("resourcequotas", Some(ns));
    if quotas.is_empty() {
        return Ok(());
    }
    let (pods, _) = sim.store.list("pods", Some(ns));
    let used = pods
        .iter()
        .filter(|p| {
            p.pointer("/metadata/deletionTimestamp").is_none()
                && !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
        })
        .count() as i64;
    for q in quotas {
        let hard = q.pointer("/spec/hard");
        let limit = ["pods", "count/pods"]
            .iter()
            .find_map(|k| hard.and_then(|h| h.get(*k)))
            .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
        if let Some(limit) = limit
            && used + 1 > limit
        {
            return Err(ApiError::Forbidden(format!(
                "pods \"{}\" is forbidden: exceeded quota: {}, requested: pods=1, used: pods={used}, limited: pods={limit}",
                t.name.as_deref().unwrap_or_default(),
                meta_str(&q, "name").unwrap_or_default()
            )));
        }
    }
    Ok(())
}
