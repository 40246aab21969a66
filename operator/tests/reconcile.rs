//! The reconciler against a mocked API server, one scenario per lifecycle path.
//! Workers and the clock are injected; no Kubernetes API server runs here.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::apiserver::{FakeApi, Fault};
use common::fixture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::core::{DeserializeGuard, error_boundary::InvalidObject};
use kube::runtime::controller::Action as Requeue;
use quiver_operator::activity::{ActivitySource, Target, WorkerReport};
use quiver_operator::crd::{DataCluster, DataClusterStatus, OnIdle, Phase, SuspendReason};
use quiver_operator::lifecycle::Clock;
use quiver_operator::metrics::Metrics;
use quiver_operator::reconcile::{Context, error_policy, reconcile};
use quiver_operator::validate::Defaults;
use quiver_worker::protocol::{DatasetStats, LoadState, WorkerStats};
use serde_json::json;

const NS: &str = "/api/v1/namespaces/analytics";
const DC: &str = "/apis/quiver.dev/v1alpha1/namespaces/analytics/dataclusters/demo";

/// Workers whose answers the test sets.
#[derive(Default)]
struct Workers {
    reports: Mutex<Vec<WorkerReport>>,
    targets: Mutex<Vec<Target>>,
}

#[async_trait]
impl ActivitySource for Workers {
    async fn observe(&self, t: &Target, _pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<WorkerReport> {
        self.targets.lock().unwrap().push(t.clone());
        self.reports.lock().unwrap().iter().filter(|r| (r.ordinal as i32) < t.replicas).cloned().collect()
    }
}

struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn worker(ordinal: u32, shards: u32, state: LoadState, rows: u64, last_query: Option<&str>) -> WorkerReport {
    let ds = |name: &str, rows: u64| DatasetStats {
        name: name.into(),
        state,
        rows,
        bytes: rows * 16,
        generation: "g1".into(),
        load_seconds: 1.0,
        loaded_at: None,
        error: (state == LoadState::Failed)
            .then(|| "s3://quiver-data/celltowers/part-3.csv: column lat: bad float".into()),
        reloading: false,
    };
    WorkerReport {
        ordinal,
        outcome: Ok(WorkerStats {
            shard: ordinal,
            shards,
            version: "0.1.0".into(),
            queries: 3,
            last_query_time: last_query.map(String::from),
            started_at: "2026-01-05T09:01:00Z".into(),
            datasets: vec![ds("celltowers", rows), ds("ais", rows / 2)],
        }),
    }
}

struct Harness {
    api: FakeApi,
    workers: Arc<Workers>,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
}

fn harness(now: &str) -> Harness {
    let (client, api) = FakeApi::start();
    let workers = Arc::new(Workers::default());
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client,
        workers.clone(),
        Arc::new(FixedClock(t(now))),
        Defaults::default(),
        metrics.clone(),
        Duration::from_secs(30),
    ));
    Harness { api, workers, ctx, metrics }
}

impl Harness {
    fn set_workers(&self, reports: Vec<WorkerReport>) {
        *self.workers.reports.lock().unwrap() = reports;
    }

    /// The StatefulSet is rolled out with `n` ready, up-to-date pods.
    fn statefulset_ready(&self, n: i32) {
        self.api.set_statefulset_status(json!({
            "replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n,
            "currentRevision": "demo-workers-abc", "updateRevision": "demo-workers-abc"
        }));
    }

    async fn run(&self, dc: DataCluster) -> Result<Requeue, quiver_operator::Error> {
        // The API server holds the object being reconciled.
        self.api.insert(DC, serde_json::to_value(&dc).unwrap());
        self.api.clear_calls();
        let obj = Arc::new(DeserializeGuard(Ok(dc)));
        tokio::time::timeout(Duration::from_secs(10), reconcile(obj, self.ctx.clone()))
            .await
            .expect("reconcile finished (no call left unanswered)")
    }

    fn last_status(&self) -> DataClusterStatus {
        let v = self.api.status_writes().pop().expect("a status was written");
        serde_json::from_value(v).unwrap()
    }

    fn existing_secrets(&self) {
        for name in ["demo-worker-token", "demo-dashboard-token"] {
            self.api.insert(
                &format!("{NS}/secrets/{name}"),
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": name, "namespace": "analytics", "ownerReferences": [owner()]},
                       "data": {"token": "ZXhpc3Rpbmc="}}),
            );
        }
    }
}

/// The fixture DataCluster's owner reference, as its children carry it.
fn owner() -> serde_json::Value {
    json!({"apiVersion": "quiver.dev/v1alpha1", "kind": "DataCluster", "name": "demo",
           "uid": "3f1c9a52-7d4e-4b8a-9c1e-0a2b3c4d5e6f", "controller": true})
}

fn condition<'a>(
    s: &'a DataClusterStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition in {s:?}"))
}

fn replicas_applied(api: &FakeApi) -> i64 {
    api.applied("statefulsets/demo-workers").expect("StatefulSet applied")["spec"]["replicas"].as_i64().unwrap()
}

fn ready_status(last_activity: &str) -> DataClusterStatus {
    DataClusterStatus {
        phase: Some(Phase::Ready),
        observed_generation: Some(3),
        last_activity_time: Some(Time(t(last_activity))),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_applies_every_child_with_owner_references_and_reports_loading() {
    let h = harness("2026-01-05T09:05:00Z");
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Loading, 0, None)).collect());
    let requeue = h.run(fixture()).await.unwrap();
    assert_eq!(requeue, Requeue::requeue(Duration::from_secs(30)));

    // Token Secrets were created with fresh 32-byte tokens.
    let creates: Vec<_> = h.api.writes().into_iter().filter(|c| c.method == "POST").collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    for c in &creates {
        assert_eq!(c.path, format!("{NS}/secrets"));
        let b64 = c.body.as_ref().unwrap()["data"]["token"].as_str().unwrap();
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(token.len(), 43, "32 random bytes, URL-safe base64");
    }

    // Every child was server-side applied by our field manager, with the owner reference.
    let applied: Vec<_> =
        h.api.writes().into_iter().filter(|c| c.method == "PATCH" && !c.path.ends_with("/status")).collect();
    let resources: Vec<String> = applied
        .iter()
        .map(|c| c.path.rsplit('/').take(2).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("/"))
        .collect();
    assert_eq!(
        resources,
        [
            "serviceaccounts/demo-dashboard",
            "services/demo-workers",
            "configmaps/demo-datasets",
            "statefulsets/demo-workers",
            "networkpolicies/demo-workers",
            "poddisruptionbudgets/demo-workers",
            "deployments/demo-dashboard",
            "services/demo-dashboard",
            "horizontalpodautoscalers/demo-dashboard",
            "ingresses/demo",
        ]
    );
    for c in &applied {
        assert!(c.query.contains("fieldManager=quiver-operator") && c.query.contains("force=true"), "{}", c.query);
        let owner = &c.body.as_ref().unwrap()["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], "3f1c9a52-7d4e-4b8a-9c1e-0a2b3c4d5e6f");
        assert_eq!(owner["controller"], true);
    }
    assert_eq!(replicas_applied(&h.api), 4);

    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Loading));
    assert_eq!(s.workers.as_deref(), Some("0/4"));
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.url.as_deref(), Some("https://quiver.example.com/"));
    assert_eq!(
        s.selector.as_deref(),
        Some("app.kubernetes.io/component=worker,app.kubernetes.io/instance=demo,app.kubernetes.io/name=quiver")
    );
    assert_eq!(condition(&s, "Ready").status, "False");
    assert_eq!(condition(&s, "SpecValid").status, "True");
    assert_eq!(s.last_activity_time, Some(Time(t("2026-01-05T09:00:00Z"))), "idle clock starts at creation");
    assert!(h.api.event_reasons().contains(&"Loading".to_string()), "{:?}", h.api.event_reasons());
}

#[tokio::test]
async fn no_worker_answering_yet_is_pending() {
    let h = harness("2026-01-05T09:01:00Z");
    let s = {
        h.run(fixture()).await.unwrap();
        h.last_status()
    };
    assert_eq!(s.phase, Some(Phase::Pending));
    assert_eq!(condition(&s, "ActivityKnown").status, "Unknown");
}

#[tokio::test]
async fn existing_token_secrets_are_never_overwritten() {
    let h = harness("2026-01-05T09:05:00Z");
    h.existing_secrets();
    h.run(fixture()).await.unwrap();
    assert!(
        h.api.writes().iter().all(|c| !c.path.contains("/secrets")),
        "no write touched a Secret: {:?}",
        h.api.writes()
    );
    // The worker token read from the Secret is what the workers are asked with.
    assert_eq!(h.workers.targets.lock().unwrap()[0].token.as_deref(), Some("existing"));
}

#[tokio::test]
async fn children_ready_and_every_shard_loaded_is_ready() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    h.set_workers(
        (0..4).map(|i| worker(i, 4, LoadState::Ready, 1000 + i as u64, Some("2026-01-05T09:09:00Z"))).collect(),
    );
    h.run(fixture()).await.unwrap();
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Ready));
    assert_eq!(s.workers.as_deref(), Some("4/4"));
    assert_eq!(s.replicas, 4);
    let celltowers = s.datasets.iter().find(|d| d.name == "celltowers").unwrap();
    assert_eq!((celltowers.rows, celltowers.shards_ready), (1000 + 1001 + 1002 + 1003, 4));
    let ais = s.datasets.iter().find(|d| d.name == "ais").unwrap();
    assert_eq!(ais.rows, 500 + 500 + 501 + 501);
    assert_eq!(s.rows, 4006 + 2002);
    assert_eq!(condition(&s, "Ready").status, "True");
    assert_eq!(s.last_activity_time, Some(Time(t("2026-01-05T09:09:00Z"))));
    assert!(h.api.event_reasons().contains(&"Ready".to_string()));
}

#[tokio::test]
async fn pods_ready_but_a_shard_still_loading_is_not_ready() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    let mut reports: Vec<_> = (0..3).map(|i| worker(i, 4, LoadState::Ready, 10, None)).collect();
    reports.push(worker(3, 4, LoadState::Loading, 0, None));
    h.set_workers(reports);
    h.run(fixture()).await.unwrap();
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Loading));
    assert_eq!(s.workers.as_deref(), Some("3/4"));
}

#[tokio::test]
async fn a_failed_shard_load_is_degraded_with_the_error() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    let mut reports: Vec<_> = (0..3).map(|i| worker(i, 4, LoadState::Ready, 10, None)).collect();
    reports.push(worker(3, 4, LoadState::Failed, 0, None));
    h.set_workers(reports);
    h.run(fixture()).await.unwrap();
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Degraded));
    let ready = condition(&s, "Ready");
    assert_eq!(ready.reason, "LoadFailed");
    assert!(ready.message.contains("shard 3/4") && ready.message.contains("column lat"), "{}", ready.message);
}

#[tokio::test]
async fn scaling_re_shards_and_rows_count_once_when_settled() {
    // kubectl scale dc/demo --replicas=6 while four workers served four shards.
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    dc.spec.workers.replicas = 6;
    dc.metadata.generation = Some(4);
    dc.status = Some(ready_status("2026-01-05T09:09:00Z"));

    // Mid-roll: two pods restarted with six shards, four still on the old count.
    h.api.set_statefulset_status(json!({"replicas": 6, "readyReplicas": 4, "updatedReplicas": 2,
        "currentRevision": "demo-workers-old", "updateRevision": "demo-workers-new"}));
    let mut reports: Vec<_> = (0..4).map(|i| worker(i, 4, LoadState::Ready, 600, None)).collect();
    reports[0] = worker(0, 6, LoadState::Ready, 400, None);
    reports.push(worker(4, 6, LoadState::Ready, 400, None));
    reports.push(worker(5, 6, LoadState::Loading, 0, None));
    h.set_workers(reports);
    h.run(dc.clone()).await.unwrap();
    let sts = h.api.applied("statefulsets/demo-workers").unwrap();
    assert_eq!(sts["spec"]["replicas"], 6);
    let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
    let shards = env.as_array().unwrap().iter().find(|e| e["name"] == "QUIVER_SHARDS").unwrap();
    assert_eq!(shards["value"], "6", "every worker learns the new shard count");
    let mid = h.last_status();
    assert_eq!(mid.phase, Some(Phase::Loading));
    assert_eq!(condition(&mid, "Ready").reason, "Resharding");
    // Old-sharding answers are never added to the new count.
    assert_eq!(mid.datasets[0].rows, 800);

    // Settled: six shards of 400 rows each = the 2400 rows four shards held.
    h.statefulset_ready(6);
    h.set_workers((0..6).map(|i| worker(i, 6, LoadState::Ready, 400, None)).collect());
    dc.status = Some(mid);
    h.run(dc).await.unwrap();
    let settled = h.last_status();
    assert_eq!(settled.phase, Some(Phase::Ready));
    assert_eq!(settled.datasets[0].rows, 4 * 600);
    assert_eq!(settled.workers.as_deref(), Some("6/6"));
}

#[tokio::test]
async fn idle_past_timeout_with_scale_to_zero_suspends_the_workers_and_keeps_the_dashboard() {
    let h = harness("2026-01-05T11:00:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, Some("2026-01-05T10:15:00Z"))).collect());
    let mut dc = fixture();
    dc.status = Some(ready_status("2026-01-05T10:00:00Z"));
    let requeue = h.run(dc).await.unwrap();
    assert_eq!(requeue, Requeue::requeue(Duration::from_secs(300)));
    assert_eq!(replicas_applied(&h.api), 0);
    assert!(h.api.applied("deployments/demo-dashboard").is_some(), "the dashboard stays");
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Suspended));
    assert_eq!(s.suspend_reason, Some(SuspendReason::Idle));
    assert_eq!(s.suspended_at, Some(Time(t("2026-01-05T11:00:00Z"))));
    assert_eq!(s.suspended_generation, Some(3));
    assert_eq!(s.desired_workers, 0);
    assert_eq!(s.last_activity_time, Some(Time(t("2026-01-05T10:15:00Z"))));
    assert_eq!(condition(&s, "Suspended").reason, "Idle");
    assert!(h.api.event_reasons().contains(&"IdleSuspended".to_string()));
    assert!(h.metrics.encode().contains("quiver_operator_lifecycle_actions_total{action=\"suspend\"} 1"));
}

#[tokio::test]
async fn recent_queries_keep_the_cluster_running_and_requeue_before_the_deadline() {
    let h = harness("2026-01-05T11:00:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, Some("2026-01-05T10:59:20Z"))).collect());
    let mut dc = fixture();
    dc.spec.lifecycle.idle_timeout = Some("1m".into());
    let requeue = h.run(dc).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 4);
    assert_eq!(requeue, Requeue::requeue(Duration::from_secs(21)), "20 s left + 1 s, before the 30 s poll");
}

#[tokio::test]
async fn idle_past_timeout_with_delete_deletes_the_datacluster() {
    let h = harness("2026-01-05T11:00:00Z");
    h.existing_secrets();
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, None)).collect());
    let mut dc = fixture();
    dc.spec.lifecycle.on_idle = OnIdle::Delete;
    dc.status = Some(ready_status("2026-01-05T10:00:00Z"));
    let requeue = h.run(dc).await.unwrap();
    assert_eq!(requeue, Requeue::await_change());
    let writes = h.api.writes();
    assert_eq!(writes.len(), 1, "only the delete: {writes:?}");
    assert_eq!((writes[0].method.as_str(), writes[0].path.as_str()), ("DELETE", DC));
    assert!(h.api.get(DC).is_none());
    assert!(h.api.event_reasons().contains(&"IdleDeleted".to_string()));
}

#[tokio::test]
async fn unreachable_workers_hold_idle_actions_and_raise_a_condition() {
    let h = harness("2026-01-05T11:00:00Z");
    h.existing_secrets();
    h.set_workers(
        (0..4)
            .map(|i| WorkerReport { ordinal: i, outcome: Err("connect failed: connection refused".into()) })
            .collect(),
    );
    let mut dc = fixture();
    dc.spec.lifecycle.on_idle = OnIdle::Delete;
    dc.status = Some(ready_status("2026-01-05T09:00:00Z"));
    h.run(dc).await.unwrap();
    assert!(h.api.writes().iter().all(|c| c.method != "DELETE"));
    assert_eq!(replicas_applied(&h.api), 4);
    let s = h.last_status();
    let known = condition(&s, "ActivityKnown");
    assert_eq!((known.status.as_str(), known.reason.as_str()), ("Unknown", "WorkersUnreachable"));
    assert!(known.message.contains("connection refused"), "{}", known.message);
    assert!(h.api.event_reasons().contains(&"WorkersUnreachable".to_string()));
}

fn idle_suspended(dc: &mut DataCluster, since: &str) {
    dc.status = Some(DataClusterStatus {
        phase: Some(Phase::Suspended),
        observed_generation: Some(3),
        suspend_reason: Some(SuspendReason::Idle),
        suspended_at: Some(Time(t(since))),
        suspended_generation: Some(3),
        last_activity_time: Some(Time(t("2026-01-05T10:15:00Z"))),
        ..Default::default()
    });
}

#[tokio::test]
async fn a_suspended_cluster_stays_suspended_without_asking_the_workers() {
    let h = harness("2026-01-05T12:00:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    idle_suspended(&mut dc, "2026-01-05T11:00:00Z");
    h.run(dc).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 0);
    assert_eq!(h.workers.targets.lock().unwrap()[0].replicas, 0);
    assert_eq!(h.last_status().phase, Some(Phase::Suspended));
    assert!(h.api.event_reasons().is_empty(), "{:?}", h.api.event_reasons());
}

#[tokio::test]
async fn a_resume_request_from_the_dashboard_restarts_the_workers() {
    let h = harness("2026-01-05T11:31:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    idle_suspended(&mut dc, "2026-01-05T11:00:00Z");
    dc.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("quiver.dev/resumeRequestedAt".into(), "2026-01-05T11:30:00Z".into());
    h.run(dc).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 4);
    let s = h.last_status();
    assert_ne!(s.phase, Some(Phase::Suspended));
    assert_eq!(s.suspended_at, None);
    assert_eq!(s.suspend_reason, None);
    assert_eq!(s.last_activity_time, Some(Time(t("2026-01-05T11:31:00Z"))), "the idle clock restarts");
    assert!(h.api.event_reasons().contains(&"Resumed".to_string()));
    // The status apply names no suspension fields, so server-side apply removes them.
    let body = h.api.status_writes().pop().unwrap();
    assert!(body.get("suspendedAt").is_none() && body.get("suspendReason").is_none(), "{body}");
}

#[tokio::test]
async fn a_spec_change_resumes_an_idle_suspended_cluster() {
    let h = harness("2026-01-05T11:31:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    idle_suspended(&mut dc, "2026-01-05T11:00:00Z");
    dc.metadata.generation = Some(4);
    dc.spec.workers.replicas = 5;
    h.run(dc).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 5);
}

#[tokio::test]
async fn spec_suspend_scales_to_zero_and_unsetting_it_resumes() {
    let h = harness("2026-01-05T11:31:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    dc.spec.lifecycle.suspend = true;
    h.run(dc.clone()).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 0);
    let suspended = h.last_status();
    assert_eq!((suspended.phase, suspended.suspend_reason), (Some(Phase::Suspended), Some(SuspendReason::Spec)));
    assert!(h.api.event_reasons().contains(&"Suspended".to_string()));

    dc.spec.lifecycle.suspend = false;
    dc.metadata.generation = Some(4);
    dc.status = Some(suspended);
    h.api.clear_calls();
    h.run(dc).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 4);
    assert_eq!(h.last_status().suspend_reason, None);
    assert!(h.api.event_reasons().contains(&"Resumed".to_string()));
}

#[tokio::test]
async fn the_restart_annotation_rolls_the_workers() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    dc.metadata.annotations.as_mut().unwrap().insert("quiver.dev/restartedAt".into(), "2026-01-05T09:09:30Z".into());
    h.run(dc.clone()).await.unwrap();
    let first = h.api.applied("statefulsets/demo-workers").unwrap();
    assert_eq!(first["spec"]["template"]["metadata"]["annotations"]["quiver.dev/restartedAt"], "2026-01-05T09:09:30Z");
    dc.metadata.annotations.as_mut().unwrap().insert("quiver.dev/restartedAt".into(), "2026-01-05T09:20:00Z".into());
    h.run(dc).await.unwrap();
    let second = h.api.applied("statefulsets/demo-workers").unwrap();
    assert_ne!(first["spec"]["template"], second["spec"]["template"], "a new template rolls every pod");
    // The API server bumped the StatefulSet's generation: the rollout is not complete,
    // so the cluster is not reported Ready on the old pods.
    assert_ne!(h.last_status().phase, Some(Phase::Ready));
}

#[tokio::test]
async fn an_invalid_spec_becomes_a_condition_and_nothing_else_is_written() {
    let h = harness("2026-01-05T09:10:00Z");
    let mut dc = fixture();
    // The schema cannot see that the colouring dimension must be categorical.
    let mut view = quiver_worker::source::presets::default_view(quiver_worker::spec::Preset::Celltowers);
    view.category = view
        .dimensions
        .iter()
        .find(|d| !matches!(d.bins, quiver_worker::spec::Binning::Categorical { .. }))
        .unwrap()
        .name
        .clone();
    dc.spec.datasets[0].spec.view = Some(view);
    let requeue = h.run(dc.clone()).await.unwrap();
    assert_eq!(requeue, Requeue::await_change());
    let writes = h.api.writes();
    assert_eq!(writes.len(), 1, "only the status: {writes:?}");
    assert!(writes[0].path.ends_with("/dataclusters/demo/status"));
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Failed));
    let valid = condition(&s, "SpecValid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert!(valid.message.contains("not categorical"), "{}", valid.message);
    assert_eq!(h.api.event_reasons(), ["InvalidSpec"]);
    assert!(h.workers.targets.lock().unwrap().is_empty(), "workers are not contacted");

    // Reconciling again with that status writes nothing at all and publishes nothing.
    dc.status = Some(s);
    h.api.clear_calls();
    h.run(dc).await.unwrap();
    assert!(h.api.calls().is_empty(), "{:?}", h.api.calls());
}

#[tokio::test]
async fn an_object_that_does_not_deserialize_becomes_a_condition() {
    let h = harness("2026-01-05T09:10:00Z");
    let invalid = InvalidObject {
        error: "spec.datasets[0].view.dimensions[0].bins: unknown variant `bogus`".into(),
        metadata: fixture().metadata,
    };
    h.api.insert(DC, serde_json::to_value(fixture()).unwrap());
    let obj = Arc::new(DeserializeGuard::<DataCluster>(Err(invalid)));
    let requeue = tokio::time::timeout(Duration::from_secs(10), reconcile(obj, h.ctx.clone())).await.unwrap().unwrap();
    assert_eq!(requeue, Requeue::await_change());
    let writes = h.api.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Failed));
    assert!(condition(&s, "SpecValid").message.contains("unknown variant `bogus`"));
}

#[tokio::test]
async fn disabling_the_ingress_deletes_the_one_this_cluster_owns_only() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    let ingress = |uid: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "demo", "namespace": "analytics",
                            "ownerReferences": [{"apiVersion": "quiver.dev/v1alpha1", "kind": "DataCluster",
                                                 "name": "demo", "uid": uid, "controller": true}]}})
    };
    let path = "/apis/networking.k8s.io/v1/namespaces/analytics/ingresses/demo";
    let mut dc = fixture();
    dc.spec.dashboard.ingress.enabled = false;

    h.api.insert(path, ingress("someone-else"));
    h.run(dc.clone()).await.unwrap();
    assert!(h.api.get(path).is_some(), "an Ingress we do not own is left alone");

    h.api.insert(path, ingress("3f1c9a52-7d4e-4b8a-9c1e-0a2b3c4d5e6f"));
    h.run(dc).await.unwrap();
    assert!(h.api.get(path).is_none(), "our Ingress is removed");
}

#[tokio::test]
async fn the_status_url_uses_the_ingress_address_without_a_host() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.api.set_ingress_status(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}));
    let mut dc = fixture();
    dc.spec.dashboard.ingress.host = None;
    dc.spec.dashboard.ingress.tls = None;
    h.run(dc).await.unwrap();
    assert_eq!(h.last_status().url.as_deref(), Some("http://203.0.113.9/"));
}

#[tokio::test]
async fn api_errors_are_returned_counted_and_retried_with_backoff() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.api.fail(Fault { method: "PATCH", path_contains: "/statefulsets/", code: 500 });
    let dc = fixture();
    let err = h.run(dc.clone()).await.unwrap_err();
    assert_eq!(err.category(), "kube_api");
    assert!(err.to_string().contains("applying StatefulSet demo-workers"), "{err}");
    let obj = Arc::new(DeserializeGuard(Ok(dc)));
    assert_eq!(error_policy(obj.clone(), &err, h.ctx.clone()), Requeue::requeue(Duration::from_secs(5)));
    assert_eq!(error_policy(obj, &err, h.ctx.clone()), Requeue::requeue(Duration::from_secs(10)));
    assert!(h.metrics.encode().contains("quiver_operator_reconcile_errors_total{category=\"kube_api\"} 2"));
}

#[tokio::test]
async fn an_unchanged_cluster_writes_no_status() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, None)).collect());
    let mut dc = fixture();
    h.run(dc.clone()).await.unwrap();
    dc.status = Some(h.last_status());
    h.api.clear_calls();
    h.run(dc).await.unwrap();
    assert!(h.api.status_writes().is_empty(), "a second pass changes nothing");
    assert!(h.api.event_reasons().is_empty());
}

#[tokio::test]
async fn sub_second_worker_activity_compares_equal_to_the_stored_status() {
    // Workers report query times with milliseconds; `Time` stores whole seconds.
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, Some("2026-01-05T09:09:58.123Z"))).collect());
    let mut dc = fixture();
    h.run(dc.clone()).await.unwrap();
    dc.status = Some(h.last_status());
    h.run(dc).await.unwrap();
    assert!(h.api.status_writes().is_empty(), "the stored status already says everything: {:?}", h.api.status_writes());
}

#[tokio::test]
async fn ongoing_queries_move_last_activity_coarsely() {
    // The fixture's idle timeout is 30m: activity is recorded to within 90 s.
    let first = harness("2026-01-05T09:10:00Z");
    first.existing_secrets();
    first.statefulset_ready(4);
    let queried =
        |at: &str| -> Vec<WorkerReport> { (0..4).map(|i| worker(i, 4, LoadState::Ready, 10, Some(at))).collect() };
    first.set_workers(queried("2026-01-05T09:09:59Z"));
    let mut dc = fixture();
    first.run(dc.clone()).await.unwrap();
    dc.status = Some(first.last_status());

    // 40 s later, with a query a second ago: nothing a user needs to see changed.
    let later = harness("2026-01-05T09:10:40Z");
    later.existing_secrets();
    later.statefulset_ready(4);
    later.set_workers(queried("2026-01-05T09:10:39Z"));
    later.run(dc.clone()).await.unwrap();
    assert!(later.api.status_writes().is_empty(), "no write within the resolution");

    // Two minutes later the recorded activity moves on.
    let much_later = harness("2026-01-05T09:12:00Z");
    much_later.existing_secrets();
    much_later.statefulset_ready(4);
    much_later.set_workers(queried("2026-01-05T09:11:59.5Z"));
    much_later.run(dc).await.unwrap();
    assert_eq!(much_later.last_status().last_activity_time, Some(Time(t("2026-01-05T09:11:59Z"))));
}

#[tokio::test]
async fn a_cluster_being_deleted_is_only_reported_on() {
    // Another tool's finalizer holds the deletion; garbage collection is
    // removing the children meanwhile.
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, None)).collect());
    let mut dc = fixture();
    dc.metadata.deletion_timestamp = Some(Time(t("2026-01-05T09:09:00Z")));
    dc.metadata.finalizers = Some(vec!["backup.example.com/snapshot".into()]);
    dc.status = Some(ready_status("2026-01-05T09:08:00Z"));
    let requeue = h.run(dc).await.unwrap();
    assert_eq!(requeue, Requeue::await_change());
    let writes = h.api.writes();
    assert!(
        writes.iter().all(|c| c.method == "PATCH" && c.path == format!("{DC}/status")),
        "nothing but the status is written: {writes:?}"
    );
    assert!(h.workers.targets.lock().unwrap().is_empty(), "the workers are not asked");
    let s = h.last_status();
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Deleting"));
    assert!(ready.message.contains("backup.example.com/snapshot"), "{}", ready.message);
}

#[tokio::test]
async fn a_condition_names_the_first_failures_and_counts_the_rest() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(64);
    h.set_workers((0..64).map(|i| worker(i, 64, LoadState::Failed, 0, None)).collect());
    let mut dc = fixture();
    dc.spec.workers.replicas = 64;
    h.run(dc).await.unwrap();
    let s = h.last_status();
    let ready = condition(&s, "Ready");
    assert_eq!(ready.reason, "LoadFailed");
    assert!(ready.message.len() <= 1024, "{} bytes", ready.message.len());
    // 64 shards × 2 datasets failed; three are named.
    assert!(ready.message.ends_with("and 125 more"), "{}", ready.message);
    assert!(ready.message.contains("dataset celltowers shard 0/64"), "{}", ready.message);
}

#[tokio::test]
async fn a_service_this_cluster_does_not_own_is_never_taken_over() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(4);
    // Someone's own Service already has the workers' name.
    h.api.insert(
        &format!("{NS}/services/demo-workers"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "demo-workers", "namespace": "analytics", "uid": "x-1"},
               "spec": {"ports": [{"port": 5432}]}}),
    );
    let requeue = h.run(fixture()).await.unwrap();
    assert_eq!(requeue, Requeue::requeue(Duration::from_secs(30)));
    assert!(
        h.api.writes().iter().all(|c| c.path.ends_with("/status")),
        "no child is applied while one name is taken: {:?}",
        h.api.writes()
    );
    let s = h.last_status();
    let owned = condition(&s, "ChildrenOwned");
    assert_eq!((owned.status.as_str(), owned.reason.as_str()), ("False", "NotOwned"));
    assert!(owned.message.contains("Service demo-workers"), "{}", owned.message);
    assert_eq!(h.api.event_reasons(), vec!["NotOwned".to_string()]);
}

#[tokio::test]
async fn a_token_secret_left_by_an_earlier_cluster_of_the_same_name_is_not_reused() {
    let h = harness("2026-01-05T09:10:00Z");
    h.statefulset_ready(4);
    h.api.insert(
        &format!("{NS}/secrets/demo-worker-token"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "demo-worker-token", "namespace": "analytics",
                            "ownerReferences": [{"apiVersion": "quiver.dev/v1alpha1", "kind": "DataCluster",
                                                 "name": "demo", "uid": "an-earlier-uid", "controller": true}]},
               "data": {"token": "b2xk"}}),
    );
    h.run(fixture()).await.unwrap();
    assert!(h.api.applied("statefulsets/demo-workers").is_none(), "no worker starts with someone else's token");
    let s = h.last_status();
    let owned = condition(&s, "ChildrenOwned");
    assert_eq!(owned.status, "False");
    assert!(owned.message.contains("Secret demo-worker-token"), "{}", owned.message);
}

#[tokio::test]
async fn a_worker_that_cannot_pull_its_image_is_reported_with_the_reason() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    h.statefulset_ready(3);
    let waiting = |name: &str, reason: &str, message: &str| {
        json!({"metadata": {"name": name, "namespace": "analytics"},
               "status": {"containerStatuses": [{"name": "worker", "image": "x", "imageID": "",
                   "ready": false, "restartCount": 0,
                   "state": {"waiting": {"reason": reason, "message": message}}}]}})
    };
    h.api.insert(
        &format!("{NS}/pods"),
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
            waiting("demo-workers-0", "ImagePullBackOff", "Back-off pulling image \"registry.example.com/quiver-worker:0.1.0\""),
            waiting("demo-workers-1", "ContainerCreating", ""),
            waiting("demo-workers-2", "CreateContainerConfigError", "couldn't find key AWS_SECRET_ACCESS_KEY in Secret analytics/minio-credentials"),
        ]}),
    );
    h.run(fixture()).await.unwrap();
    let s = h.last_status();
    let failure = condition(&s, "ReplicaFailure");
    assert_eq!((failure.status.as_str(), failure.reason.as_str()), ("True", "ImagePullBackOff"));
    assert!(failure.message.contains("demo-workers-0: ImagePullBackOff"), "{}", failure.message);
    assert!(failure.message.contains("couldn't find key AWS_SECRET_ACCESS_KEY"), "{}", failure.message);
    assert!(h.api.event_reasons().contains(&"ImagePullBackOff".to_string()), "{:?}", h.api.event_reasons());
}

#[tokio::test]
async fn pods_the_statefulset_cannot_create_are_reported_from_its_events() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    // Quota: only 2 of 4 pods exist.
    h.api.set_statefulset_status(json!({"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
        "currentRevision": "demo-workers-abc", "updateRevision": "demo-workers-abc"}));
    h.api.insert(
        &format!("{NS}/events"),
        json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [
            {"metadata": {"name": "e1", "namespace": "analytics"},
             "involvedObject": {"kind": "StatefulSet", "name": "demo-workers", "namespace": "analytics"},
             "reason": "FailedCreate", "lastTimestamp": "2026-01-05T09:09:30Z",
             "message": "create Pod demo-workers-2 in StatefulSet demo-workers failed error: pods \"demo-workers-2\" is forbidden: exceeded quota: compute"}]}),
    );
    h.run(fixture()).await.unwrap();
    let s = h.last_status();
    let failure = condition(&s, "ReplicaFailure");
    assert_eq!((failure.status.as_str(), failure.reason.as_str()), ("True", "FailedCreate"));
    assert!(failure.message.contains("exceeded quota"), "{}", failure.message);
}

/// A worker pod as the API server lists it: its template revision, its shard
/// count and whether it is Ready (loaded).
fn worker_pod(ordinal: u32, revision: &str, shards: u32, ready: bool) -> serde_json::Value {
    json!({"metadata": {"name": format!("demo-workers-{ordinal}"), "namespace": "analytics",
                        "labels": {"controller-revision-hash": revision}},
           "spec": {"containers": [{"name": "worker", "env": [{"name": "QUIVER_SHARDS", "value": shards.to_string()}]}]},
           "status": {"podIP": format!("10.0.0.{ordinal}"),
                      "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn rolling(h: &Harness, pods: Vec<serde_json::Value>, updated: i32) {
    h.api.insert(&format!("{NS}/pods"), json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}));
    h.api.set_statefulset_status(json!({
        "replicas": 4, "readyReplicas": 4, "updatedReplicas": updated,
        "currentRevision": "demo-workers-old", "updateRevision": "demo-workers-new"}));
}

fn deleted_pods(api: &FakeApi) -> Vec<String> {
    api.calls()
        .into_iter()
        .filter(|c| c.method == "DELETE" && c.path.contains("/pods/"))
        .map(|c| c.path.rsplit('/').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_restart_replaces_workers_in_batches_the_operator_drives() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    rolling(&h, (0..4).map(|i| worker_pod(i, "demo-workers-old", 4, true)).collect(), 0);
    h.set_workers((0..4).map(|i| worker(i, 4, LoadState::Ready, 10, None)).collect());
    h.run(fixture()).await.unwrap();
    let sts = h.api.applied("statefulsets/demo-workers").unwrap();
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    // maxUnavailable defaults to 25%: one of four at a time.
    assert_eq!(deleted_pods(&h.api), ["demo-workers-0"]);
    let s = h.last_status();
    let r = condition(&s, "RollingOut");
    assert_eq!((r.status.as_str(), r.reason.as_str()), ("True", "InProgress"));
}

#[tokio::test]
async fn a_reshard_replaces_every_worker_at_once() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    // The spec says 4 shards; the pods still run with 2... and 2 new ones load.
    let mut pods: Vec<_> = (0..2).map(|i| worker_pod(i, "demo-workers-old", 2, true)).collect();
    pods.extend((2..4).map(|i| worker_pod(i, "demo-workers-new", 4, false)));
    rolling(&h, pods, 2);
    h.run(fixture()).await.unwrap();
    assert_eq!(deleted_pods(&h.api), ["demo-workers-0", "demo-workers-1"]);
}

#[tokio::test]
async fn a_rollout_past_its_deadline_is_reported_stuck() {
    let h = harness("2026-01-05T10:00:00Z");
    h.existing_secrets();
    // Worker 0 was replaced 40 minutes ago and never loaded its shard.
    let mut pods = vec![worker_pod(0, "demo-workers-new", 4, false)];
    pods.extend((1..4).map(|i| worker_pod(i, "demo-workers-old", 4, true)));
    rolling(&h, pods, 1);
    let mut dc = fixture();
    let mut previous = ready_status("2026-01-05T09:59:00Z");
    previous.conditions.push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "RollingOut".into(),
        status: "True".into(),
        reason: "InProgress".into(),
        message: String::new(),
        observed_generation: Some(3),
        last_transition_time: Time(t("2026-01-05T09:20:00Z")),
    });
    dc.status = Some(previous);
    h.run(dc).await.unwrap();
    assert!(deleted_pods(&h.api).is_empty(), "no healthy worker is taken down");
    let s = h.last_status();
    let r = condition(&s, "RollingOut");
    assert_eq!((r.status.as_str(), r.reason.as_str()), ("True", "Stuck"));
    assert!(r.message.contains("demo-workers-0"), "{}", r.message);
    assert!(h.api.event_reasons().contains(&"RolloutStuck".to_string()));
}

#[tokio::test]
async fn replicas_per_shard_applies_shards_times_replicas_pods_and_counts_each_shard_once() {
    let h = harness("2026-01-05T09:10:00Z");
    h.existing_secrets();
    let mut dc = fixture();
    dc.spec.workers.replicas_per_shard = Some(2);
    h.statefulset_ready(8);
    // 4 shards × 2 replicas: pod i serves shard i mod 4; both replicas loaded.
    let reports: Vec<_> = (0..8)
        .map(|i| {
            let mut r = worker(i, 4, LoadState::Ready, 1000 + u64::from(i % 4), None);
            if let Ok(s) = r.outcome.as_mut() {
                s.shard = i % 4;
            }
            r
        })
        .collect();
    h.set_workers(reports);
    h.run(dc).await.unwrap();
    assert_eq!(replicas_applied(&h.api), 8);
    let sts = h.api.applied("statefulsets/demo-workers").unwrap();
    let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
    let shards = env.as_array().unwrap().iter().find(|e| e["name"] == "QUIVER_SHARDS").unwrap();
    assert_eq!(shards["value"], "4", "QUIVER_SHARDS stays the shard count");
    // Every pod is asked for its stats.
    assert_eq!(h.workers.targets.lock().unwrap()[0].replicas, 8);
    let s = h.last_status();
    assert_eq!(s.phase, Some(Phase::Ready));
    assert_eq!(
        (s.workers.as_deref(), s.shards_summary.as_deref(), s.replicas_per_shard),
        (Some("8/8"), Some("4/4"), 2)
    );
    let celltowers = s.datasets.iter().find(|d| d.name == "celltowers").unwrap();
    assert_eq!((celltowers.rows, celltowers.shards_ready, celltowers.shards), (1000 + 1001 + 1002 + 1003, 4, 4));
    assert_eq!(condition(&s, "ReplicasSpread").status, "True");
}
