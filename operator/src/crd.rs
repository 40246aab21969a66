//! The `DataCluster` custom resource: what a user writes, and what the operator reports.
//!
//! Field docs become `kubectl explain` text. What an OpenAPI schema (and CEL) can
//! check is declared here; everything else is checked in [`crate::validate`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use quiver_worker::spec::DatasetSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "quiver.dev";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";
/// File name of the CRD under `crds/` (and the chart's `crds/`).
pub const CRD_FILE: &str = "datacluster.yaml";
/// Annotation whose value change rolls the workers, so they reload from the source.
pub const RESTART_ANNOTATION: &str = "quiver.dev/restartedAt";
/// Annotation (an RFC 3339 time) by which a dashboard asks to resume an idle-suspended cluster.
pub const RESUME_ANNOTATION: &str = "quiver.dev/resumeRequestedAt";

/// Longest DataCluster name: `NAME-workers` must leave room for the StatefulSet's
/// revision hash in a 63-character label value.
pub const MAX_NAME_LEN: usize = 44;
/// Pod template annotation holding the hash of the rest of the worker pod
/// template (image, resources, shard count, dataset list, restart stamp, pod
/// settings): the rollout tells the generation a pod belongs to by it, in
/// either StatefulSet of a surge.
pub const TEMPLATE_HASH_ANNOTATION: &str = "quiver.dev/template-hash";

/// Pattern of durations accepted by `idleTimeout`: Go-style, e.g. `30m`, `1h30m`, `90s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(h|m|s))+$";

/// A managed Quiver cluster: workers holding datasets in memory, dashboards in front.
// Each `printcolumn(...)` repeats `type_`, which clippy mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "quiver.dev",
    version = "v1alpha1",
    kind = "DataCluster",
    plural = "dataclusters",
    shortname = "dc",
    category = "quiver",
    namespaced,
    status = "DataClusterStatus",
    derive = "PartialEq",
    doc = "A Quiver cluster: workers that hold datasets in memory and dashboards that query them.",
    scale(
        spec_replicas_path = ".spec.workers.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Workers",
        type_ = "string",
        json_path = ".status.workers",
        description = "workers that loaded their shard / workers desired"
    ),
    printcolumn(
        name = "Shards",
        type_ = "string",
        json_path = ".status.shardsSummary",
        description = "shards with at least one loaded replica / shards"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicasPerShard",
        description = "workers per shard"
    ),
    printcolumn(name = "Rows", type_ = "integer", json_path = ".status.rows"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url")
)]
#[serde(rename_all = "camelCase")]
pub struct DataClusterSpec {
    /// The workers: a StatefulSet of `replicas × replicasPerShard` pods, pod
    /// ordinal `i` serving shard `i mod replicas`.
    #[serde(default)]
    pub workers: WorkersSpec,
    /// Datasets every worker loads its shard of.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(a, self.exists_one(b, b.name == a.name))", "message": "dataset names must be unique"}
    ]))]
    pub datasets: Vec<ClusterDataset>,
    /// The dashboard: a Deployment behind a Service, with an autoscaler and an optional Ingress.
    #[serde(default)]
    pub dashboard: DashboardSpec,
    /// When the cluster suspends itself or goes away.
    #[serde(default)]
    pub lifecycle: LifecycleSpec,
    /// Secrets for pulling the worker and dashboard images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// The worker StatefulSet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.replicasPerShard) || self.replicas * self.replicasPerShard <= 1024",
     "message": "replicas × replicasPerShard (worker pods) must be at most 1024"}
]))]
pub struct WorkersSpec {
    /// Number of shards the datasets are split into (with one replica per
    /// shard, the number of workers). Changing it re-shards: every worker
    /// restarts with the new count and loads its new share.
    #[serde(default = "default_worker_replicas")]
    #[schemars(range(min = 0, max = 1024))]
    pub replicas: i32,
    /// Workers holding each shard (1 to 5). With 2 or more, answers stay
    /// complete while a worker is killed, evicted or frozen: the dashboards
    /// ask one loaded replica per shard and retry another. Costs the workers'
    /// memory (and loads from the source) that many times over. The
    /// StatefulSet runs `replicas × replicasPerShard` pods, pod ordinal `i`
    /// serving shard `i mod replicas`; the pods are spread over nodes and
    /// zones where the scheduler can. Changing it scales the workers without
    /// re-sharding. Empty: the operator's cluster default (1 unless the chart
    /// says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas_per_shard: Option<i32>,
    /// Worker image; defaults to the operator's matching release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// CPU and memory for each worker. The memory limit bounds the shard a worker may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Query threads per worker; defaults to the CPUs available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub threads: Option<i32>,
    /// ServiceAccount the worker pods run as, e.g. one bound to a cloud identity
    /// (IRSA, GKE Workload Identity) that may read the datasets, so no static S3
    /// keys are needed. Its API token is not mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub service_account_name: Option<String>,
    /// How workers are replaced when their pod template changes.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// Scheduling and metadata of the worker pods.
    #[serde(flatten)]
    pub pod: PodSettings,
}

/// How workers are replaced when their pod template changes (image,
/// resources, datasets, restart annotation, shard count). The operator
/// deletes outdated pods itself (StatefulSet `OnDelete`), following
/// `strategy`: `Surge` loads the new workers beside the old ones and switches
/// the dashboards over once all are loaded; `Replace` replaces the workers in
/// place: a re-shard all at once (old and new shard counts cannot answer
/// together), other changes at most `maxUnavailable` workers at a time (and
/// outdated workers that are not Ready anyway at once).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// How a change of the worker pod template (a re-shard, an image,
    /// resources, a restart, the dataset list) replaces the workers. `Surge`
    /// (where memory allows): the new workers load in a transitional
    /// StatefulSet `NAME-surge` while the old ones keep answering, the
    /// dashboards switch over once every new worker is loaded, then
    /// `NAME-workers` is replaced behind them (all at once) and they switch
    /// back; no query sees a partial answer, at the cost of twice the memory
    /// and two loads. If the surge pods cannot be created or scheduled
    /// (quota, no room) it falls back to `Replace`, said in condition
    /// `RollingOut` and an event. `Replace`: in place (a re-shard all at
    /// once, answers partial until the new shards load; other changes in
    /// batches of `maxUnavailable`). Empty: the operator's cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RolloutStrategy>,
    /// Most workers unavailable at once while replacing workers in place on
    /// the same shard count (`Replace`, or a surge that fell back): a count,
    /// or a percentage of the workers (at least 1).
    #[serde(default = "default_max_unavailable")]
    pub max_unavailable: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    /// A rollout that has not finished after this long is reported stuck
    /// (condition `RollingOut`, reason `Stuck`), e.g. `30m`.
    #[serde(default = "default_progress_deadline")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub progress_deadline: String,
}

fn default_max_unavailable() -> k8s_openapi::apimachinery::pkg::util::intstr::IntOrString {
    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into())
}

fn default_progress_deadline() -> String {
    "30m".into()
}

/// How a change of the worker pod template replaces the workers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RolloutStrategy {
    /// Load the new workers beside the old ones; switch when all are loaded.
    #[default]
    Surge,
    /// Replace the workers in place.
    Replace,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            strategy: None,
            max_unavailable: default_max_unavailable(),
            progress_deadline: default_progress_deadline(),
        }
    }
}

/// Where and how pods are scheduled, and the metadata they carry, as platform
/// teams set them. Fields left empty take the operator's cluster defaults
/// (the chart's `clusterDefaults`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Node labels the pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread over zones and nodes. A constraint without a
    /// `labelSelector` selects this component's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Extra labels of the pods. Keys under `app.kubernetes.io/` are the
    /// operator's (refused with a `SpecValid=False` condition: a CEL rule over
    /// map keys of unbounded length could exceed the API server's cost budget).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations of the pods. Keys under `quiver.dev/` are the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub pod_annotations: BTreeMap<String, String>,
}

fn default_worker_replicas() -> i32 {
    2
}

impl Default for WorkersSpec {
    fn default() -> Self {
        WorkersSpec {
            replicas: default_worker_replicas(),
            replicas_per_shard: None,
            image: None,
            image_pull_policy: None,
            resources: None,
            threads: None,
            service_account_name: None,
            rollout: RolloutSpec::default(),
            pod: PodSettings::default(),
        }
    }
}

/// Image pull policy of a container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The value Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// A dataset of the cluster: the worker's dataset spec, plus where its credentials live.
// Its `JsonSchema` is written by hand in `schema.rs`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDataset {
    /// The dataset as the worker reads it.
    #[serde(flatten)]
    pub spec: DatasetSpec,
    /// A Secret holding S3 credentials for this dataset; mounted into the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
    /// About how many rows the dataset holds; sizes the workers' default
    /// memory request when `workers.resources` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_rows: Option<i64>,
}

/// A Secret in the cluster's namespace holding S3 credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1))]
    pub access_key_id_key: String,
    /// Key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1))]
    pub secret_access_key_key: String,
    /// Key holding a session token, when the credentials are temporary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub session_token_key: Option<String>,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".into()
}

fn default_secret_access_key_key() -> String {
    "secretAccessKey".into()
}

/// The dashboard Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSpec {
    /// Replicas when autoscaling is disabled.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    /// Dashboard image; defaults to the operator's matching release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// CPU and memory for each dashboard replica. Autoscaling needs a CPU request;
    /// without resources, 100m CPU and 128Mi memory are requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Horizontal autoscaling on CPU.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// Exposure through an Ingress.
    #[serde(default)]
    pub ingress: IngressSpec,
    /// A Secret holding the login token. Without it, the operator generates
    /// Secret `NAME-dashboard-token` (key `token`) once and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// XYZ tile URL for the map background, with `{z}`, `{x}`, `{y}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://.+\{z\}.*$"))]
    pub tile_url: Option<String>,
    /// Scheduling and metadata of the dashboard pods.
    #[serde(flatten)]
    pub pod: PodSettings,
}

fn one() -> i32 {
    1
}

impl Default for DashboardSpec {
    fn default() -> Self {
        DashboardSpec {
            replicas: 1,
            image: None,
            image_pull_policy: None,
            resources: None,
            autoscaling: AutoscalingSpec::default(),
            ingress: IngressSpec::default(),
            token_secret_ref: None,
            tile_url: None,
            pod: PodSettings::default(),
        }
    }
}

/// A key of a Secret in the cluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

fn default_token_key() -> String {
    "token".into()
}

/// Horizontal autoscaling of the dashboard on CPU utilisation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.maxReplicas >= self.minReplicas", "message": "autoscaling.maxReplicas must be at least minReplicas"}
]))]
pub struct AutoscalingSpec {
    /// Create a HorizontalPodAutoscaler for the dashboard.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fewest replicas.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// Most replicas.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of the request) to aim for.
    #[serde(default = "default_target_cpu", rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn yes() -> bool {
    true
}

fn default_max_replicas() -> i32 {
    3
}

fn default_target_cpu() -> i32 {
    70
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        AutoscalingSpec {
            enabled: true,
            min_replicas: 1,
            max_replicas: default_max_replicas(),
            target_cpu_utilization_percentage: default_target_cpu(),
        }
    }
}

/// An Ingress named like the cluster, routing to the dashboard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.tls) || has(self.host)", "message": "ingress.tls needs ingress.host"}
]))]
pub struct IngressSpec {
    /// Create the Ingress.
    #[serde(default)]
    pub enabled: bool,
    /// Host name, e.g. `quiver.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    #[schemars(length(max = 253))]
    pub host: Option<String>,
    /// IngressClass name; defaults to the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub class_name: Option<String>,
    /// Serve HTTPS with the certificate in this Secret (the dashboard then sets Secure cookies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
    /// Extra annotations for the Ingress controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// TLS for the Ingress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Secret holding `tls.crt` and `tls.key`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// When the cluster suspends itself or goes away.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSpec {
    /// Time without queries after which `onIdle` applies, e.g. `30m` or `2h`
    /// (Go duration syntax, at least `1m`). Without it the cluster is never idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('1m')", "message": "idleTimeout must be at least 1m"}
    ]))]
    pub idle_timeout: Option<String>,
    /// What to do once idle: `ScaleToZero` keeps the resource and the dashboard and stops
    /// the workers (phase Suspended, resumed by the dashboard or a spec change);
    /// `Delete` deletes the DataCluster and everything it owns; `None` does nothing.
    #[serde(default)]
    pub on_idle: OnIdle,
    /// Stop the workers (the dashboard stays up) until set back to false.
    #[serde(default)]
    pub suspend: bool,
}

/// What happens to an idle cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum OnIdle {
    /// Scale the workers to zero; keep the resource and the dashboard.
    #[default]
    ScaleToZero,
    /// Delete the DataCluster (and, through owner references, all its children).
    Delete,
    /// Nothing.
    None,
}

/// What the operator observed, as of `observedGeneration`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataClusterStatus {
    /// Summary of the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `SpecValid`, `Ready`, `Suspended`, `ActivityKnown`, `ChildrenOwned`,
    /// `ReplicaFailure`, `RollingOut`, and `ReplicasSpread` with
    /// `replicasPerShard` above 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Worker pods that exist (the scale subresource's status): pods, so
    /// `replicasPerShard` times the shards once settled.
    #[serde(default)]
    pub replicas: i32,
    /// Label selector of the worker pods (the scale subresource's selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Workers the cluster should run now (0 while suspended).
    #[serde(default)]
    pub desired_workers: i32,
    /// Workers that loaded their shard of every dataset under the current sharding.
    #[serde(default)]
    pub ready_workers: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<String>,
    /// Shards the datasets are split into now (0 while suspended).
    #[serde(default)]
    pub shards: i32,
    /// Shards at least one of whose replicas loaded every dataset under the
    /// current sharding: when it equals `shards`, answers are complete.
    #[serde(default)]
    pub shards_ready: i32,
    /// `shardsReady/shards`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards_summary: Option<String>,
    /// Workers per shard (`spec.workers.replicasPerShard` or the operator's default).
    #[serde(default)]
    pub replicas_per_shard: i32,
    /// The fewest loaded replicas of any shard (running clusters only): 0
    /// means some shard answers nowhere; 1 with `replicasPerShard` above 1
    /// means some shard has lost its redundancy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_replicas: Option<i32>,
    /// Rows loaded, summed over datasets and shards.
    #[serde(default)]
    pub rows: i64,
    /// Per-dataset load state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetStatus>,
    /// The last query seen by any worker, or when the cluster was started or resumed,
    /// whichever is later. Idleness is measured from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<Time>,
    /// When the workers were last stopped by the lifecycle, if they are stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<Time>,
    /// Why the workers are stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_reason: Option<SuspendReason>,
    /// The generation that was current when the cluster was idle-suspended; a newer
    /// spec resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_generation: Option<i64>,
    /// Where users open the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Lifecycle phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Children are being created; no worker has answered yet.
    Pending,
    /// Workers are loading their shards.
    Loading,
    /// Every shard has loaded every dataset.
    Ready,
    /// The cluster was ready and lost workers, or a shard failed to load.
    Degraded,
    /// The workers are stopped (by `suspend`, by idleness, or zero replicas).
    Suspended,
    /// The spec cannot be run; see the `SpecValid` condition.
    Failed,
}

impl Phase {
    /// The name written in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Loading => "Loading",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Suspended => "Suspended",
            Phase::Failed => "Failed",
        }
    }
}

/// Why the workers are stopped.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SuspendReason {
    /// `spec.lifecycle.suspend` is true.
    Spec,
    /// No query arrived within `idleTimeout` and `onIdle` is `ScaleToZero`.
    Idle,
}

/// Load state of one dataset across the shards.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStatus {
    /// Dataset name.
    pub name: String,
    /// Rows loaded, summed over the shards that answered (each shard once,
    /// whatever its replicas).
    pub rows: i64,
    /// Shards that have loaded it under the current sharding (a shard
    /// counts once at least one of its replicas has).
    pub shards_ready: i32,
    /// Shards expected.
    pub shards: i32,
    /// First load error reported by a shard, naming the file and column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The CustomResourceDefinition as installed: the derived one, plus a root rule on
/// the name (children such as `NAME-workers` must be valid Service names).
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    use kube::CustomResourceExt;

    let mut crd = DataCluster::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.x_kubernetes_validations.get_or_insert_with(Vec::new).push(ValidationRule {
                rule: format!(
                    "self.metadata.name.size() <= {} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                    MAX_NAME_LEN
                ),
                message: Some(format!(
                    "the name must start with a letter, hold only lowercase letters, digits and dashes, \
                     and be at most {} characters",
                    MAX_NAME_LEN
                )),
                ..Default::default()
            });
        }
    }
    crd
}

/// The CRD as the YAML document `crdgen` writes to `crds/`.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&crd()).expect("the CRD always serialises")
}
