//! Pure builders: a validated cluster → the Kubernetes objects it owns.
//!
//! One `build_<child>` per kind, each returning a k8s-openapi type with the
//! standard labels and an owner reference to the DataCluster. Nothing here talks
//! to the API server or reads the clock.

mod dashboard;
mod ingress;
mod network;
mod rbac;
mod secrets;
mod workers;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, PodSecurityContext, PodTemplateSpec, SeccompProfile, SecurityContext, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

pub use dashboard::{build_dashboard_deployment, build_dashboard_hpa, build_dashboard_service};
pub use ingress::{build_ingress, dashboard_url};
pub use network::{build_worker_network_policy, build_worker_pdb};
pub use rbac::build_dashboard_service_account;
pub use secrets::{TOKEN_KEY, build_token_secret, generate_token};
pub use workers::{
    DATASETS_DIR, DATASETS_HASH_ANNOTATION, DATASETS_KEY, HOSTNAME_KEY, SERVING_REVISION_ANNOTATION,
    SERVING_SINCE_ANNOTATION, TEMPLATE_HASH_ANNOTATION, WORKER_SET_LABEL, ZONE_KEY, build_datasets_config_map,
    build_surge_statefulset, build_worker_service, build_worker_statefulset, datasets_hash, pin_of, pin_worker_service,
    spread_replicas, worker_endpoint, worker_template_hash,
};

use crate::crd::PodSettings;
use crate::validate::ValidCluster;

/// Dashboard HTTP port.
pub const DASHBOARD_PORT: i32 = 8050;
/// Worker Arrow Flight port.
pub const FLIGHT_PORT: i32 = 8815;
/// Worker health and metrics port.
pub const WORKER_HTTP_PORT: i32 = 9090;
/// User and group the containers run as (the distroless `nonroot` user).
pub const RUN_AS_USER: i64 = 65532;
/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "quiver-operator";
/// `app.kubernetes.io/name` of the operator's own pods (allowed to reach the workers).
pub const OPERATOR_APP_NAME: &str = "quiver-operator";
/// Where the worker token is mounted.
pub const WORKER_TOKEN_DIR: &str = "/var/run/quiver/worker-token";
/// Where the dashboard token is mounted.
pub const DASHBOARD_TOKEN_DIR: &str = "/var/run/quiver/dashboard-token";

/// Which half of the cluster an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// Worker StatefulSet and its satellites.
    Worker,
    /// Dashboard Deployment and its satellites.
    Dashboard,
}

impl Component {
    /// Value of `app.kubernetes.io/component`.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Worker => "worker",
            Component::Dashboard => "dashboard",
        }
    }
}

/// The labels that select a component's pods (a subset of [`labels`], immutable
/// once a StatefulSet or Deployment exists).
pub fn selector_labels(cluster: &str, component: Component) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "quiver"),
        ("app.kubernetes.io/instance", cluster),
        ("app.kubernetes.io/component", component.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The standard labels of every child.
pub fn labels(cluster: &str, component: Component) -> BTreeMap<String, String> {
    let mut l = selector_labels(cluster, component);
    l.insert("app.kubernetes.io/managed-by".into(), "quiver-operator".into());
    l
}

/// The label selector matching every child of every cluster (what the
/// controller watches).
pub fn managed_by_selector() -> String {
    "app.kubernetes.io/managed-by=quiver-operator".into()
}

/// The `key=value,...` form of the worker selector (the scale subresource's selector).
pub fn worker_selector_string(cluster: &str) -> String {
    selector_labels(cluster, Component::Worker).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Metadata of a child: name, namespace, labels, owner reference.
pub(crate) fn child_meta(c: &ValidCluster, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(c.namespace.clone()),
        labels: Some(labels(&c.name, component)),
        owner_references: Some(vec![c.owner.clone()]),
        ..Default::default()
    }
}

/// Container hardening shared by every container: non-root, read-only root
/// filesystem, no capabilities, no privilege escalation, default seccomp profile.
pub(crate) fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// Pod-level hardening shared by every pod.
pub(crate) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        fs_group: Some(RUN_AS_USER),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// Applies the platform's pod settings to a pod template: scheduling fields
/// as given (a topology spread constraint without a label selector gets the
/// component's selector), extra labels and annotations under ours (ours win).
pub(crate) fn apply_pod_settings(
    mut template: PodTemplateSpec,
    p: &PodSettings,
    selector: &BTreeMap<String, String>,
) -> PodTemplateSpec {
    let meta = template.metadata.get_or_insert_with(Default::default);
    if !p.pod_labels.is_empty() {
        let mut l = p.pod_labels.clone();
        l.extend(meta.labels.take().unwrap_or_default());
        meta.labels = Some(l);
    }
    if !p.pod_annotations.is_empty() {
        let mut a = p.pod_annotations.clone();
        a.extend(meta.annotations.take().unwrap_or_default());
        meta.annotations = Some(a);
    }
    let spec = template.spec.get_or_insert_with(Default::default);
    spec.node_selector = (!p.node_selector.is_empty()).then(|| p.node_selector.clone());
    spec.tolerations = (!p.tolerations.is_empty()).then(|| p.tolerations.clone());
    spec.affinity = p.affinity.clone();
    spec.priority_class_name = p.priority_class_name.clone();
    spec.topology_spread_constraints = (!p.topology_spread_constraints.is_empty()).then(|| {
        p.topology_spread_constraints
            .iter()
            .cloned()
            .map(|mut t| {
                t.label_selector.get_or_insert_with(|| LabelSelector {
                    match_labels: Some(selector.clone()),
                    match_expressions: None,
                });
                t
            })
            .collect()
    });
    template
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

/// Every object the operator applies for one cluster (the token Secrets are
/// created separately: they are generated once and never overwritten).
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `NAME-dashboard` ServiceAccount.
    pub service_account: ServiceAccount,
    /// `NAME-workers` headless Service.
    pub worker_service: Service,
    /// `NAME-datasets` ConfigMap: the dataset list the workers load.
    pub datasets: ConfigMap,
    /// `NAME-workers` StatefulSet.
    pub workers: StatefulSet,
    /// `NAME-workers` NetworkPolicy.
    pub network_policy: NetworkPolicy,
    /// `NAME-workers` PodDisruptionBudget.
    pub pdb: PodDisruptionBudget,
    /// `NAME-dashboard` Deployment.
    pub dashboard: Deployment,
    /// `NAME-dashboard` Service.
    pub dashboard_service: Service,
    /// `NAME-dashboard` HorizontalPodAutoscaler, when autoscaling is enabled.
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// `NAME` Ingress, when enabled.
    pub ingress: Option<Ingress>,
}

/// Builds every applied child. `worker_replicas` is the worker pods the
/// lifecycle decided (0 while suspended, else shards × replicas per shard);
/// the shard count stays the spec's.
pub fn build_all(c: &ValidCluster, worker_replicas: i32) -> Children {
    Children {
        service_account: build_dashboard_service_account(c),
        worker_service: build_worker_service(c),
        datasets: build_datasets_config_map(c),
        workers: build_worker_statefulset(c, worker_replicas),
        network_policy: build_worker_network_policy(c),
        pdb: build_worker_pdb(c),
        dashboard: build_dashboard_deployment(c),
        dashboard_service: build_dashboard_service(c),
        hpa: c.autoscaling.enabled.then(|| build_dashboard_hpa(c)),
        ingress: c.ingress.enabled.then(|| build_ingress(c)),
    }
}

/// A child rendered for golden files and manifest validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Kubernetes kind, e.g. `StatefulSet`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// The object as JSON.
    pub json: serde_json::Value,
}

impl Children {
    /// Every applied child, in the order the reconciler applies them.
    pub fn manifests(&self) -> Vec<Manifest> {
        fn m<K: kube::Resource<DynamicType = ()> + serde::Serialize>(o: &K) -> Manifest {
            Manifest {
                kind: K::kind(&()).into_owned(),
                name: o.meta().name.clone().unwrap_or_default(),
                json: serde_json::to_value(o).expect("k8s-openapi objects always serialise"),
            }
        }
        let mut out = vec![
            m(&self.service_account),
            m(&self.worker_service),
            m(&self.datasets),
            m(&self.workers),
            m(&self.network_policy),
            m(&self.pdb),
            m(&self.dashboard),
            m(&self.dashboard_service),
        ];
        out.extend(self.hpa.as_ref().map(m));
        out.extend(self.ingress.as_ref().map(m));
        out
    }
}
