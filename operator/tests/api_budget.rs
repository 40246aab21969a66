//! The operator's API budget on the simulated control plane: a Ready
//! DataCluster whose workers (real `quiver-worker` processes run as pods by
//! the simulator's process kubelet) answer queries several times a second
//! costs the operator at most 6 API requests a minute, watches excluded, and
//! no status write while nothing a user sees changes.
//!
//! The window is 2 minutes with the operator's default 30 s poll (4 polls).
//! `QUIVER_BUDGET_WINDOW_SECS` shortens it for exploratory runs; the poll
//! interval is then a quarter of the window, so each window still holds 4
//! polls, and the per-minute figure is normalised to the 30 s poll.

/// Prints a line and appends it to `api-budget-report.md` in the target's tmp folder, which
/// `.ci/run` shows after the tests (a passing test's output is captured).
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-budget-report.md");
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
        }
    }};
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use quiver_kube_sim::accounting::RequestCount;
use quiver_kube_sim::kubelet::PodMode;
use quiver_operator::activity::FlightActivity;
use quiver_operator::children::worker_selector_string;
use quiver_operator::crd::DataCluster;
use quiver_operator::lifecycle::SystemClock;
use quiver_operator::metrics::Metrics;
use quiver_operator::reconcile::{Context, run};
use quiver_operator::validate::Defaults;
use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::{Query, View, Viewport};
use quiver_worker::source::S3Defaults;
use quiver_worker::spec::{Format, Preset};
use quiver_worker::synth::{GenOptions, generate};

const ROWS: u64 = 20_000;
const CLUSTER: &str = "towers";
const NAMESPACE: &str = "default";
const OPERATOR: &str = "quiver-operator";
/// Requests per minute the operator may spend on one steady cluster.
const BUDGET_PER_MINUTE: f64 = 6.0;
/// The production poll interval the budget is stated for.
const PRODUCTION_POLL: Duration = Duration::from_secs(30);

fn window() -> Duration {
    std::env::var("QUIVER_BUDGET_WINDOW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs)
}

/// `<target>/<profile>`, from this test binary's `<target>/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).expect("the test binary lies in <target>/<profile>/deps").to_path_buf()
}

/// The worker binary (`QUIVER_BIN_DIR`, else built into this profile's directory).
fn worker_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUIVER_BIN_DIR") {
        let bin = PathBuf::from(dir).join("quiver-worker");
        assert!(bin.exists(), "QUIVER_BIN_DIR: {} not found", bin.display());
        return bin;
    }
    let dir = profile_dir();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).args([
        "build",
        "--quiet",
        "-p",
        "quiver-worker",
        "--bin",
        "quiver-worker",
    ]);
    // This test binary's profile: `<target>/debug` is `dev`, others are named as their folder.
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    // Not the jobserver of the `cargo test` running us (its tokens stay taken).
    for var in ["CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build -p quiver-worker failed");
    let bin = dir.join("quiver-worker");
    assert!(bin.exists(), "{} not found after the build", bin.display());
    bin
}

async fn client_as(handle: &quiver_kube_sim::Handle, name: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&handle.kubeconfig_as(name)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

/// Polls `check` until it yields a value or `limit` passes.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("{what} within {limit:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn status_of(dc: &DataCluster) -> serde_json::Value {
    serde_json::to_value(&dc.status).unwrap()
}

fn histogram_query() -> Query {
    Query {
        version: 1,
        dataset: "celltowers".into(),
        filters: BTreeMap::new(),
        viewport: Some(Viewport::WORLD),
        viewport_filter: false,
        views: vec![View::Histogram { dimension: "radio".into() }],
    }
}

/// The operator's requests, watches excluded, as `(verb, resource) → count`.
fn operator_requests(snapshot: &[RequestCount]) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for r in snapshot.iter().filter(|r| r.client == OPERATOR && r.verb != "watch") {
        *m.entry((r.verb.clone(), r.resource.clone())).or_insert(0) += r.count;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_ready_cluster_costs_at_most_six_requests_a_minute_and_no_status_write() {
    let window = window();
    let poll = window / 4;
    let worker = worker_binary();
    // Not under /tmp: the worker pods' /tmp is an emptyDir (as in a real
    // pod, the simulator maps a pod's /tmp paths into that volume).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    generate(
        &GenOptions {
            preset: Preset::Celltowers,
            rows: ROWS,
            out: format!("file://{}/", data.display()),
            format: Format::Parquet,
            files: 2,
            seed: 5,
            s3: S3Defaults::default(),
        },
        false,
    )
    .await
    .unwrap();

    // The simulator, running worker pods as processes. The dashboard image is
    // not mapped: its pod waits in ImagePullBackOff, which no status reads.
    let mut config = quiver_kube_sim::Config { pods: PodMode::Process, ..Default::default() };
    config.runtime.root = dir.path().join("pods");
    config.runtime.probe_period = Duration::from_millis(200);
    config.runtime.images.insert("quiver-worker".into(), worker);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = quiver_kube_sim::start(listener, config).await.unwrap();
    let admin = client_as(&handle, "test").await;

    let crd_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/datacluster.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_yaml::from_str(&crd_text).unwrap();
    Api::<CustomResourceDefinition>::all(admin.clone()).create(&PostParams::default(), &crd).await.unwrap();

    // The operator, in-process, with its own client (counted as `quiver-operator`).
    let operator = client_as(&handle, OPERATOR).await;
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        operator,
        Arc::new(FlightActivity::new("cluster.local", Duration::from_secs(3))),
        Arc::new(SystemClock),
        Defaults::default(),
        metrics.clone(),
        poll,
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run(ctx, async move {
        let _ = stop_rx.await;
    }));

    let dc: DataCluster = serde_yaml::from_str(&format!(
        "apiVersion: quiver.dev/v1alpha1\nkind: DataCluster\nmetadata: {{name: {CLUSTER}, namespace: {NAMESPACE}}}\n\
         spec:\n  workers: {{replicas: 2}}\n  datasets:\n  - {{name: celltowers, preset: celltowers, source: 'file://{}/'}}\n",
        data.display()
    ))
    .unwrap();
    let clusters: Api<DataCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    clusters.patch(CLUSTER, &PatchParams::apply("test"), &Patch::Apply(&dc)).await.unwrap();

    eventually("the DataCluster Ready with every row", Duration::from_secs(120), || async {
        let dc = clusters.get(CLUSTER).await.map_err(|e| e.to_string())?;
        let s = dc.status.clone().unwrap_or_default();
        let rows: i64 = s.datasets.iter().map(|d| d.rows).sum();
        let phase = serde_json::to_value(s.phase).unwrap();
        if phase == "Ready" && rows == ROWS as i64 { Ok(()) } else { Err(format!("status {}", status_of(&dc))) }
    })
    .await;

    // Query the workers directly, five times a second.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let ips: Vec<String> = pods
        .list(&ListParams::default().labels(&worker_selector_string(CLUSTER)))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.status?.pod_ip)
        .collect();
    assert_eq!(ips.len(), 2, "two worker pods with IPs");
    let secret =
        Api::<Secret>::namespaced(admin.clone(), NAMESPACE).get(&format!("{CLUSTER}-worker-token")).await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let mut workers = Vec::new();
    for ip in &ips {
        workers.push(WorkerClient::connect(&format!("http://{ip}:8815"), Some(token.clone())).await.unwrap());
    }
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load = {
        let (answered, failed) = (answered.clone(), failed.clone());
        tokio::spawn(async move {
            let q = histogram_query();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for i in 0usize.. {
                tick.tick().await;
                match workers[i % workers.len()].query(&q).await {
                    Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // The first poll after the queries began records the activity (a change
    // a user sees); from then on nothing visible changes.
    let before = eventually("lastActivityTime recorded", poll * 2 + Duration::from_secs(10), || async {
        let dc = clusters.get(CLUSTER).await.map_err(|e| e.to_string())?;
        match dc.status.as_ref().and_then(|s| s.last_activity_time.clone()) {
            Some(_) => Ok(dc),
            None => Err(format!("status {}", status_of(&dc))),
        }
    })
    .await;
    // Let a pass started by that write settle before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle.sim.accounting.reset();
    let answered_before = answered.load(Ordering::Relaxed);
    let reconciles_before = metrics.reconciles.get();
    let started = tokio::time::Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed();
    let snapshot = handle.sim.accounting.snapshot();
    let requests = operator_requests(&snapshot);
    let watches: u64 = snapshot.iter().filter(|r| r.client == OPERATOR && r.verb == "watch").map(|r| r.count).sum();
    let reconciles = metrics.reconciles.get() - reconciles_before;
    let queries = answered.load(Ordering::Relaxed) - answered_before;
    let after = clusters.get(CLUSTER).await.unwrap();
    load.abort();

    let minutes = elapsed.as_secs_f64() / 60.0;
    // Normalised to the production poll: a shortened window polls as often
    // per window, so its per-minute figure is scaled back.
    let scale = poll.as_secs_f64() / PRODUCTION_POLL.as_secs_f64();
    let total: u64 = requests.values().sum();
    let rate = total as f64 / minutes * scale;
    say!(
        "API budget: {total} operator requests (watches excluded) in {:.1} s with a {:?} poll, \
         {rate:.2}/min at a 30 s poll (budget {BUDGET_PER_MINUTE}); {reconciles} reconciles; \
         {queries} queries answered ({:.1}/s), {} failed; {watches} watch requests (excluded)",
        elapsed.as_secs_f64(),
        poll,
        queries as f64 / elapsed.as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    for ((verb, resource), n) in &requests {
        say!("  {verb:<8} {resource:<40} {n:>4}  ({:.2}/min)", *n as f64 / minutes * scale);
    }

    let status_writes: u64 = requests
        .iter()
        .filter(|((verb, resource), _)| resource == "quiver.dev/dataclusters/status" && verb != "get")
        .map(|(_, n)| n)
        .sum();
    // The operator kept examining the cluster (one pass per poll), so a low
    // count is not a stalled controller.
    assert!(reconciles >= 3, "only {reconciles} reconciles in the window; the operator stopped polling");
    assert!(
        queries as f64 >= 2.0 * elapsed.as_secs_f64(),
        "the cluster was not being queried several times a second ({queries} answers)"
    );
    assert_eq!(status_of(&before), status_of(&after), "nothing a user sees changed during the window");
    assert_eq!(status_writes, 0, "no status write while nothing visible changed: {requests:?}");
    assert!(
        rate <= BUDGET_PER_MINUTE,
        "{rate:.2} requests/min exceeds the budget of {BUDGET_PER_MINUTE}: {requests:?}"
    );

    // Skipping applies must not skip changes: a spec change reaches its child
    // (its hash differs), and a deleted child comes back (its watch triggers).
    handle.sim.accounting.reset();
    clusters
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"dashboard": {"autoscaling": {"maxReplicas": 7}}}})),
        )
        .await
        .unwrap();
    let autoscalers: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(admin.clone(), NAMESPACE);
    eventually("the new maxReplicas applied to the HPA", Duration::from_secs(30), || async {
        let h = autoscalers.get(&format!("{CLUSTER}-dashboard")).await.map_err(|e| e.to_string())?;
        match h.spec.max_replicas {
            7 => Ok(()),
            other => Err(format!("maxReplicas {other}")),
        }
    })
    .await;
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> = Api::namespaced(admin.clone(), NAMESPACE);
    let policy = format!("{CLUSTER}-workers");
    let uid = |p: &k8s_openapi::api::networking::v1::NetworkPolicy| p.metadata.uid.clone();
    let old = policies.get(&policy).await.unwrap();
    policies.delete(&policy, &kube::api::DeleteParams::default()).await.unwrap();
    eventually("the deleted NetworkPolicy re-created", Duration::from_secs(30), || async {
        match policies.get_opt(&policy).await.map_err(|e| e.to_string())? {
            Some(p) if uid(&p) != uid(&old) => Ok(()),
            _ => Err("not yet".into()),
        }
    })
    .await;
    let after_changes = operator_requests(&handle.sim.accounting.snapshot());
    say!("after a spec change and a deleted child: {after_changes:?}");
    // Only what changed was written: the HPA, the re-created policy, the status.
    let other_writes: Vec<_> = after_changes
        .iter()
        .filter(|((verb, resource), _)| {
            !matches!(verb.as_str(), "get" | "list")
                && ![
                    "autoscaling/horizontalpodautoscalers",
                    "networking.k8s.io/networkpolicies",
                    "quiver.dev/dataclusters/status",
                ]
                .contains(&resource.as_str())
        })
        .collect();
    assert!(other_writes.is_empty(), "unchanged children were written: {other_writes:?}");

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    handle.stop().await;
}
