//! Replicas per shard (`spec.workers.replicasPerShard`): validation, the
//! StatefulSet (pod count, shard count, placement), the PDB and the status
//! counting of shards with replicas. Pure.

use crate::common;

use common::fixture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Affinity, PodTemplateSpec, TopologySpreadConstraint};
use quiver_operator::activity::WorkerReport;
use quiver_operator::children::{build_all, build_surge_statefulset, build_worker_pdb, build_worker_statefulset};
use quiver_operator::crd::DataCluster;
use quiver_operator::status::{Note, events, summarize_shards};
use quiver_operator::validate::{Defaults, ValidCluster, validate};
use quiver_worker::protocol::{DatasetStats, LoadState, WorkerStats};
use serde_json::json;

/// The fixture (4 shards) with `replicasPerShard` set as given.
fn with_replicas(r: Option<i32>) -> DataCluster {
    let mut dc = fixture();
    dc.spec.workers.replicas_per_shard = r;
    dc
}

fn valid(r: Option<i32>) -> ValidCluster {
    validate(&with_replicas(r), &Defaults::default()).unwrap()
}

fn env_of(sts: &StatefulSet, name: &str) -> Option<String> {
    let spec = sts.spec.template.spec.as_ref().unwrap();
    spec.containers[0].env.as_ref().unwrap().iter().find(|e| e.name == name).and_then(|e| e.value.clone())
}

fn template_json(sts: &StatefulSet) -> serde_json::Value {
    serde_json::to_value(&sts.spec.template).unwrap()
}

fn placement(t: &PodTemplateSpec) -> (Option<Affinity>, Option<Vec<TopologySpreadConstraint>>) {
    let spec = t.spec.as_ref().unwrap();
    (spec.affinity.clone(), spec.topology_spread_constraints.clone())
}

#[test]
fn replicas_per_shard_defaults_to_one_and_takes_the_operator_default() {
    let c = valid(None);
    assert_eq!((c.worker_replicas, c.replicas_per_shard, c.worker_pods()), (4, 1, 4));
    let defaults = Defaults { replicas_per_shard: 3, ..Defaults::default() };
    let c = validate(&with_replicas(None), &defaults).unwrap();
    assert_eq!((c.replicas_per_shard, c.worker_pods()), (3, 12));
    // The spec wins over the operator default.
    let c = validate(&with_replicas(Some(2)), &defaults).unwrap();
    assert_eq!(c.worker_pods(), 8);
}

#[test]
fn out_of_range_replicas_per_shard_is_refused_naming_the_field() {
    for bad in [0, -1, 6] {
        let e = validate(&with_replicas(Some(bad)), &Defaults::default()).unwrap_err().to_string();
        assert!(e.contains("workers.replicasPerShard") && e.contains(&bad.to_string()), "{e}");
    }
    let mut dc = with_replicas(Some(2));
    dc.spec.workers.replicas = 600;
    let e = validate(&dc, &Defaults::default()).unwrap_err().to_string();
    assert!(e.contains("1200 worker pods") && e.contains("1024"), "{e}");
    dc.spec.workers.replicas = 512;
    assert!(validate(&dc, &Defaults::default()).is_ok());
}

#[test]
fn the_statefulset_runs_shards_times_replicas_pods_on_the_shard_count() {
    let c = valid(Some(2));
    let ch = build_all(&c, c.worker_pods());
    assert_eq!(ch.workers.spec.replicas, Some(8));
    assert_eq!(env_of(&ch.workers, "QUIVER_SHARDS").as_deref(), Some("4"), "QUIVER_SHARDS stays the shard count");
    // The surge re-shard's StatefulSet gets the same pod count and shard count.
    let surge = build_surge_statefulset(&c, c.worker_pods());
    assert_eq!(surge.spec.replicas, Some(8));
    assert_eq!(env_of(&surge, "QUIVER_SHARDS").as_deref(), Some("4"));
}

#[test]
fn replicated_workers_prefer_distinct_nodes_and_spread_over_zones() {
    let c = valid(Some(2));
    let sts = build_worker_statefulset(&c, c.worker_pods());
    let t = template_json(&sts);
    let selector = json!({"matchLabels": {
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/name": "quiver"
    }});
    assert_eq!(
        t["spec"]["affinity"],
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}
        }]}})
    );
    assert_eq!(
        t["spec"]["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}])
    );
    // One replica per shard: no placement rules of ours (the template of
    // existing clusters is unchanged, so an operator upgrade rolls nothing).
    let single = build_worker_statefulset(&valid(None), 4);
    assert_eq!(placement(&single.spec.template), (None, None));
}

#[test]
fn the_platforms_affinity_and_spread_are_kept_beside_ours() {
    let mut dc = with_replicas(Some(3));
    dc.spec.workers.pod.affinity = Some(
        serde_json::from_value(json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["memory"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 10, "podAffinityTerm": {"topologyKey": "rack",
                    "labelSelector": {"matchLabels": {"team": "geo"}}}}]}
        }))
        .unwrap(),
    );
    dc.spec.workers.pod.topology_spread_constraints = vec![
        serde_json::from_value(json!({"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone",
                                      "whenUnsatisfiable": "DoNotSchedule"}))
        .unwrap(),
    ];
    let c = validate(&dc, &Defaults::default()).unwrap();
    let t = template_json(&build_worker_statefulset(&c, c.worker_pods()));
    let a = &t["spec"]["affinity"];
    assert_eq!(
        a["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
            [0]["key"],
        "pool"
    );
    let preferred = a["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"].as_array().unwrap();
    let keys: Vec<&str> = preferred.iter().map(|p| p["podAffinityTerm"]["topologyKey"].as_str().unwrap()).collect();
    assert_eq!(keys, ["rack", "kubernetes.io/hostname"]);
    // The platform's own zone spread replaces ours (two on one key would fight).
    let spreads = t["spec"]["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(spreads.len(), 1);
    assert_eq!(
        (spreads[0]["maxSkew"].as_i64(), spreads[0]["whenUnsatisfiable"].as_str()),
        (Some(2), Some("DoNotSchedule"))
    );
}

#[test]
fn changing_replicas_per_shard_scales_without_resharding() {
    let (two, three) = (valid(Some(2)), valid(Some(3)));
    let (a, b) =
        (build_worker_statefulset(&two, two.worker_pods()), build_worker_statefulset(&three, three.worker_pods()));
    assert_eq!((a.spec.replicas, b.spec.replicas), (Some(8), Some(12)));
    assert_eq!(a.spec.template, b.spec.template, "2 → 3 replicas: only the pod count changes");
    // 1 → 2: the shard count and everything but the placement rules stay.
    let one = valid(None);
    let mut single = template_json(&build_worker_statefulset(&one, one.worker_pods()));
    let mut double = template_json(&a);
    for t in [&mut single, &mut double] {
        let spec = t["spec"].as_object_mut().unwrap();
        spec.remove("affinity");
        spec.remove("topologySpreadConstraints");
        // The template's hash, which follows every change of it.
        t["metadata"]["annotations"].as_object_mut().unwrap().remove("quiver.dev/template-hash");
    }
    assert_eq!(single, double);
}

#[test]
fn the_pdb_lets_one_worker_go_at_a_time_and_unhealthy_ones_always() {
    let c = valid(Some(2));
    let pdb = serde_json::to_value(build_worker_pdb(&c)).unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"], json!(1));
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], json!("AlwaysAllow"));
}

fn stats(shard: u32, shards: u32, state: LoadState, rows: u64) -> WorkerStats {
    WorkerStats {
        shard,
        shards,
        version: "0".into(),
        queries: 0,
        last_query_time: None,
        started_at: "2026-03-01T00:00:00Z".into(),
        datasets: vec![DatasetStats {
            name: "celltowers".into(),
            state,
            rows,
            bytes: 0,
            generation: "g".into(),
            load_seconds: 0.0,
            loaded_at: None,
            error: (state == LoadState::Failed).then(|| "s3://b/f.parquet: column lat missing".into()),
            reloading: false,
        }],
    }
}

fn report(ordinal: u32, s: WorkerStats) -> WorkerReport {
    WorkerReport { ordinal, outcome: Ok(s) }
}

/// The fixture with one dataset, 2 shards × 2 replicas (shard 0: pods 0, 2; shard 1: pods 1, 3).
fn two_by_two() -> ValidCluster {
    let mut dc = with_replicas(Some(2));
    dc.spec.workers.replicas = 2;
    dc.spec.datasets.truncate(1);
    validate(&dc, &Defaults::default()).unwrap()
}

#[test]
fn a_shard_is_complete_with_one_of_its_two_replicas_loaded() {
    let c = two_by_two();
    assert_eq!(c.datasets[0].spec.name, "celltowers");
    let reports = vec![
        report(0, stats(0, 2, LoadState::Ready, 100)),
        report(1, stats(1, 2, LoadState::Loading, 0)),
        report(2, stats(0, 2, LoadState::Loading, 0)),
        report(3, stats(1, 2, LoadState::Ready, 50)),
    ];
    let s = summarize_shards(&c, 4, 2, &reports);
    assert_eq!((s.ready, s.complete, s.expected, s.min_ready_replicas), (2, 2, 2, Some(1)));
    assert_eq!((s.datasets[0].shards_ready, s.datasets[0].shards, s.datasets[0].rows), (2, 2, 150));
    // Both replicas of both shards loaded: every row still counted once.
    let all: Vec<_> = (0..4).map(|o| report(o, stats(o % 2, 2, LoadState::Ready, [100, 50][o as usize % 2]))).collect();
    let s = summarize_shards(&c, 4, 2, &all);
    assert_eq!((s.ready, s.complete, s.min_ready_replicas), (4, 2, Some(2)));
    assert_eq!((s.datasets[0].shards_ready, s.datasets[0].rows), (2, 150));
}

#[test]
fn a_shard_with_no_loaded_replica_is_incomplete() {
    let c = two_by_two();
    let reports = vec![
        report(0, stats(0, 2, LoadState::Ready, 100)),
        report(1, stats(1, 2, LoadState::Failed, 0)),
        report(2, stats(0, 2, LoadState::Ready, 100)),
        report(3, stats(1, 2, LoadState::Failed, 0)),
    ];
    let s = summarize_shards(&c, 4, 2, &reports);
    assert_eq!((s.ready, s.complete, s.min_ready_replicas), (2, 1, Some(0)));
    assert_eq!((s.datasets[0].shards_ready, s.datasets[0].rows), (1, 100));
    // The two replicas' identical failure is said once.
    assert_eq!(s.failures, ["dataset celltowers shard 1/2: s3://b/f.parquet: column lat missing"]);
}

#[test]
fn replicas_on_another_shard_or_shard_count_are_not_counted() {
    let c = two_by_two();
    let reports = vec![
        // Pod 2 serves shard 0 of 2, but claims shard 1 (a worker that
        // computed its shard the old way): not counted for either.
        report(2, stats(1, 2, LoadState::Ready, 50)),
        // Pod 1 still on the old single shard (a re-shard in progress).
        report(1, stats(0, 1, LoadState::Ready, 150)),
    ];
    let s = summarize_shards(&c, 4, 2, &reports);
    assert_eq!((s.ready, s.complete, s.stale, s.min_ready_replicas), (0, 0, 2, Some(0)));
    assert_eq!(s.datasets[0].rows, 0);
    // Suspended: no shard expected, nothing complete.
    let s = summarize_shards(&c, 0, 2, &[]);
    assert_eq!((s.expected, s.complete, s.min_ready_replicas), (0, 0, None));
}

#[test]
fn a_shard_on_one_node_is_announced_once() {
    let spread = |status: &str, reason: &str| quiver_operator::crd::DataClusterStatus {
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "ReplicasSpread".into(),
            status: status.into(),
            reason: reason.into(),
            message: "shard 0 (demo-workers-0, demo-workers-2) on node-a".into(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }],
        ..Default::default()
    };
    let ok = spread("True", "Spread");
    let bad = spread("False", "ShardOnOneNode");
    let warned = |n: &[Note]| n.iter().filter(|n| n.reason == "ShardOnOneNode").count();
    let action = quiver_operator::lifecycle::Action::Run;
    assert_eq!(warned(&events(Some(&ok), &bad, action)), 1);
    assert_eq!(warned(&events(Some(&bad), &bad, action)), 0, "said once, not every pass");
    assert_eq!(warned(&events(Some(&bad), &ok, action)), 0);
}

#[test]
fn the_status_shows_shards_replicas_and_a_shard_on_one_node() {
    use quiver_operator::lifecycle::{Action, Activity, Decision};
    use quiver_operator::placement::Colocated;
    use quiver_operator::status::{Inputs, compute};
    let c = two_by_two();
    let now: k8s_openapi::jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    let decision = Decision { action: Action::Run, suspended: None, last_activity: now, idle_deadline_in: None };
    let reports = vec![
        report(0, stats(0, 2, LoadState::Ready, 100)),
        report(1, stats(1, 2, LoadState::Ready, 50)),
        report(2, stats(0, 2, LoadState::Ready, 100)),
        report(3, stats(1, 2, LoadState::Loading, 0)),
    ];
    let colocated = vec![Colocated {
        shard: 0,
        node: "node-a".into(),
        pods: vec!["demo-workers-0".into(), "demo-workers-2".into()],
    }];
    let activity = Activity::Known(None);
    let inputs = |cluster, colocated| Inputs {
        cluster,
        decision: &decision,
        desired: 4,
        workers: None,
        reports: &reports,
        activity: &activity,
        ingress_address: None,
        failures: &[],
        colocated,
        rollout: None,
        previous: None,
        now,
    };
    let s = compute(&inputs(&c, &colocated));
    assert_eq!(
        (s.shards, s.shards_ready, s.shards_summary.as_deref(), s.replicas_per_shard, s.min_ready_replicas),
        (2, 2, Some("2/2"), 2, Some(1))
    );
    assert_eq!((s.ready_workers, s.desired_workers, s.workers.as_deref(), s.rows), (3, 4, Some("3/4"), 150));
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(ready.message.contains("2/2 shards have a loaded replica (2 per shard)"), "{}", ready.message);
    let spread = s.conditions.iter().find(|c| c.type_ == "ReplicasSpread").unwrap();
    assert_eq!((spread.status.as_str(), spread.reason.as_str()), ("False", "ShardOnOneNode"));
    assert!(spread.message.contains("shard 0 (demo-workers-0, demo-workers-2) on node-a"), "{}", spread.message);
    let s = compute(&inputs(&c, &[]));
    let spread = s.conditions.iter().find(|c| c.type_ == "ReplicasSpread").unwrap();
    assert_eq!((spread.status.as_str(), spread.reason.as_str()), ("True", "Spread"));
    // One replica per shard: no ReplicasSpread condition at all.
    let single = validate(&fixture(), &Defaults::default()).unwrap();
    let s = compute(&inputs(&single, &[]));
    assert!(s.conditions.iter().all(|c| c.type_ != "ReplicasSpread"), "{:?}", s.conditions);
    assert_eq!(s.replicas_per_shard, 1);
}
