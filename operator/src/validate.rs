//! Spec + operator defaults → a validated cluster, or a message for the
//! `SpecValid` condition. Pure: everything the builders need, checked once.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use quiver_worker::spec::{DatasetSpec, S3Options};

use crate::crd::{
    AutoscalingSpec, CredentialsSecretRef, DashboardSpec, DataCluster, DataClusterSpec, IngressSpec, OnIdle,
    PodSettings, PullPolicy, RESTART_ANNOTATION, RESUME_ANNOTATION, RolloutStrategy, SecretKeyRef,
};
use crate::error::{Error, Result};

pub use crate::crd::MAX_NAME_LEN;
/// Most replicas per shard: each holds a full copy of its shard in memory,
/// so 5 already costs five times the memory; 2 survives one lost worker, 3
/// one lost during a rollout or drain.
pub const MAX_REPLICAS_PER_SHARD: i32 = 5;
/// Most worker pods of a cluster (shards × replicas per shard).
pub const MAX_WORKER_PODS: i32 = 1024;
/// Shortest `idleTimeout`.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Where a dataset's credentials Secret is mounted in the workers (plus `/<dataset>`).
pub const CREDENTIALS_ROOT: &str = "/var/run/quiver/credentials";

/// Operator-wide settings the builders need.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    /// Worker image when the spec names none.
    pub worker_image: String,
    /// Dashboard image when the spec names none.
    pub dashboard_image: String,
    /// The cluster's DNS domain, for the dashboard's worker discovery.
    pub cluster_domain: String,
    /// The operator's own namespace (the only one whose operator pods may reach workers).
    pub operator_namespace: String,
    /// Where dashboards reach the operator's resume endpoint
    /// (`http://<service>.<namespace>.svc:8081`); none: dashboards cannot resume.
    pub resume_url: Option<String>,
    /// Pod settings of every cluster's workers where its spec leaves them empty.
    pub worker_pod: PodSettings,
    /// Pod settings of every cluster's dashboards where its spec leaves them empty.
    pub dashboard_pod: PodSettings,
    /// How a re-shard replaces the workers when the spec does not say.
    pub rollout_strategy: RolloutStrategy,
    /// Replicas per shard when the spec does not say.
    pub replicas_per_shard: i32,
}

impl Default for Defaults {
    fn default() -> Self {
        let v = env!("CARGO_PKG_VERSION");
        Defaults {
            worker_image: format!("ghcr.io/quiver-dev/quiver-worker:{v}"),
            dashboard_image: format!("ghcr.io/quiver-dev/quiver-dashboard:{v}"),
            cluster_domain: "cluster.local".into(),
            operator_namespace: "quiver-system".into(),
            resume_url: None,
            worker_pod: PodSettings::default(),
            dashboard_pod: PodSettings::default(),
            rollout_strategy: RolloutStrategy::default(),
            replicas_per_shard: 1,
        }
    }
}

/// A DataCluster whose spec was checked, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    /// Resource name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// Owner reference every child carries.
    pub owner: OwnerReference,
    /// Shards the spec asks for (`spec.workers.replicas`; with one replica
    /// per shard, also the workers).
    pub worker_replicas: i32,
    /// Workers per shard (1 to [`MAX_REPLICAS_PER_SHARD`]).
    pub replicas_per_shard: i32,
    /// Worker image.
    pub worker_image: String,
    /// Worker image pull policy.
    pub worker_pull_policy: Option<PullPolicy>,
    /// Worker resources: the spec's, else requests sized from the datasets.
    pub worker_resources: ResourceRequirements,
    /// Worker query threads.
    pub worker_threads: Option<i32>,
    /// Most workers down at once in a same-shard-count rollout (count or percentage).
    pub rollout_max_unavailable: String,
    /// When an unfinished rollout is reported stuck.
    pub progress_deadline: Duration,
    /// How a re-shard replaces the workers.
    pub rollout_strategy: RolloutStrategy,
    /// ServiceAccount of the worker pods (cloud identity for the object store).
    pub worker_service_account: Option<String>,
    /// Worker pod settings, cluster defaults filled in.
    pub worker_pod: PodSettings,
    /// Dashboard pod settings, cluster defaults filled in.
    pub dashboard_pod: PodSettings,
    /// Datasets as the workers will read them (credentials paths filled in).
    pub datasets: Vec<ValidDataset>,
    /// Dashboard replicas when not autoscaled.
    pub dashboard_replicas: i32,
    /// Dashboard image.
    pub dashboard_image: String,
    /// Dashboard image pull policy.
    pub dashboard_pull_policy: Option<PullPolicy>,
    /// Dashboard resources (defaulted so the autoscaler has a CPU request).
    pub dashboard_resources: ResourceRequirements,
    /// Dashboard autoscaling.
    pub autoscaling: AutoscalingSpec,
    /// Ingress settings.
    pub ingress: IngressSpec,
    /// Where the dashboard token lives.
    pub dashboard_token: SecretKeyRef,
    /// Whether the operator generates the dashboard token Secret.
    pub generate_dashboard_token: bool,
    /// XYZ tiles for the map.
    pub tile_url: Option<String>,
    /// Image pull secrets.
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Idle timeout, when set.
    pub idle_timeout: Option<Duration>,
    /// What to do when idle.
    pub on_idle: OnIdle,
    /// `spec.lifecycle.suspend`.
    pub suspend: bool,
    /// Value of the restart annotation, copied to the worker pod template.
    pub restarted_at: Option<String>,
    /// When a dashboard last asked to resume.
    pub resume_requested_at: Option<Timestamp>,
    /// When the resource was created.
    pub created_at: Option<Timestamp>,
    /// Operator defaults used.
    pub defaults: Defaults,
}

/// One dataset, ready to hand to the workers.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidDataset {
    /// The spec given to the worker (with `s3.credentialsDir` pointing at the mount).
    pub spec: DatasetSpec,
    /// The credentials Secret to mount, if any.
    pub credentials: Option<CredentialsSecretRef>,
}

impl ValidDataset {
    /// Where this dataset's credentials are mounted.
    pub fn credentials_dir(&self) -> String {
        format!("{CREDENTIALS_ROOT}/{}", self.spec.name)
    }
}

impl ValidCluster {
    /// Shards the datasets are split into (at least 1, even while the spec asks for 0 workers).
    pub fn shards(&self) -> i32 {
        self.worker_replicas.max(1)
    }

    /// Worker pods the spec asks for: shards × replicas per shard.
    pub fn worker_pods(&self) -> i32 {
        self.worker_replicas.max(0) * self.replicas_per_shard
    }

    /// Secret holding the worker token (always generated).
    pub fn worker_token_secret(&self) -> String {
        format!("{}-worker-token", self.name)
    }

    /// Default name of the generated dashboard token Secret.
    pub fn generated_dashboard_token_secret(name: &str) -> String {
        format!("{name}-dashboard-token")
    }
}

/// Checks a DataCluster's spec. Errors are meant for users: they name the field.
pub fn validate(dc: &DataCluster, defaults: &Defaults) -> Result<ValidCluster> {
    let name = dc.metadata.name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let namespace = dc.metadata.namespace.clone().ok_or(Error::MissingField("metadata.namespace"))?;
    let owner = dc.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
    check_cluster_name(&name)?;
    let spec = &dc.spec;

    let (replicas_per_shard, worker_pods) = check_worker_counts(spec, defaults)?;
    let datasets = validate_datasets(spec)?;
    let (rollout_max_unavailable, progress_deadline) = check_rollout(spec, worker_pods)?;
    let (worker_pod, dashboard_pod) = pod_settings(spec, defaults)?;
    let dash = &spec.dashboard;
    let a = &dash.autoscaling;
    let Dashboard { resources: dashboard_resources, token: dashboard_token, generate_token: generate_dashboard_token } =
        check_dashboard(dash, &name)?;
    let idle_timeout = idle_timeout(spec)?;

    let annotations = dc.annotations();
    let restarted_at = annotations.get(RESTART_ANNOTATION).cloned();
    // A malformed resume request is ignored rather than failing the cluster: it comes
    // from a dashboard, not from the spec's author.
    let resume_requested_at = annotations.get(RESUME_ANNOTATION).and_then(|s| s.parse::<Timestamp>().ok());

    Ok(ValidCluster {
        generation: dc.metadata.generation.unwrap_or(0),
        owner,
        worker_replicas: spec.workers.replicas,
        replicas_per_shard,
        worker_image: spec.workers.image.clone().unwrap_or_else(|| defaults.worker_image.clone()),
        worker_pull_policy: spec.workers.image_pull_policy,
        worker_resources: spec
            .workers
            .resources
            .clone()
            .unwrap_or_else(|| default_worker_resources(&spec.datasets, spec.workers.replicas.max(1))),
        worker_threads: spec.workers.threads,
        worker_service_account: spec.workers.service_account_name.clone(),
        rollout_max_unavailable,
        rollout_strategy: spec.workers.rollout.strategy.unwrap_or(defaults.rollout_strategy),
        progress_deadline,
        worker_pod,
        dashboard_pod,
        datasets,
        dashboard_replicas: dash.replicas.max(1),
        dashboard_image: dash.image.clone().unwrap_or_else(|| defaults.dashboard_image.clone()),
        dashboard_pull_policy: dash.image_pull_policy,
        dashboard_resources,
        autoscaling: a.clone(),
        ingress: dash.ingress.clone(),
        dashboard_token,
        generate_dashboard_token,
        tile_url: dash.tile_url.clone(),
        image_pull_secrets: spec.image_pull_secrets.clone(),
        idle_timeout,
        on_idle: spec.lifecycle.on_idle,
        suspend: spec.lifecycle.suspend,
        restarted_at,
        resume_requested_at,
        created_at: dc.metadata.creation_timestamp.as_ref().map(|t| t.0),
        defaults: defaults.clone(),
        name,
        namespace,
    })
}

/// An invalid spec, `m` naming the field.
fn bad<T>(m: String) -> Result<T> {
    Err(Error::InvalidSpec(m))
}

/// Shards, replicas per shard, the worker pods they make, threads: returns
/// the replicas per shard and the worker pods.
fn check_worker_counts(spec: &DataClusterSpec, defaults: &Defaults) -> Result<(i32, i64)> {
    if !(0..=MAX_WORKER_PODS).contains(&spec.workers.replicas) {
        return bad(format!("workers.replicas is {}; 0 to {MAX_WORKER_PODS} allowed", spec.workers.replicas));
    }
    let replicas_per_shard = spec.workers.replicas_per_shard.unwrap_or(defaults.replicas_per_shard);
    if !(1..=MAX_REPLICAS_PER_SHARD).contains(&replicas_per_shard) {
        return bad(format!("workers.replicasPerShard is {replicas_per_shard}; 1 to {MAX_REPLICAS_PER_SHARD} allowed"));
    }
    let worker_pods = i64::from(spec.workers.replicas) * i64::from(replicas_per_shard);
    if worker_pods > i64::from(MAX_WORKER_PODS) {
        return bad(format!(
            "workers.replicas {} × replicasPerShard {replicas_per_shard} is {worker_pods} worker pods; \
             at most {MAX_WORKER_PODS} allowed",
            spec.workers.replicas
        ));
    }
    if let Some(t) = spec.workers.threads
        && !(1..=256).contains(&t)
    {
        return bad(format!("workers.threads is {t}; 1 to 256 allowed"));
    }
    Ok((replicas_per_shard, worker_pods))
}

/// The datasets, each checked as the workers would at load, names unique,
/// credentials Secrets mounted where `s3.credentialsDir` points.
fn validate_datasets(spec: &DataClusterSpec) -> Result<Vec<ValidDataset>> {
    if spec.datasets.is_empty() {
        return bad("datasets is empty; a cluster needs at least one dataset".into());
    }
    let mut seen = BTreeSet::new();
    let mut datasets = Vec::with_capacity(spec.datasets.len());
    for d in &spec.datasets {
        d.spec.validate().map_err(|e| Error::InvalidSpec(e.to_string()))?;
        // Detail columns: at most 32, each named once (what the workers would refuse at load).
        quiver_worker::details::detail_infos(&d.spec).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        if !seen.insert(d.spec.name.clone()) {
            return bad(format!("dataset name {:?} is used twice", d.spec.name));
        }
        let mut ds = ValidDataset { spec: d.spec.clone(), credentials: d.credentials_secret.clone() };
        if let Some(creds) = &d.credentials_secret {
            let has_dir = d.spec.s3.as_ref().is_some_and(|s| s.credentials_dir.is_some());
            if has_dir {
                return bad(format!(
                    "dataset {:?} gives both credentialsSecret and s3.credentialsDir; give one",
                    d.spec.name
                ));
            }
            check_object_name("credentialsSecret.name", &creds.name)?;
            let dir = ds.credentials_dir();
            ds.spec.s3.get_or_insert_with(S3Options::default).credentials_dir = Some(dir);
        }
        datasets.push(ds);
    }
    Ok(datasets)
}

/// `workers.rollout`: returns `maxUnavailable` as written and the progress deadline.
fn check_rollout(spec: &DataClusterSpec, worker_pods: i64) -> Result<(String, Duration)> {
    let rollout_max_unavailable = match &spec.workers.rollout.max_unavailable {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    };
    crate::rollout::resolve_max_unavailable(&rollout_max_unavailable, (worker_pods as i32).max(1))
        .map_err(|e| Error::InvalidSpec(format!("workers.rollout.{e}")))?;
    let progress_deadline = parse_duration(&spec.workers.rollout.progress_deadline)
        .map_err(|e| Error::InvalidSpec(format!("workers.rollout.progressDeadline: {e}")))?;
    if progress_deadline < MIN_IDLE_TIMEOUT {
        return bad(format!(
            "workers.rollout.progressDeadline {:?} is below the minimum of 1m",
            spec.workers.rollout.progress_deadline
        ));
    }
    Ok((rollout_max_unavailable, progress_deadline))
}

/// Worker and dashboard pod settings over the defaults, and the workers' ServiceAccount.
fn pod_settings(spec: &DataClusterSpec, defaults: &Defaults) -> Result<(PodSettings, PodSettings)> {
    let worker_pod = merge_pod_settings(&spec.workers.pod, &defaults.worker_pod);
    check_pod_settings("workers", &worker_pod)?;
    let dashboard_pod = merge_pod_settings(&spec.dashboard.pod, &defaults.dashboard_pod);
    check_pod_settings("dashboard", &dashboard_pod)?;
    if let Some(sa) = &spec.workers.service_account_name {
        check_dns_subdomain("workers.serviceAccountName", sa)?;
    }
    Ok((worker_pod, dashboard_pod))
}

/// What [`check_dashboard`] settles of `spec.dashboard`.
struct Dashboard {
    resources: ResourceRequirements,
    token: SecretKeyRef,
    generate_token: bool,
}

/// `spec.dashboard`: autoscaling bounds and its CPU request, ingress TLS, the
/// token Secret (named after the cluster when generated), the tile URL.
fn check_dashboard(dash: &DashboardSpec, name: &str) -> Result<Dashboard> {
    let a = &dash.autoscaling;
    if a.enabled && a.max_replicas < a.min_replicas {
        return bad(format!(
            "dashboard.autoscaling.maxReplicas {} is below minReplicas {}",
            a.max_replicas, a.min_replicas
        ));
    }
    let dashboard_resources = match &dash.resources {
        Some(r) => {
            let has_cpu = r.requests.as_ref().is_some_and(|m| m.contains_key("cpu"))
                || r.limits.as_ref().is_some_and(|m| m.contains_key("cpu"));
            if a.enabled && !has_cpu {
                return bad("dashboard.autoscaling needs a CPU request: set dashboard.resources.requests.cpu \
                     or disable autoscaling"
                    .into());
            }
            r.clone()
        }
        None => default_dashboard_resources(),
    };
    if dash.ingress.tls.is_some() && dash.ingress.host.is_none() {
        return bad("dashboard.ingress.tls needs dashboard.ingress.host".into());
    }
    let (dashboard_token, generate_dashboard_token) = match &dash.token_secret_ref {
        Some(r) => {
            check_object_name("dashboard.tokenSecretRef.name", &r.name)?;
            (r.clone(), false)
        }
        None => {
            (SecretKeyRef { name: ValidCluster::generated_dashboard_token_secret(name), key: "token".into() }, true)
        }
    };
    if let Some(url) = &dash.tile_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return bad(format!("dashboard.tileUrl {url:?} must be an http(s) URL"));
    }

    Ok(Dashboard { resources: dashboard_resources, token: dashboard_token, generate_token: generate_dashboard_token })
}

/// `lifecycle.idleTimeout`, at least [`MIN_IDLE_TIMEOUT`] when set.
fn idle_timeout(spec: &DataClusterSpec) -> Result<Option<Duration>> {
    let idle_timeout = match &spec.lifecycle.idle_timeout {
        None => None,
        Some(s) => {
            let d = parse_duration(s).map_err(|e| Error::InvalidSpec(format!("lifecycle.idleTimeout: {e}")))?;
            if d < MIN_IDLE_TIMEOUT {
                return bad(format!("lifecycle.idleTimeout {s:?} is below the minimum of 1m"));
            }
            Some(d)
        }
    };

    Ok(idle_timeout)
}

/// A spec's pod settings over the cluster defaults: each field the spec sets
/// wins; labels and annotations are merged, the spec's values winning.
pub fn merge_pod_settings(spec: &PodSettings, defaults: &PodSettings) -> PodSettings {
    fn or<T: Clone>(spec: &[T], default: &[T]) -> Vec<T> {
        if spec.is_empty() { default } else { spec }.to_vec()
    }
    let merged = |d: &std::collections::BTreeMap<String, String>, s: &std::collections::BTreeMap<String, String>| {
        let mut m = d.clone();
        m.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    };
    PodSettings {
        node_selector: if spec.node_selector.is_empty() {
            defaults.node_selector.clone()
        } else {
            spec.node_selector.clone()
        },
        tolerations: or(&spec.tolerations, &defaults.tolerations),
        affinity: spec.affinity.clone().or_else(|| defaults.affinity.clone()),
        topology_spread_constraints: or(&spec.topology_spread_constraints, &defaults.topology_spread_constraints),
        priority_class_name: spec.priority_class_name.clone().or_else(|| defaults.priority_class_name.clone()),
        pod_labels: merged(&defaults.pod_labels, &spec.pod_labels),
        pod_annotations: merged(&defaults.pod_annotations, &spec.pod_annotations),
    }
}

/// Checks what the schema cannot: label syntax, reserved keys, names.
fn check_pod_settings(component: &str, p: &PodSettings) -> Result<()> {
    for (k, v) in &p.pod_labels {
        if k.starts_with("app.kubernetes.io/") {
            return Err(Error::InvalidSpec(format!("{component}.podLabels: {k:?} is set by the operator")));
        }
        check_label(&format!("{component}.podLabels"), k, v)?;
    }
    for (k, v) in &p.node_selector {
        check_label(&format!("{component}.nodeSelector"), k, v)?;
    }
    for k in p.pod_annotations.keys() {
        if k.starts_with("quiver.dev/") {
            return Err(Error::InvalidSpec(format!("{component}.podAnnotations: {k:?} is set by the operator")));
        }
        check_qualified_name(&format!("{component}.podAnnotations"), k)?;
    }
    if let Some(pc) = &p.priority_class_name {
        check_dns_subdomain(&format!("{component}.priorityClassName"), pc)?;
    }
    Ok(())
}

fn check_label(field: &str, key: &str, value: &str) -> Result<()> {
    check_qualified_name(field, key)?;
    let ok = value.is_empty()
        || (value.len() <= 63
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric()
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "{field}: value {value:?} of {key:?} is not a valid label value (at most 63 letters, digits, '-', '_', '.')"
        )))
    }
}

/// `[prefix/]name`: a DNS subdomain prefix and a 63-character name.
fn check_qualified_name(field: &str, key: &str) -> Result<()> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let prefix_ok = prefix.is_none_or(|p| check_dns_subdomain(field, p).is_ok());
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!("{field}: key {key:?} is not a valid qualified name ([prefix/]name)")))
    }
}

fn check_dns_subdomain(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "{field} {name:?} is not a valid name (lowercase letters, digits, '-' and '.')"
        )))
    }
}

/// In-memory bytes per row a worker holds for a dataset: the presets' as
/// measured with their default detail columns, rounded up (celltowers 18.2
/// at 40 M rows, `quiver-worker bench`), else 8 for x/y plus 4 per
/// dimension. The quarter the request adds covers a load's peak (1.24× what
/// it leaves at 40 M rows).
pub fn bytes_per_row(d: &DatasetSpec) -> u64 {
    match d.preset {
        Some(quiver_worker::spec::Preset::Celltowers) => 19,
        Some(quiver_worker::spec::Preset::Ais) => 24,
        None => 8 + 4 * d.view.as_ref().map_or(4, |v| v.dimensions.len() as u64),
    }
}

/// Memory request of a worker without `workers.resources`: its share of every
/// dataset's `expectedRows` × bytes per row, plus a quarter, plus 256 MiB for
/// the process and loading buffers, rounded up to 64 MiB; 1 GiB when a size
/// is unknown. CPU: 500m. Requests only, so workers are never BestEffort and
/// may use spare memory; set `workers.resources` for limits.
pub fn default_worker_resources(datasets: &[crate::crd::ClusterDataset], shards: i32) -> ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    const MIB: u64 = 1 << 20;
    let memory = if datasets.iter().all(|d| d.expected_rows.is_some()) {
        let bytes: u64 = datasets
            .iter()
            .map(|d| {
                let rows = d.expected_rows.unwrap_or(0).max(0) as u64;
                rows.div_ceil(shards.max(1) as u64) * bytes_per_row(&d.spec)
            })
            .sum();
        let mib = (bytes + bytes / 4).div_ceil(MIB) + 256;
        format!("{}Mi", mib.div_ceil(64) * 64)
    } else {
        "1Gi".into()
    };
    ResourceRequirements {
        requests: Some(
            [("cpu".to_string(), Quantity("500m".into())), ("memory".to_string(), Quantity(memory))]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

fn default_dashboard_resources() -> ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    ResourceRequirements {
        requests: Some(
            [("cpu".to_string(), Quantity("100m".into())), ("memory".to_string(), Quantity("128Mi".into()))]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

/// Checks the DataCluster name: children such as `NAME-workers` must be valid
/// Service names and leave room for pod and revision suffixes.
pub fn check_cluster_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "name {name:?} must start with a letter, hold only lowercase letters, digits and dashes, \
             and be at most {MAX_NAME_LEN} characters (children are named NAME-workers, NAME-dashboard-token...)"
        )))
    }
}

fn check_object_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok { Ok(()) } else { Err(Error::InvalidSpec(format!("{field} {name:?} is not a valid Secret name"))) }
}

/// Parses a Go-style duration made of `<digits><h|m|s>` parts, e.g. `1h30m`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration; expected e.g. 30m or 1h30m".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!("{s:?}: unexpected {c:?}; expected e.g. 30m or 1h30m (units h, m, s)"));
            }
        };
        if digits.is_empty() {
            return Err(format!("{s:?}: unit {c:?} has no number before it"));
        }
        let n: u64 = digits.parse().map_err(|_| format!("{s:?}: number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?}: duration too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{s:?}: number {digits} has no unit (h, m or s)"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_go_syntax() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h0m5s"), Ok(Duration::from_secs(7205)));
    }

    #[test]
    fn bad_durations_are_rejected_with_the_value() {
        for bad in ["", "30", "m", "1d", "1.5h", "-1m", "99999999999999999999h"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")) || bad.is_empty(), "{bad}: {e}");
        }
    }

    #[test]
    fn cluster_names_must_leave_room_for_children() {
        assert!(check_cluster_name("demo").is_ok());
        assert!(check_cluster_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_cluster_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(check_cluster_name("1demo").is_err());
        assert!(check_cluster_name("demo-").is_err());
        assert!(check_cluster_name("Demo").is_err());
    }
}
