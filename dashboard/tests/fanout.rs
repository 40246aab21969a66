//! Fan-out failure paths: with fake workers under a paused clock, and with real
//! in-process workers over Flight (one of them killed mid-session).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use quiver_dashboard::discovery::Discovery;
use quiver_dashboard::error::Error;
use quiver_dashboard::fanout::Fanout;
use quiver_dashboard::metrics::Metrics;
use serde_json::json;

fn fanout(workers: Vec<Arc<FakeWorker>>, timeout: Duration) -> (Arc<Fanout>, Metrics) {
    let endpoints: Vec<String> = (0..workers.len()).map(|i| format!("http://fake-{i}:8815")).collect();
    let map = endpoints.iter().cloned().zip(workers).collect();
    let metrics = Metrics::new();
    let f = Fanout::new(Discovery::fixed(endpoints), Arc::new(FakeConnector(map)), timeout, metrics.clone());
    (Arc::new(f), metrics)
}

#[tokio::test(start_paused = true)]
async fn a_hanging_worker_costs_exactly_the_timeout() {
    let (f, metrics) =
        fanout(vec![FakeWorker::new(0, 2, Mode::Ok), FakeWorker::new(1, 2, Mode::Hang)], Duration::from_secs(5));
    let t0 = tokio::time::Instant::now();
    let replies = f.stats().await;
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_millis(5100), "waited {waited:?}");
    assert!(replies[0].result.is_ok());
    match &replies[1].result {
        Err(Error::WorkerTimeout { endpoint, after }) => {
            assert_eq!(endpoint, "http://fake-1:8815");
            assert_eq!(*after, Duration::from_secs(5));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(metrics.encode().contains("quiver_dashboard_worker_errors_total{category=\"timeout\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn workers_are_called_in_parallel() {
    // Three hanging workers cost one timeout, not three.
    let w = (0..3).map(|i| FakeWorker::new(i, 3, Mode::Hang)).collect();
    let (f, _) = fanout(w, Duration::from_secs(2));
    let t0 = tokio::time::Instant::now();
    let replies = f.stats().await;
    assert!(t0.elapsed() < Duration::from_millis(2100), "{:?}", t0.elapsed());
    assert_eq!(replies.len(), 3);
    assert!(replies.iter().all(|r| r.result.is_err()));
}

#[tokio::test(start_paused = true)]
async fn a_transient_error_is_retried_once() {
    let w = FakeWorker::new(0, 1, Mode::TransientOnce);
    let (f, metrics) = fanout(vec![w.clone()], Duration::from_secs(5));
    let replies = f.stats().await;
    assert!(replies[0].result.is_ok(), "{:?}", replies[0].result);
    assert_eq!(w.calls.load(Ordering::SeqCst), 2);
    assert!(metrics.encode().contains("category=\"unavailable\"} 1"), "the failed try is counted");
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_stays_down_is_tried_twice_then_reported() {
    let w = FakeWorker::new(0, 1, Mode::Down);
    let (f, _) = fanout(vec![w.clone()], Duration::from_secs(5));
    let replies = f.stats().await;
    assert_eq!(w.calls.load(Ordering::SeqCst), 2);
    let e = replies[0].result.as_ref().unwrap_err();
    assert_eq!(e.category(), "unavailable");
    assert!(e.to_string().contains("connection refused"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_query_is_not_retried() {
    let w = FakeWorker::new(0, 1, Mode::Refuse);
    let (f, _) = fanout(vec![w.clone()], Duration::from_secs(5));
    let replies = f.stats().await;
    assert!(replies[0].result.is_err());
    assert_eq!(w.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_endpoint_is_reported_not_fatal() {
    // The connector knows fake-0 only; fake-1 does not resolve.
    let endpoints = vec!["http://fake-0:8815".to_string(), "http://gone:8815".to_string()];
    let map = [("http://fake-0:8815".to_string(), FakeWorker::new(0, 2, Mode::Ok))].into_iter().collect();
    let f = Arc::new(Fanout::new(
        Discovery::fixed(endpoints),
        Arc::new(FakeConnector(map)),
        Duration::from_secs(1),
        Metrics::new(),
    ));
    let replies = f.stats().await;
    assert!(replies[0].result.is_ok());
    assert!(replies[1].result.is_err());
}

// ---- real workers over Flight ----

const HEADER: &str = "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal";

/// Writes `files` CSV files of `per_file` towers around Paris in the OpenCelliD schema.
fn write_towers(dir: &std::path::Path, files: usize, per_file: usize) {
    let radios = ["GSM", "UMTS", "LTE", "NR", "CDMA"];
    for f in 0..files {
        let mut s = String::from(HEADER);
        s.push('\n');
        for r in 0..per_file {
            let i = f * per_file + r;
            s.push_str(&format!(
                "{},208,1,{},{},0,{:.5},{:.5},{},3,1,{},{},0\n",
                radios[i % radios.len()],
                100 + i % 7,
                i,
                2.2 + (i % 40) as f64 * 0.005,
                48.8 + (i / 40) as f64 * 0.002,
                50 + (i * 37) % 5000,
                1_100_000_000 + (i as i64) * 400_000,
                1_600_000_000,
            ));
        }
        std::fs::write(dir.join(format!("part-{f}.csv")), s).unwrap();
    }
}

async fn start_worker(url: &str, shard: u32, shards: u32) -> quiver_worker::server::RunningWorker {
    use quiver_worker::server::{WorkerConfig, spawn};
    use quiver_worker::source::{LoadOptions, ShardId};
    use quiver_worker::spec::{DatasetSpec, Preset};
    let spec = DatasetSpec {
        name: "celltowers".into(),
        source: url.into(),
        preset: Some(Preset::Celltowers),
        format: None,
        s3: None,
        view: None,
        details: None,
    };
    let cfg = WorkerConfig {
        datasets: vec![spec],
        shard: ShardId::new(shard, shards).unwrap(),
        token: Some("worker-secret".into()),
        load: LoadOptions::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    };
    spawn(cfg).await.unwrap()
}

/// A TCP forwarder in front of a worker; `kill` drops the listener and every
/// open connection at once, like a worker process dying.
struct Proxy {
    url: String,
    accept: tokio::task::JoinHandle<()>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                c.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Proxy { url, accept, conns }
    }

    async fn kill(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let conns: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap());
        for h in conns {
            h.abort();
            let _ = h.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_gives_a_flagged_partial_answer() {
    let dir = tempfile::tempdir().unwrap();
    write_towers(dir.path(), 4, 250);
    let url = format!("file://{}/", dir.path().display());
    let w0 = start_worker(&url, 0, 2).await;
    let w1 = start_worker(&url, 1, 2).await;
    // The dashboard reaches worker 1 through a proxy we can cut.
    let proxy = Proxy::start(w1.flight_addr()).await;
    let endpoints = vec![w0.flight_url(), proxy.url.clone()];
    let mut args = serve_args(&endpoints);
    args.worker_token = Some("worker-secret".into());
    args.worker_timeout = "2s".into();
    let config = quiver_dashboard::config::Config::try_from(args).unwrap();
    let state = quiver_dashboard::AppState::new(
        &config,
        Discovery::fixed(endpoints.clone()),
        Arc::new(quiver_dashboard::flight::FlightConnector::new(Some("worker-secret".into()))),
    );
    let app = quiver_dashboard::app(state);

    // Wait until both shards are loaded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let j = send(&app, bearer(get("/api/status"), TOKEN)).await.json();
        let ready =
            j["workers"].as_array().unwrap().iter().all(|w| w["ok"] == true && w["datasets"][0]["state"] == "ready");
        if ready && j["complete"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "workers did not load: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let q = json!({"dataset": "celltowers", "viewport": {"west": 2.0, "south": 48.5, "east": 2.6, "north": 49.2},
                   "histograms": ["radio", "range", "created"], "image": {"width": 200, "height": 100}});
    let whole = send(&app, query(q.clone())).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", String::from_utf8_lossy(&whole.body));
    let whole = whole.json();
    assert_eq!(whole["total"], 1000);
    assert_eq!(whole["selected"], 1000);
    assert_eq!(whole["partial"], false);
    let radio_sum: u64 =
        whole["histograms"]["radio"]["bins"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(radio_sum, 1000);
    assert!(whole["image"].as_str().unwrap().starts_with("data:image/png;base64,"));

    proxy.kill().await;
    let started = std::time::Instant::now();
    let part = send(&app, query(q)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the worker timeout");
    assert_eq!(part.status, StatusCode::OK);
    let part = part.json();
    assert_eq!(part["partial"], true);
    assert_eq!(part["shards"]["missing"], json!([1]));
    assert_eq!(part["shards"]["answered"], json!([0]));
    let total = part["total"].as_u64().unwrap();
    assert!(total > 0 && total < 1000, "only shard 0's rows: {total}");
    let msg = part["shards"]["message"].as_str().unwrap();
    assert!(msg.contains(&endpoints[1]), "{msg}");
    w0.shutdown().await.unwrap();
    w1.shutdown().await.unwrap();
}
