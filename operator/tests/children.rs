//! Behaviour of the child builders beyond the goldens: variants of the spec.

use crate::common;

use common::{fixture, valid_fixture};
use k8s_openapi::api::apps::v1::StatefulSet;
use quiver_operator::children::{
    TEMPLATE_HASH_ANNOTATION, build_all, build_surge_statefulset, build_worker_statefulset, dashboard_url,
    worker_selector_string, worker_template_hash,
};
use quiver_operator::validate::{Defaults, validate};

fn env_of(sts: &StatefulSet, name: &str) -> Option<String> {
    let spec = sts.spec.template.spec.as_ref().unwrap();
    spec.containers[0].env.as_ref().unwrap().iter().find(|e| e.name == name).and_then(|e| e.value.clone())
}

#[test]
fn a_minimal_cluster_gets_an_autoscaled_dashboard_and_no_ingress() {
    let text = std::fs::read_to_string(common::crate_dir().join("tests/fixtures/minimal.yaml")).unwrap();
    let dc = serde_yaml::from_str(&text).unwrap();
    let c = validate(&dc, &Defaults::default()).unwrap();
    let ch = build_all(&c, c.worker_pods());
    assert!(ch.ingress.is_none());
    let hpa = ch.hpa.expect("autoscaling is on by default");
    assert_eq!(hpa.spec.min_replicas, Some(1));
    assert_eq!(hpa.spec.max_replicas, 3);
    assert_eq!(ch.dashboard.spec.replicas, None, "the HPA owns the replica count");
    assert_eq!(ch.workers.spec.replicas, Some(2), "two workers by default");
    let image = ch.workers.spec.template.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image, format!("ghcr.io/quiver-dev/quiver-worker:{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(dashboard_url(&c, None), "http://towers-dashboard.default.svc:8050/");
}

#[test]
fn without_autoscaling_the_deployment_carries_the_replicas_and_no_hpa_is_built() {
    let mut dc = fixture();
    dc.spec.dashboard.autoscaling.enabled = false;
    let c = validate(&dc, &Defaults::default()).unwrap();
    let ch = build_all(&c, c.worker_pods());
    assert!(ch.hpa.is_none());
    assert_eq!(ch.dashboard.spec.replicas, Some(2));
}

#[test]
fn suspending_changes_only_the_replica_count_so_resuming_does_not_roll_the_workers() {
    let c = valid_fixture();
    let running = build_worker_statefulset(&c, c.worker_pods());
    let suspended = build_worker_statefulset(&c, 0);
    assert_eq!(running.spec.replicas, Some(4));
    assert_eq!(suspended.spec.replicas, Some(0));
    assert_eq!(running.spec.template, suspended.spec.template);
    assert_eq!(env_of(&suspended, "QUIVER_SHARDS").as_deref(), Some("4"));
}

#[test]
fn scaling_the_workers_changes_the_shard_count_in_the_pod_template() {
    let mut dc = fixture();
    let before = validate(&dc, &Defaults::default()).unwrap();
    dc.spec.workers.replicas = 8;
    let after = validate(&dc, &Defaults::default()).unwrap();
    let (a, b) = (build_worker_statefulset(&before, 4), build_worker_statefulset(&after, 8));
    assert_eq!(env_of(&a, "QUIVER_SHARDS").as_deref(), Some("4"));
    assert_eq!(env_of(&b, "QUIVER_SHARDS").as_deref(), Some("8"));
    assert_eq!(b.spec.replicas, Some(8));
    assert_ne!(a.spec.template, b.spec.template, "a new template makes the StatefulSet roll every pod");
    // Pods learn their shard index from their own name (NAME-workers-<ordinal>).
    let pod_name_env = b.spec.template.spec.as_ref().unwrap().containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "QUIVER_POD_NAME")
        .unwrap()
        .value_from
        .clone()
        .unwrap();
    assert_eq!(pod_name_env.field_ref.unwrap().field_path, "metadata.name");
}

#[test]
fn the_restart_annotation_is_copied_to_the_pod_template_and_a_new_value_rolls_the_workers() {
    let mut dc = fixture();
    let first = build_worker_statefulset(&validate(&dc, &Defaults::default()).unwrap(), 4);
    let ann = first.spec.template.metadata.as_ref().unwrap().annotations.clone().unwrap();
    assert_eq!(ann["quiver.dev/restartedAt"], "2026-01-06T12:00:00Z");
    dc.metadata.annotations.as_mut().unwrap().insert("quiver.dev/restartedAt".into(), "2026-01-07T08:30:00Z".into());
    let second = build_worker_statefulset(&validate(&dc, &Defaults::default()).unwrap(), 4);
    assert_ne!(first.spec.template, second.spec.template);
    dc.metadata.annotations = None;
    let none = build_worker_statefulset(&validate(&dc, &Defaults::default()).unwrap(), 4);
    assert!(
        !none.spec.template.metadata.unwrap().annotations.unwrap_or_default().contains_key("quiver.dev/restartedAt")
    );
}

#[test]
fn the_template_hash_tells_worker_generations_apart_in_either_statefulset() {
    let hash = |sts: &StatefulSet| {
        sts.spec.template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[TEMPLATE_HASH_ANNOTATION].clone()
    };
    let mut dc = fixture();
    let c = validate(&dc, &Defaults::default()).unwrap();
    let main = build_worker_statefulset(&c, 4);
    // The same spec, any replica count, and the surge StatefulSet: one generation.
    assert_eq!(hash(&main), worker_template_hash(&c));
    assert_eq!(hash(&main), hash(&build_worker_statefulset(&c, 0)));
    assert_eq!(hash(&main), hash(&build_surge_statefulset(&c, 4)));
    assert_eq!(hash(&main).len(), 16);
    // Every change of the template is a new generation.
    let mut seen = vec![hash(&main)];
    let mut differs = |dc: &quiver_operator::crd::DataCluster, what: &str| {
        let h = worker_template_hash(&validate(dc, &Defaults::default()).unwrap());
        assert!(!seen.contains(&h), "{what}: the template hash did not change");
        seen.push(h);
    };
    dc.spec.workers.image = Some("registry.example/quiver-worker:next".into());
    differs(&dc, "image");
    dc.metadata.annotations.as_mut().unwrap().insert("quiver.dev/restartedAt".into(), "2026-01-07T08:30:00Z".into());
    differs(&dc, "restart annotation");
    dc.spec.workers.replicas = 8;
    differs(&dc, "shard count");
}

#[test]
fn a_session_token_key_is_projected_next_to_the_access_keys() {
    let mut dc = fixture();
    dc.spec.datasets[0].credentials_secret.as_mut().unwrap().session_token_key = Some("AWS_SESSION_TOKEN".into());
    let c = validate(&dc, &Defaults::default()).unwrap();
    let sts = build_worker_statefulset(&c, 4);
    let volumes = sts.spec.template.spec.unwrap().volumes.unwrap();
    let creds = volumes.iter().find(|v| v.name == "credentials-0").unwrap();
    let items = creds.secret.as_ref().unwrap().items.as_ref().unwrap();
    let paths: Vec<_> = items.iter().map(|i| (i.key.as_str(), i.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            ("AWS_ACCESS_KEY_ID", "accessKeyId"),
            ("AWS_SECRET_ACCESS_KEY", "secretAccessKey"),
            ("AWS_SESSION_TOKEN", "sessionToken")
        ]
    );
    // The worker finds the files through the dataset's s3.credentialsDir.
    let datasets: serde_json::Value =
        serde_json::from_str(&build_all(&c, 4).datasets.data.unwrap()["datasets.json"]).unwrap();
    assert_eq!(datasets[0]["s3"]["credentialsDir"], "/var/run/quiver/credentials/celltowers");
    assert!(datasets[1]["s3"].get("credentialsDir").is_none());
}

#[test]
fn a_given_dashboard_token_secret_is_mounted_and_none_is_generated() {
    let mut dc = fixture();
    dc.spec.dashboard.token_secret_ref =
        Some(quiver_operator::crd::SecretKeyRef { name: "team-token".into(), key: "password".into() });
    let c = validate(&dc, &Defaults::default()).unwrap();
    assert!(!c.generate_dashboard_token);
    let d = build_all(&c, 4).dashboard;
    let vols = d.spec.template.spec.unwrap().volumes.unwrap();
    let secret = vols.iter().find(|v| v.name == "dashboard-token").unwrap().secret.clone().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("team-token"));
    assert_eq!(secret.items.unwrap()[0].key, "password");
}

#[test]
fn the_dashboard_url_follows_the_ingress() {
    let mut dc = fixture();
    assert_eq!(dashboard_url(&valid_fixture(), None), "https://quiver.example.com/");
    dc.spec.dashboard.ingress.tls = None;
    dc.spec.dashboard.ingress.host = None;
    let c = validate(&dc, &Defaults::default()).unwrap();
    assert_eq!(dashboard_url(&c, Some("203.0.113.7")), "http://203.0.113.7/");
    assert_eq!(dashboard_url(&c, None), "http://demo-dashboard.analytics.svc:8050/");
}

#[test]
fn the_scale_selector_names_the_worker_pods() {
    assert_eq!(
        worker_selector_string("demo"),
        "app.kubernetes.io/component=worker,app.kubernetes.io/instance=demo,app.kubernetes.io/name=quiver"
    );
}

#[test]
fn invalid_specs_are_rejected_with_the_field_named() {
    type Mutation = Box<dyn Fn(&mut quiver_operator::crd::DataCluster)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|d| d.spec.datasets.clear()), "datasets is empty"),
        (Box::new(|d| d.spec.workers.replicas = -1), "workers.replicas"),
        (Box::new(|d| d.spec.lifecycle.idle_timeout = Some("30s".into())), "idleTimeout"),
        (Box::new(|d| d.spec.lifecycle.idle_timeout = Some("soon".into())), "idleTimeout"),
        (Box::new(|d| d.spec.datasets[1].spec.name = "celltowers".into()), "used twice"),
        (Box::new(|d| d.spec.datasets[0].spec.source = "not a url".into()), "not a URL"),
        (
            Box::new(|d| {
                d.spec.datasets[0].spec.s3.as_mut().unwrap().credentials_dir = Some("/x".into());
            }),
            "credentialsSecret and s3.credentialsDir",
        ),
        (
            Box::new(|d| {
                d.spec.dashboard.autoscaling.max_replicas = 1;
            }),
            "maxReplicas",
        ),
        (
            Box::new(|d| {
                d.spec.dashboard.resources = Some(Default::default());
            }),
            "CPU request",
        ),
        (Box::new(|d| d.metadata.name = Some("x".repeat(45))), "at most 44"),
    ];
    for (mutate, needle) in cases {
        let mut dc = fixture();
        mutate(&mut dc);
        let err = validate(&dc, &Defaults::default()).expect_err(needle).to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    }
}

#[test]
fn the_worker_pdb_never_blocks_a_drain_on_workers_that_are_not_ready() {
    // Loading or crash-looping workers are not "healthy"; with the default
    // policy a drain would wait on them forever.
    let c = valid_fixture();
    let pdb = build_all(&c, c.worker_pods()).pdb;
    let spec = pdb.spec.unwrap();
    assert_eq!(spec.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"));
}

#[test]
fn only_the_operator_in_its_own_namespace_reaches_the_workers() {
    let c = valid_fixture();
    let np = serde_json::to_value(build_all(&c, c.worker_pods()).network_policy).unwrap();
    let from = np["spec"]["ingress"][0]["from"].as_array().unwrap().clone();
    let operator_peer = from
        .iter()
        .find(|p| p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "quiver-operator")
        .expect("a peer for the operator");
    assert_eq!(
        operator_peer["namespaceSelector"]["matchLabels"],
        serde_json::json!({"kubernetes.io/metadata.name": "quiver-system"}),
        "Defaults::default() names quiver-system as the operator's namespace"
    );
}

#[test]
fn the_dataset_list_reaches_the_workers_as_a_mounted_file_and_a_change_rolls_them() {
    // 32 datasets with long sources: far beyond what one environment variable may hold.
    let mut dc = fixture();
    let template = dc.spec.datasets[1].clone();
    dc.spec.datasets = (0..32)
        .map(|i| {
            let mut d = template.clone();
            d.spec.name = format!("ds-{i}");
            d.spec.source = format!("s3://bucket/{}/", "p".repeat(4000));
            d
        })
        .collect();
    let c = validate(&dc, &Defaults::default()).unwrap();
    let sts = build_worker_statefulset(&c, 4);
    assert_eq!(env_of(&sts, "QUIVER_DATASETS"), None, "no list in the environment");
    assert_eq!(env_of(&sts, "QUIVER_DATASETS_FILE").as_deref(), Some("/etc/quiver/datasets/datasets.json"));
    let ch = build_all(&c, 4);
    let file = ch.datasets.data.as_ref().unwrap()["datasets.json"].clone();
    assert!(file.len() > 128 * 1024);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&file).unwrap();
    assert_eq!(listed.len(), 32);
    let spec = sts.spec.template.spec.as_ref().unwrap();
    let volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.config_map.as_ref().is_some_and(|cm| cm.name == "demo-datasets"))
        .expect("the ConfigMap is a volume");
    assert!(
        spec.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == volume.name && m.mount_path == "/etc/quiver/datasets")
    );
    // Same list, same template; a new list, a new template (the workers roll).
    assert_eq!(build_worker_statefulset(&c, 4).spec.template, sts.spec.template);
    dc.spec.datasets[5].spec.source = "s3://bucket/other/".into();
    let changed = build_worker_statefulset(&validate(&dc, &Defaults::default()).unwrap(), 4);
    assert_ne!(changed.spec.template, sts.spec.template);
}

#[test]
fn pod_settings_reach_both_pod_templates_over_the_cluster_defaults() {
    let yaml = r#"
apiVersion: quiver.dev/v1alpha1
kind: DataCluster
metadata: {name: towers, namespace: analytics, uid: u-1, generation: 1}
spec:
  datasets: [{name: towers, preset: celltowers, source: "s3://b/t/"}]
  workers:
    serviceAccountName: quiver-s3-reader
    nodeSelector: {pool: memory-optimised}
    tolerations: [{key: dedicated, operator: Equal, value: quiver, effect: NoSchedule}]
    topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]
    priorityClassName: analytics-high
    podLabels: {team: geo}
    podAnnotations: {example.com/cost-centre: "42"}
  dashboard:
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [arm64]}]}]
    podLabels: {team: web}
"#;
    let dc = serde_yaml::from_str(yaml).unwrap();
    let mut defaults = Defaults::default();
    defaults.worker_pod.node_selector.insert("pool".into(), "general".into());
    defaults.dashboard_pod.node_selector.insert("pool".into(), "general".into());
    defaults.dashboard_pod.priority_class_name = Some("platform-default".into());
    defaults.worker_pod.pod_labels.insert("cost".into(), "shared".into());
    let c = validate(&dc, &defaults).unwrap();
    let ch = build_all(&c, c.worker_pods());

    let w = serde_json::to_value(&ch.workers.spec.template).unwrap();
    assert_eq!(w["spec"]["serviceAccountName"], "quiver-s3-reader");
    assert_eq!(w["spec"]["automountServiceAccountToken"], false);
    assert_eq!(w["spec"]["nodeSelector"], serde_json::json!({"pool": "memory-optimised"}), "the spec wins");
    assert_eq!(w["spec"]["tolerations"][0]["key"], "dedicated");
    assert_eq!(w["spec"]["priorityClassName"], "analytics-high");
    assert_eq!(
        w["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "worker",
        "a constraint without a selector spreads this component's pods"
    );
    assert_eq!(w["metadata"]["labels"]["team"], "geo");
    assert_eq!(w["metadata"]["labels"]["cost"], "shared", "default labels merged");
    assert_eq!(w["metadata"]["labels"]["app.kubernetes.io/instance"], "towers");
    assert_eq!(w["metadata"]["annotations"]["example.com/cost-centre"], "42");

    let d = serde_json::to_value(&ch.dashboard.spec.template).unwrap();
    assert_eq!(d["spec"]["nodeSelector"], serde_json::json!({"pool": "general"}), "the default applies");
    assert_eq!(d["spec"]["priorityClassName"], "platform-default");
    assert_eq!(
        d["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["values"][0],
        "arm64"
    );
    assert_eq!(d["metadata"]["labels"]["team"], "web");
    // Selectors are untouched by extra labels.
    assert_eq!(ch.workers.spec.selector.match_labels.as_ref().unwrap().len(), 3);
}

#[test]
fn pod_settings_the_operator_owns_or_kubernetes_refuses_are_invalid() {
    for (field, value) in [
        ("podLabels", r#"{app.kubernetes.io/instance: other}"#),
        ("podLabels", r#"{team: "not a label value"}"#),
        ("podAnnotations", r#"{quiver.dev/restartedAt: now}"#),
        ("nodeSelector", r#"{"bad key!": x}"#),
        ("priorityClassName", r#"High_Priority"#),
        ("serviceAccountName", r#"Not.Valid"#),
    ] {
        let yaml = format!(
            "apiVersion: quiver.dev/v1alpha1\nkind: DataCluster\nmetadata: {{name: t, namespace: n, uid: u}}\n\
             spec:\n  datasets: [{{name: t, preset: celltowers, source: \"s3://b/t/\"}}]\n  workers:\n    {field}: {value}\n"
        );
        let dc = serde_yaml::from_str(&yaml).unwrap();
        let e = validate(&dc, &Defaults::default()).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn workers_without_resources_request_memory_sized_from_their_datasets() {
    let sized = |yaml: &str| {
        let dc = serde_yaml::from_str(yaml).unwrap();
        let c = validate(&dc, &Defaults::default()).unwrap();
        let sts = build_worker_statefulset(&c, c.worker_pods());
        let r = sts.spec.template.spec.unwrap().containers[0].resources.clone().expect("never BestEffort");
        let req = r.requests.unwrap();
        (req["memory"].0.clone(), req["cpu"].0.clone())
    };
    // 40 M cell towers over 2 workers: 20 M rows x 19 B x 1.25 + 256 MiB, rounded up to 64 MiB.
    let with_rows = "apiVersion: quiver.dev/v1alpha1\nkind: DataCluster\nmetadata: {name: t, namespace: n, uid: u}\n\
        spec:\n  workers: {replicas: 2}\n  datasets: [{name: t, preset: celltowers, source: \"s3://b/t/\", expectedRows: 40000000}]\n";
    assert_eq!(sized(with_rows), ("768Mi".to_string(), "500m".to_string()));
    // Unknown size: a floor that still schedules honestly.
    let without = "apiVersion: quiver.dev/v1alpha1\nkind: DataCluster\nmetadata: {name: t, namespace: n, uid: u}\n\
        spec:\n  datasets: [{name: t, preset: celltowers, source: \"s3://b/t/\"}]\n";
    assert_eq!(sized(without), ("1Gi".to_string(), "500m".to_string()));
}

#[test]
fn the_dashboard_pod_holds_no_api_credential_and_resumes_through_the_operator() {
    let dc = fixture();
    let defaults = Defaults {
        resume_url: Some("http://quiver-operator-resume.quiver-system.svc:8081".into()),
        ..Defaults::default()
    };
    let c = validate(&dc, &defaults).unwrap();
    let ch = build_all(&c, c.worker_pods());
    let pod = ch.dashboard.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(ch.service_account.automount_service_account_token, Some(false));
    assert!(
        ch.manifests().iter().all(|m| m.kind != "Role" && m.kind != "RoleBinding"),
        "no Role lets the dashboard change its DataCluster"
    );
    let env = pod.containers[0].env.as_ref().unwrap();
    assert_eq!(
        env.iter().find(|e| e.name == "QUIVER_OPERATOR_URL").and_then(|e| e.value.as_deref()),
        Some("http://quiver-operator-resume.quiver-system.svc:8081")
    );
}
