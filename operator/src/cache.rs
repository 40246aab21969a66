//! What the operator knows of its children without asking the API server:
//! reflector stores fed by label-selected watches (the same watches whose
//! events trigger reconciles), and the hash annotation that tells a pass an
//! apply would change nothing.
//!
//! A steady pass reads every child, worker pod and token Secret from these
//! stores and applies nothing, so a busy, Ready cluster costs no API request
//! between changes. Skipping a no-op apply rests on the
//! [`APPLIED_HASH_ANNOTATION`]: every apply writes the hash of the object it
//! sends, and a child whose cached copy carries the hash of the object the
//! pass would send is left alone. Comparing the fields this manager owns
//! instead would mean redoing the API server's defaulting and normalisation
//! (quantities, int-or-string ports, defaulted pod fields): a mismatch there
//! either re-applies on every pass or misses a change. The hash is exact about
//! what the operator asks for; a field someone else changed under this
//! manager is put back at the next periodic re-apply ([`RESYNC`]).
//!
//! Stores that have not finished their first list answer "unknown", and the
//! callers then read from the API server as they would without a cache.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;

/// Annotation carrying the hash of the object as the operator last applied it.
pub const APPLIED_HASH_ANNOTATION: &str = "quiver.dev/applied-hash";

/// How long children may go without a full re-apply (which puts back fields
/// someone else changed); each cluster's period is stretched by up to a tenth
/// at random so that clusters seen together do not re-apply together.
pub const RESYNC: Duration = Duration::from_secs(3600);

/// FNV-1a (64 bit) of the object's JSON, as 16 hex digits: stable across
/// operator builds, so an unchanged desired object is never re-applied after
/// an upgrade that does not change it.
pub fn desired_hash<K: Serialize>(obj: &K) -> String {
    let json = serde_json::to_vec(obj).expect("a Kubernetes object serialises to JSON");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The object to apply: `obj` with its hash annotation, and the hash. Pure.
pub fn stamped<K: Resource + Serialize + Clone>(obj: &K) -> (K, String) {
    let hash = desired_hash(obj);
    let mut out = obj.clone();
    out.meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());
    (out, hash)
}

/// True when `meta` carries an owner reference to the DataCluster with this uid.
pub fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// True when the child as last seen (`meta`) was applied from the object
/// whose hash is `hash`, belongs to the DataCluster `owner_uid` and is not
/// being deleted: applying it again would change nothing. Pure.
pub fn up_to_date(meta: &ObjectMeta, owner_uid: &str, hash: &str) -> bool {
    meta.deletion_timestamp.is_none()
        && owned_by(meta, owner_uid)
        && meta.annotations.as_ref().and_then(|a| a.get(APPLIED_HASH_ANNOTATION)).is_some_and(|h| h == hash)
}

/// What a store says about one object.
#[derive(Debug)]
pub enum Seen<K> {
    /// The store has not finished its first list: ask the API server.
    Unknown,
    /// No such object among the watched (label-selected) ones.
    Absent,
    /// The object as last seen.
    Present(Arc<K>),
}

impl<K> Seen<K> {
    /// The object, when present.
    pub fn present(self) -> Option<Arc<K>> {
        match self {
            Seen::Present(o) => Some(o),
            Seen::Unknown | Seen::Absent => None,
        }
    }
}

/// A reflector store of one kind of child.
pub struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Cache<K> {
    /// Wraps a store fed by a running reflector.
    pub fn new(store: Store<K>) -> Self {
        Cache { store }
    }

    /// True once the store holds the result of its first list.
    pub fn ready(&self) -> bool {
        matches!(self.store.wait_until_ready().now_or_never(), Some(Ok(())))
    }

    /// Object `name` in `namespace`.
    pub fn seen(&self, namespace: &str, name: &str) -> Seen<K> {
        if !self.ready() {
            return Seen::Unknown;
        }
        match self.store.get(&ObjectRef::new(name).within(namespace)) {
            Some(o) => Seen::Present(o),
            None => Seen::Absent,
        }
    }

    /// Every object in `namespace` whose labels include all of `labels`, or
    /// `None` before the first list.
    pub fn matching(
        &self,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<Vec<Arc<K>>> {
        if !self.ready() {
            return None;
        }
        Some(self.store.state_filter(|o| {
            let m = o.meta();
            m.namespace.as_deref() == Some(namespace)
                && labels.iter().all(|(k, v)| m.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        }))
    }
}

/// Metadata of `name` as the cache last saw it: `None` when the cache does
/// not know (no cache, not synced yet, or no such watched object).
pub fn cached_meta<K: Resource<DynamicType = ()> + Clone + 'static>(
    cache: Option<&Cache<K>>,
    namespace: &str,
    name: &str,
) -> Option<ObjectMeta> {
    cache?.seen(namespace, name).present().map(|o| o.meta().clone())
}

/// [`cached_meta`] of a child as built (by its name).
pub fn cached_meta_of<K: Resource<DynamicType = ()> + Clone + 'static>(
    cache: Option<&Cache<K>>,
    namespace: &str,
    child: &impl Resource,
) -> Option<ObjectMeta> {
    cached_meta(cache, namespace, child.meta().name.as_deref().unwrap_or_default())
}

/// The stores a reconcile reads: every child kind, the worker pods and the
/// token Secrets, all selected by the `managed-by` label. Kinds whose content
/// the operator never reads are watched as metadata only (owner, hash
/// annotation), which keeps the operator's memory small with many clusters.
pub struct Caches {
    /// Worker StatefulSets (their status drives rollouts and ready counts).
    pub stateful_sets: Cache<StatefulSet>,
    /// Dashboard Deployments.
    pub deployments: Cache<PartialObjectMeta<Deployment>>,
    /// Worker and dashboard Services.
    pub services: Cache<PartialObjectMeta<Service>>,
    /// Ingresses (their status holds the address).
    pub ingresses: Cache<Ingress>,
    /// Dashboard autoscalers.
    pub autoscalers: Cache<PartialObjectMeta<HorizontalPodAutoscaler>>,
    /// Dataset lists.
    pub config_maps: Cache<PartialObjectMeta<ConfigMap>>,
    /// Dashboard service accounts.
    pub service_accounts: Cache<PartialObjectMeta<ServiceAccount>>,
    /// Worker network policies.
    pub network_policies: Cache<PartialObjectMeta<NetworkPolicy>>,
    /// Worker disruption budgets.
    pub disruption_budgets: Cache<PartialObjectMeta<PodDisruptionBudget>>,
    /// Token Secrets.
    pub secrets: Cache<Secret>,
    /// Worker pods (endpoints, failures, rollout).
    pub pods: Cache<Pod>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn config_map(data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("demo-datasets".into()),
                namespace: Some("ns".into()),
                owner_references: Some(vec![OwnerReference { uid: "u1".into(), ..Default::default() }]),
                ..Default::default()
            },
            data: Some([("datasets.json".to_string(), data.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_hash_follows_the_desired_object_and_is_stable() {
        let a = desired_hash(&config_map("[1]"));
        assert_eq!(a, desired_hash(&config_map("[1]")));
        assert_ne!(a, desired_hash(&config_map("[2]")));
        assert_eq!(a.len(), 16);
        // FNV-1a of a fixed object: a change of hash function would re-apply
        // every child of every cluster after an upgrade.
        assert_eq!(desired_hash(&serde_json::json!({"a": 1})), "9c3e82dd6fcae8b1");
    }

    #[test]
    fn a_child_applied_from_the_same_object_is_up_to_date_and_nothing_else_is() {
        let (applied, hash) = stamped(&config_map("[1]"));
        assert!(up_to_date(&applied.metadata, "u1", &hash));
        // The desired object changed.
        let (_, other) = stamped(&config_map("[2]"));
        assert!(!up_to_date(&applied.metadata, "u1", &other));
        // Another cluster's object, or one never stamped, or one being deleted.
        assert!(!up_to_date(&applied.metadata, "u2", &hash));
        assert!(!up_to_date(&config_map("[1]").metadata, "u1", &hash));
        let mut deleting = applied.metadata.clone();
        deleting.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-06T00:00:00Z".parse().unwrap()));
        assert!(!up_to_date(&deleting, "u1", &hash));
        assert_eq!(applied.metadata.annotations.unwrap()[APPLIED_HASH_ANNOTATION], hash);
    }
}
