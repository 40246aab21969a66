//! The resource types the simulator serves: a fixed table of built-in kinds,
//! plus the kinds of every CustomResourceDefinition created at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Where a scale subresource finds its numbers in the object.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    /// Dotted path of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Dotted path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Dotted path of the label selector (a string for CRDs, a
    /// `LabelSelector` object for the built-in workloads).
    pub label_selector: Option<String>,
}

/// One version of a custom resource as its CRD declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrdVersion {
    /// `openAPIV3Schema` of this version.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` of this version.
    pub printer_columns: Vec<Value>,
}

/// A served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// Versions served, the preferred (storage) one first.
    pub versions: Vec<String>,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name, lower case.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl (`deploy`, `dc`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (then the main resource ignores status changes).
    pub status_subresource: bool,
    /// Scale subresource paths, if any.
    pub scale: Option<ScalePaths>,
    /// Whether `metadata.generation` is maintained.
    pub has_generation: bool,
    /// Set for custom resources: per version schema and printer columns.
    pub crd: Option<BTreeMap<String, CrdVersion>>,
}

impl ResourceType {
    /// `group/plural` (or `plural` for core), the storage key.
    pub fn key(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}/{}", self.plural, self.group) }
    }

    /// The name used in error messages: `pods`, `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `apiVersion` for a version of this type.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{}", self.group, version) }
    }

    /// Verbs for discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    generation: bool,
    all: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status: false,
        scale: false,
        generation: false,
        all: false,
    }
}

impl Builtin {
    const fn status(mut self) -> Self {
        self.status = true;
        self.generation = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
}

const BUILTINS: &[Builtin] = &[
    b("", "v1", "Namespace", "namespaces", false, &["ns"]).status(),
    b("", "v1", "Secret", "secrets", true, &[]),
    b("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
    b("", "v1", "Service", "services", true, &["svc"]).status().all(),
    b("", "v1", "Endpoints", "endpoints", true, &["ep"]),
    b("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
    b("", "v1", "Pod", "pods", true, &["po"]).status().all(),
    b("", "v1", "Event", "events", true, &["ev"]),
    b("", "v1", "Node", "nodes", false, &["no"]).status(),
    b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"]).status(),
    b("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"]).status(),
    b("", "v1", "LimitRange", "limitranges", true, &["limits"]),
    b("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
    b("apps", "v1", "Deployment", "deployments", true, &["deploy"]).status().scale().all(),
    b("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"]).status().scale().all(),
    b("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]).status().scale().all(),
    b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]).status().all(),
    b("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[]),
    b("batch", "v1", "Job", "jobs", true, &[]).status().all(),
    b("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"]).status().all(),
    b("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"]).status(),
    b("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[]),
    b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"]).status(),
    b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"]).status(),
    b("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[]),
    b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[]),
    b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[]),
    b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[]),
    b("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
    b("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[]),
    b("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"]),
    b("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"])
        .status(),
];

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|b| {
            Arc::new(ResourceType {
                group: b.group.to_string(),
                versions: vec![b.version.to_string()],
                kind: b.kind.to_string(),
                plural: b.plural.to_string(),
                singular: b.kind.to_lowercase(),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if b.all { vec!["all".to_string()] } else { vec![] },
                status_subresource: b.status,
                scale: b.scale.then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".into(),
                    status_replicas: ".status.replicas".into(),
                    label_selector: Some(".spec.selector".into()),
                }),
                has_generation: b.generation,
                crd: None,
            })
        })
        .collect()
}

/// The set of served types; CRDs add and remove entries.
pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in table.
    pub fn new() -> Self {
        Self { types: RwLock::new(builtin_types()) }
    }

    /// Every served type.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().expect("registry lock").clone()
    }

    /// The type serving `plural` in `group` at `version`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .read()
            .expect("registry lock")
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// The type of `kind` in `group` (any version).
    pub fn find_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types.read().expect("registry lock").iter().find(|t| t.group == group && t.kind == kind).cloned()
    }

    /// Groups and their versions, core excluded, in a stable order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.all() {
            if t.group.is_empty() {
                continue;
            }
            let vs = out.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !vs.contains(v) {
                    vs.push(v.clone());
                }
            }
        }
        out
    }

    /// Adds or replaces the custom type of a CRD (keyed by group + plural).
    pub fn upsert_custom(&self, t: ResourceType) {
        let mut types = self.types.write().expect("registry lock");
        types.retain(|x| !(x.group == t.group && x.plural == t.plural));
        types.push(Arc::new(t));
    }

    /// Removes the custom type of a deleted CRD.
    pub fn remove_custom(&self, group: &str, plural: &str) {
        let mut types = self.types.write().expect("registry lock");
        types.retain(|x| !(x.crd.is_some() && x.group == group && x.plural == plural));
    }
}

/// The custom type a CRD object declares, if it is well-formed.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let kind = names.get("kind")?.as_str()?.to_string();
    let plural = names.get("plural")?.as_str()?.to_string();
    let singular =
        names.get("singular").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| kind.to_lowercase());
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut versions = Vec::new();
    let mut per_version = BTreeMap::new();
    let mut status = false;
    let mut scale = None;
    let all_versions = spec.get("versions")?.as_array()?;
    // The storage version first: it is what clients prefer.
    let mut ordered: Vec<&Value> = all_versions.iter().collect();
    ordered.sort_by_key(|v| !v.get("storage").and_then(Value::as_bool).unwrap_or(false));
    for v in ordered {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = v.get("name")?.as_str()?.to_string();
        if let Some(sub) = v.get("subresources") {
            if sub.get("status").is_some() {
                status = true;
            }
            if let Some(s) = sub.get("scale") {
                scale = Some(ScalePaths {
                    spec_replicas: s.get("specReplicasPath")?.as_str()?.to_string(),
                    status_replicas: s.get("statusReplicasPath")?.as_str()?.to_string(),
                    label_selector: s.get("labelSelectorPath").and_then(Value::as_str).map(str::to_string),
                });
            }
        }
        per_version.insert(
            name.clone(),
            CrdVersion {
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            },
        );
        versions.push(name);
    }
    if versions.is_empty() {
        return None;
    }
    Some(ResourceType {
        group,
        versions,
        kind,
        plural,
        singular,
        namespaced,
        short_names: strs(names.get("shortNames")),
        categories: strs(names.get("categories")),
        status_subresource: status,
        scale,
        has_generation: true,
        crd: Some(per_version),
    })
}
