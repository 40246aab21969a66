//! The worker StatefulSet and its headless Service.
//!
//! Sharding: the StatefulSet runs `shards × replicasPerShard` pods; pod
//! `NAME-workers-i` serves shard `i mod shards` (the worker reads its ordinal
//! from `QUIVER_POD_NAME`), and `QUIVER_SHARDS` is `spec.workers.replicas`.
//! Re-sharding changes `QUIVER_SHARDS` in the pod template, so every pod is
//! replaced and reloads its new share from the source; changing only
//! `replicasPerShard` changes the pod count, not the template (beyond the
//! placement rules that appear when it first exceeds 1), so existing pods
//! keep their shard.
//!
//! Placement: one StatefulSet cannot template a per-shard label, so replicas
//! are spread as all of the cluster's workers are: a preferred pod
//! anti-affinity on the node and a zone spread (ScheduleAnyway), added to the
//! platform's own settings when `replicasPerShard` exceeds 1. The operator
//! reports a shard whose replicas all landed on one node (`crate::placement`).
//!
//! The dataset list reaches the workers as a file from ConfigMap
//! `NAME-datasets` (an environment variable is limited to 128 KiB), and the
//! pod template carries its hash, so a change to the list rolls the workers.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PodAffinityTerm, PodSpec, PodTemplateSpec, Probe,
    SecretVolumeSource, Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    Component, FLIGHT_PORT, TOKEN_KEY, WORKER_HTTP_PORT, WORKER_TOKEN_DIR, apply_pod_settings, child_meta,
    container_security, labels, pod_security, selector_labels,
};
use crate::crd::RESTART_ANNOTATION;
use crate::validate::ValidCluster;

/// Name of the worker StatefulSet and of its headless Service.
pub fn workers_name(c: &ValidCluster) -> String {
    format!("{}-workers", c.name)
}

/// The Flight endpoint of worker `ordinal`, through the headless Service's per-pod DNS.
pub fn worker_endpoint(cluster: &str, namespace: &str, ordinal: u32, cluster_domain: &str) -> String {
    format!("http://{cluster}-workers-{ordinal}.{cluster}-workers.{namespace}.svc.{cluster_domain}:{FLIGHT_PORT}")
}

/// Label of the surge StatefulSet's pods (and in its selector), so that the
/// two StatefulSets of a surge re-shard never select each other's pods.
pub const WORKER_SET_LABEL: &str = "quiver.dev/worker-set";
/// Annotation of the worker Service while it is pinned to one revision.
pub const SERVING_REVISION_ANNOTATION: &str = "quiver.dev/serving-revision";
/// Annotation of the worker Service: when it was pinned to that revision.
pub const SERVING_SINCE_ANNOTATION: &str = "quiver.dev/serving-since";
/// Label the StatefulSet controller puts on each pod (its template revision).
const REVISION_LABEL: &str = "controller-revision-hash";

/// The worker Service of a surge re-shard: selecting only the pods of one
/// StatefulSet revision (the generation that answers), so that its DNS
/// records, the dashboards' list of workers, never mix two shard counts.
pub fn pin_worker_service(mut svc: Service, pin: &crate::rollout::Pin) -> Service {
    if let Some(spec) = svc.spec.as_mut() {
        spec.selector.get_or_insert_with(BTreeMap::new).insert(REVISION_LABEL.into(), pin.revision.clone());
    }
    let annotations = svc.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(SERVING_REVISION_ANNOTATION.into(), pin.revision.clone());
    annotations.insert(SERVING_SINCE_ANNOTATION.into(), pin.since.to_string());
    svc
}

/// The pin a worker Service carries, from its annotations.
pub fn pin_of(meta: &ObjectMeta) -> Option<crate::rollout::Pin> {
    let a = meta.annotations.as_ref()?;
    Some(crate::rollout::Pin {
        revision: a.get(SERVING_REVISION_ANNOTATION)?.clone(),
        since: a.get(SERVING_SINCE_ANNOTATION)?.parse().ok()?,
    })
}

/// The transitional StatefulSet of a surge re-shard (`NAME-surge`): the
/// workers' StatefulSet on the new shard count, under another name, its pods
/// labelled apart. Its pods keep the headless Service `NAME-workers` as their
/// subdomain; the Service selects them only while they answer.
pub fn build_surge_statefulset(c: &ValidCluster, replicas: i32) -> StatefulSet {
    let mut sts = build_worker_statefulset(c, replicas);
    let name = crate::rollout::surge_name(&c.name);
    sts.metadata.name = Some(name);
    let mark = |labels: &mut Option<BTreeMap<String, String>>| {
        labels.get_or_insert_with(BTreeMap::new).insert(WORKER_SET_LABEL.into(), "surge".into());
    };
    mark(&mut sts.metadata.labels);
    mark(&mut sts.spec.selector.match_labels);
    if let Some(m) = sts.spec.template.metadata.as_mut() {
        mark(&mut m.labels);
    }
    sts
}

/// The headless Service that gives each worker a DNS name and lets the
/// dashboard discover the ready workers.
pub fn build_worker_service(c: &ValidCluster) -> Service {
    Service {
        metadata: child_meta(c, workers_name(c), Component::Worker),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(false),
            selector: Some(selector_labels(&c.name, Component::Worker)),
            ports: Some(vec![
                ServicePort {
                    name: Some("flight".into()),
                    port: FLIGHT_PORT,
                    target_port: Some(IntOrString::String("flight".into())),
                    protocol: Some("TCP".into()),
                    app_protocol: Some("kubernetes.io/h2c".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("http".into()),
                    port: WORKER_HTTP_PORT,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
            ..Default::default()
        }),
    }
}

pub(super) fn http_probe(path: &str, port: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

pub(super) fn secret_volume(volume: &str, secret: &str, items: Vec<(String, String)>) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            // Readable by the pod's fsGroup only.
            default_mode: Some(0o440),
            items: Some(items.into_iter().map(|(key, path)| KeyToPath { key, path, mode: None, user: None }).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount { name: volume.into(), mount_path: path.into(), read_only: Some(true), ..Default::default() }
}

pub(super) fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
        VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() },
    )
}

/// The datasets as the workers read them from their datasets file.
pub fn datasets_json(c: &ValidCluster) -> String {
    let specs: Vec<_> = c.datasets.iter().map(|d| &d.spec).collect();
    serde_json::to_string_pretty(&specs).expect("dataset specs always serialise")
}

/// Where the dataset list is mounted in the workers.
pub const DATASETS_DIR: &str = "/etc/quiver/datasets";
/// Key (and file name) of the dataset list in its ConfigMap.
pub const DATASETS_KEY: &str = "datasets.json";
/// Pod template annotation holding the dataset list's hash: a new list rolls the workers.
pub const DATASETS_HASH_ANNOTATION: &str = "quiver.dev/datasets-hash";

/// Name of the ConfigMap holding the dataset list.
pub fn datasets_config_map_name(c: &ValidCluster) -> String {
    format!("{}-datasets", c.name)
}

/// The ConfigMap `NAME-datasets` holding the dataset list the workers load.
pub fn build_datasets_config_map(c: &ValidCluster) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(c, datasets_config_map_name(c), Component::Worker),
        data: Some([(DATASETS_KEY.to_string(), datasets_json(c))].into_iter().collect()),
        ..Default::default()
    }
}

/// FNV-1a (64 bit) of the dataset list, as 16 hex digits: stable across
/// operator builds, so an unchanged list never rolls the workers.
pub fn datasets_hash(c: &ValidCluster) -> String {
    fnv64(datasets_json(c).as_bytes())
}

fn fnv64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Node label of the zone a pod runs in.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// Node label of the node a pod runs on.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// Weight of the preferred anti-affinity between workers (the strongest).
const SPREAD_WEIGHT: i32 = 100;

/// With more than one replica per shard, spreads the cluster's workers over
/// nodes (preferred anti-affinity) and zones (a spread that schedules
/// anyway), on top of what the platform set: its node affinity and pod
/// (anti-)affinity terms are kept, ours appended; a zone spread of its own
/// replaces ours. Preferred, never required: a cluster with fewer nodes than
/// workers must still run, and the operator says so when a shard's replicas
/// share a node.
pub fn spread_replicas(mut template: PodTemplateSpec, c: &ValidCluster) -> PodTemplateSpec {
    if c.replicas_per_shard <= 1 {
        return template;
    }
    let selector =
        || LabelSelector { match_labels: Some(selector_labels(&c.name, Component::Worker)), match_expressions: None };
    let spec = template.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Default::default);
    let anti = affinity.pod_anti_affinity.get_or_insert_with(Default::default);
    anti.preferred_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(
        WeightedPodAffinityTerm {
            weight: SPREAD_WEIGHT,
            pod_affinity_term: PodAffinityTerm {
                label_selector: Some(selector()),
                topology_key: HOSTNAME_KEY.into(),
                ..Default::default()
            },
        },
    );
    let spreads = spec.topology_spread_constraints.get_or_insert_with(Vec::new);
    if !spreads.iter().any(|t| t.topology_key == ZONE_KEY) {
        spreads.push(TopologySpreadConstraint {
            max_skew: 1,
            topology_key: ZONE_KEY.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(selector()),
            ..Default::default()
        });
    }
    template
}

pub use crate::crd::TEMPLATE_HASH_ANNOTATION;

/// Stamps [`TEMPLATE_HASH_ANNOTATION`] on a worker pod template: FNV-1a of
/// its JSON without the stamp (maps serialise in key order, so the same spec
/// gives the same hash in every operator build that renders it the same).
fn stamp_template_hash(t: &mut PodTemplateSpec) {
    if let Some(a) = t.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
        a.remove(TEMPLATE_HASH_ANNOTATION);
    }
    let hash = fnv64(&serde_json::to_vec(t).expect("a pod template serialises"));
    t.metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_HASH_ANNOTATION.into(), hash);
}

/// The template hash of the worker pods the spec asks for now.
pub fn worker_template_hash(c: &ValidCluster) -> String {
    let sts = build_worker_statefulset(c, 0);
    sts.spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .and_then(|mut a| a.remove(TEMPLATE_HASH_ANNOTATION))
        .expect("the worker template is stamped")
}

/// The worker StatefulSet with `replicas` pods (0 while suspended; else
/// shards × replicas per shard) and `QUIVER_SHARDS` = the spec's shard count.
pub fn build_worker_statefulset(c: &ValidCluster, replicas: i32) -> StatefulSet {
    let shards = c.shards();
    let mut env_vars = vec![
        field_env("QUIVER_POD_NAME", "metadata.name"),
        env("QUIVER_SHARDS", shards.to_string()),
        env("QUIVER_DATASETS_FILE", format!("{DATASETS_DIR}/{DATASETS_KEY}")),
        env("QUIVER_FLIGHT_ADDR", format!("0.0.0.0:{FLIGHT_PORT}")),
        env("QUIVER_HTTP_ADDR", format!("0.0.0.0:{WORKER_HTTP_PORT}")),
        env("QUIVER_WORKER_TOKEN_FILE", format!("{WORKER_TOKEN_DIR}/{TOKEN_KEY}")),
        env("QUIVER_LOG_FORMAT", "json"),
    ];
    if let Some(t) = c.worker_threads {
        env_vars.push(env("QUIVER_THREADS", t.to_string()));
    }

    let (tmp, tmp_mount) = tmp_volume();
    let mut volumes = vec![
        secret_volume("worker-token", &c.worker_token_secret(), vec![(TOKEN_KEY.into(), TOKEN_KEY.into())]),
        Volume {
            name: "datasets".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: datasets_config_map_name(c),
                default_mode: Some(0o444),
                items: Some(vec![KeyToPath {
                    key: DATASETS_KEY.into(),
                    path: DATASETS_KEY.into(),
                    mode: None,
                    user: None,
                }]),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        },
        tmp,
    ];
    let mut mounts = vec![mount("worker-token", WORKER_TOKEN_DIR), mount("datasets", DATASETS_DIR), tmp_mount];
    for (i, d) in c.datasets.iter().enumerate() {
        let Some(creds) = &d.credentials else {
            continue;
        };
        let volume = format!("credentials-{i}");
        let mut items = vec![
            (creds.access_key_id_key.clone(), "accessKeyId".to_string()),
            (creds.secret_access_key_key.clone(), "secretAccessKey".to_string()),
        ];
        if let Some(k) = &creds.session_token_key {
            items.push((k.clone(), "sessionToken".to_string()));
        }
        volumes.push(secret_volume(&volume, &creds.name, items));
        mounts.push(mount(&volume, &d.credentials_dir()));
    }

    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    annotations.insert(DATASETS_HASH_ANNOTATION.into(), datasets_hash(c));
    if let Some(at) = &c.restarted_at {
        annotations.insert(RESTART_ANNOTATION.to_string(), at.clone());
    }

    let container = Container {
        name: "worker".into(),
        image: Some(c.worker_image.clone()),
        image_pull_policy: c.worker_pull_policy.map(|p| p.as_str().into()),
        args: Some(vec!["serve".into()]),
        env: Some(env_vars),
        ports: Some(vec![
            ContainerPort {
                name: Some("flight".into()),
                container_port: FLIGHT_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("http".into()),
                container_port: WORKER_HTTP_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        // Ready only once every dataset of the shard is loaded.
        readiness_probe: Some(http_probe("/readyz", "http", 5, 3)),
        // Never depends on loading or on the object store.
        liveness_probe: Some(http_probe("/healthz", "http", 10, 6)),
        resources: Some(c.worker_resources.clone()),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };

    let mut sts = StatefulSet {
        metadata: child_meta(c, workers_name(c), Component::Worker),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(workers_name(c)),
            // Shards load independently: start and stop them all at once.
            pod_management_policy: Some("Parallel".into()),
            // The operator replaces outdated pods itself (crate::rollout): in
            // parallel or in batches, never one loaded shard after another.
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&c.name, Component::Worker)),
                match_expressions: None,
            },
            template: spread_replicas(
                apply_pod_settings(
                    PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(&c.name, Component::Worker)),
                            annotations: Some(annotations),
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![container],
                            volumes: Some(volumes),
                            security_context: Some(pod_security()),
                            // A cloud identity (IRSA, Workload Identity) needs no API token.
                            service_account_name: c.worker_service_account.clone(),
                            automount_service_account_token: Some(false),
                            enable_service_links: Some(false),
                            termination_grace_period_seconds: Some(30),
                            image_pull_secrets: (!c.image_pull_secrets.is_empty())
                                .then(|| c.image_pull_secrets.clone()),
                            ..Default::default()
                        }),
                    },
                    &c.worker_pod,
                    &selector_labels(&c.name, Component::Worker),
                ),
                c,
            ),
            ..Default::default()
        },
        status: None,
    };
    stamp_template_hash(&mut sts.spec.template);
    sts
}
