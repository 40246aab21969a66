//! Fixtures: fake workers behind the `Connector` trait, an app over them, and
//! request helpers for `oneshot`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use quiver_dashboard::AppState;
use quiver_dashboard::config::{Config, ServeArgs};
use quiver_dashboard::discovery::Discovery;
use quiver_dashboard::fanout::{Connector, Worker, WorkerResult};
use quiver_worker::bins::DimBins;
use quiver_worker::protocol::{
    DatasetInfo, DatasetStats, LoadState, Query, QueryResult, Raster, Sample, SampleRow, ShardInfo, View, WorkerStats,
};
use quiver_worker::spec::{Preset, ViewConfig};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789";

/// How a fake worker behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers.
    Ok,
    /// Never answers.
    Hang,
    /// Fails once with a transient error, then answers.
    TransientOnce,
    /// Always fails with a transient error.
    Down,
    /// Refuses every query as invalid.
    Refuse,
    /// Answers after this long.
    Slow(Duration),
    /// Answers admin calls but refuses queries: its shard is not loaded.
    NotLoaded,
    /// A worker built before all-or-none samples: refuses a sample view
    /// with `allOrNone` as its ticket parser did, answers others.
    BeforeAllOrNone,
}

/// The error a worker from before all-or-none samples gives a query with
/// them: its sample view had `limit` only and denied unknown fields (the
/// message comes from serde, as it did there).
fn refusal_of_all_or_none(q: &Query) -> Option<quiver_worker::Error> {
    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
    enum OldView {
        Sample {
            #[allow(dead_code)]
            limit: u32,
        },
    }
    q.views.iter().filter(|v| matches!(v, View::Sample { .. })).find_map(|v| {
        let json = serde_json::to_vec(v).expect("a view serialises");
        serde_json::from_slice::<OldView>(&json)
            .err()
            .map(|e| quiver_worker::Error::InvalidQuery(format!("ticket is not a valid query: {e}")))
    })
}

/// A fake worker holding one shard of `celltowers`.
pub struct FakeWorker {
    pub shard: u32,
    pub shards: u32,
    pub generation: String,
    pub mode: std::sync::Mutex<Mode>,
    pub calls: AtomicU32,
    /// Queries received (answered or not).
    pub queries: AtomicU32,
    /// Exports started.
    pub exports: AtomicU32,
    pub reloads: AtomicU32,
}

impl FakeWorker {
    pub fn new(shard: u32, shards: u32, mode: Mode) -> Arc<FakeWorker> {
        Arc::new(FakeWorker {
            shard,
            shards,
            generation: "gen-1".into(),
            mode: std::sync::Mutex::new(mode),
            calls: AtomicU32::new(0),
            queries: AtomicU32::new(0),
            exports: AtomicU32::new(0),
            reloads: AtomicU32::new(0),
        })
    }

    /// A replica of a shard: the same data as another worker of `shard`.
    pub fn replica(shard: u32, shards: u32, generation: &str, mode: Mode) -> Arc<FakeWorker> {
        Arc::new(FakeWorker {
            shard,
            shards,
            generation: generation.into(),
            mode: std::sync::Mutex::new(mode),
            calls: AtomicU32::new(0),
            queries: AtomicU32::new(0),
            exports: AtomicU32::new(0),
            reloads: AtomicU32::new(0),
        })
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    /// Changes how it behaves from the next call on (a kill, a freeze).
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn with_generation(shard: u32, shards: u32, generation: &str) -> Arc<FakeWorker> {
        Arc::new(FakeWorker {
            shard,
            shards,
            generation: generation.into(),
            mode: std::sync::Mutex::new(Mode::Ok),
            calls: AtomicU32::new(0),
            queries: AtomicU32::new(0),
            exports: AtomicU32::new(0),
            reloads: AtomicU32::new(0),
        })
    }

    fn info(&self) -> ShardInfo {
        ShardInfo { shard: self.shard, shards: self.shards, generation: self.generation.clone() }
    }

    async fn gate(&self) -> WorkerResult<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode() {
            Mode::Ok | Mode::NotLoaded | Mode::BeforeAllOrNone => Ok(()),
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Mode::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
            Mode::TransientOnce if n == 0 => Err(unavailable("connection reset")),
            Mode::TransientOnce => Ok(()),
            Mode::Down => Err(unavailable("connection refused")),
            Mode::Refuse => Err(quiver_worker::Error::InvalidQuery("the fake refuses".into())),
        }
    }
}

pub fn unavailable(msg: &str) -> quiver_worker::Error {
    quiver_worker::Error::Unavailable { endpoint: "fake".into(), message: msg.into() }
}

pub fn towers_view() -> ViewConfig {
    quiver_worker::source::presets::default_view(Preset::Celltowers)
}

/// Shard `s` counts `(s + 1) * (i + 1)` rows in bin `i`, has `1000 * (s + 1)` rows,
/// selects `100 * (s + 1)`, and puts one row of the first category at pixel `s`.
pub fn fake_answer(info: ShardInfo, q: &Query) -> QueryResult {
    let view = towers_view();
    let k = u64::from(info.shard) + 1;
    let mut histograms = Vec::new();
    let mut raster = None;
    let mut sample = None;
    for v in &q.views {
        match v {
            View::Rows { .. } => {}
            View::Histogram { dimension } => {
                let spec = view.dimensions.iter().find(|d| &d.name == dimension).expect("known dimension");
                let b = DimBins::from_spec(spec).unwrap();
                let counts: Vec<u64> = (0..b.nbins() as u64).map(|i| k * (i + 1)).collect();
                histograms.push(quiver_worker::protocol::Histogram {
                    dimension: dimension.clone(),
                    bins: b.bins_with_counts(&counts),
                    missing: k,
                });
            }
            View::Raster { width, height } => {
                let spec = view.dimensions.iter().find(|d| d.name == view.category).unwrap();
                let labels = DimBins::from_spec(spec).unwrap().labels().to_vec();
                let mut counts = vec![0u32; labels.len()];
                counts[0] = 1;
                raster = Some(Raster {
                    width: *width,
                    height: *height,
                    categories: labels,
                    pixels: vec![info.shard],
                    counts,
                });
            }
            View::Sample { limit, .. } => {
                let rows = (0..(*limit).min(3))
                    .map(|i| SampleRow {
                        lon: f64::from(i),
                        lat: f64::from(info.shard),
                        category: "LTE".into(),
                        values: Default::default(),
                        details: Default::default(),
                    })
                    .collect();
                sample = Some(Sample { matched: 3, rows, columns: vec![] });
            }
        }
    }
    QueryResult { shard: info, total: 1000 * k, selected: 100 * k, kernel_micros: 10, histograms, raster, sample }
}

#[async_trait]
impl Worker for FakeWorker {
    async fn query(&self, q: &Query) -> WorkerResult<QueryResult> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.gate().await?;
        if self.mode() == Mode::NotLoaded {
            return Err(quiver_worker::Error::NotReady { name: q.dataset.clone(), reason: "loading".into() });
        }
        if q.dataset != "celltowers" {
            return Err(quiver_worker::Error::UnknownDataset(q.dataset.clone()));
        }
        if self.mode() == Mode::BeforeAllOrNone
            && let Some(e) = refusal_of_all_or_none(q)
        {
            return Err(e);
        }
        Ok(fake_answer(self.info(), q))
    }
    async fn stats(&self) -> WorkerResult<WorkerStats> {
        self.gate().await?;
        Ok(WorkerStats {
            shard: self.shard,
            shards: self.shards,
            version: "test".into(),
            queries: 0,
            last_query_time: None,
            started_at: "2024-01-01T00:00:00Z".into(),
            datasets: vec![DatasetStats {
                name: "celltowers".into(),
                state: if self.mode() == Mode::NotLoaded { LoadState::Loading } else { LoadState::Ready },
                rows: 1000 * (u64::from(self.shard) + 1),
                bytes: 1,
                generation: self.generation.clone(),
                load_seconds: 0.1,
                loaded_at: None,
                error: None,
                reloading: false,
            }],
        })
    }
    async fn reload(&self, _dataset: Option<&str>) -> WorkerResult<()> {
        self.gate().await?;
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn datasets(&self) -> WorkerResult<Vec<DatasetInfo>> {
        // The catalogue is learned even from workers that refuse queries.
        if matches!(self.mode(), Mode::Hang | Mode::Down) {
            self.gate().await?;
        }
        Ok(vec![DatasetInfo {
            name: "celltowers".into(),
            view: towers_view(),
            state: LoadState::Ready,
            rows: 1000 * (u64::from(self.shard) + 1),
            bytes: 1,
            shard: self.info(),
            details: vec![],
        }])
    }
    async fn health(&self) -> WorkerResult<()> {
        self.gate().await
    }
    async fn export(&self, q: &Query) -> WorkerResult<quiver_dashboard::fanout::BatchStream> {
        self.exports.fetch_add(1, Ordering::SeqCst);
        self.gate().await?;
        if q.dataset != "celltowers" {
            return Err(quiver_worker::Error::UnknownDataset(q.dataset.clone()));
        }
        // One batch naming the shard.
        let shard = arrow_array::UInt32Array::from(vec![self.shard]);
        let batch = arrow_array::RecordBatch::try_from_iter([("shard", Arc::new(shard) as arrow_array::ArrayRef)])
            .expect("a one-column batch");
        Ok(Box::pin(futures::stream::iter([Ok(batch)])))
    }
}

/// Connects endpoint names to fake workers; unknown endpoints are unreachable.
pub struct FakeConnector(pub HashMap<String, Arc<FakeWorker>>);

#[async_trait]
impl Connector for FakeConnector {
    async fn connect(&self, endpoint: &str) -> WorkerResult<Arc<dyn Worker>> {
        match self.0.get(endpoint) {
            Some(w) => Ok(w.clone() as Arc<dyn Worker>),
            None => Err(unavailable("no such host")),
        }
    }
}

pub fn serve_args(endpoints: &[String]) -> ServeArgs {
    ServeArgs {
        addr: "127.0.0.1:0".into(),
        workers: endpoints.to_vec(),
        workers_dns_interval: "10s".into(),
        token: Some(TOKEN.into()),
        session_ttl: "1h".into(),
        worker_timeout: "300ms".into(),
        tile_url: Some("https://tiles.example/{z}/{x}/{y}.png".into()),
        ..Default::default()
    }
}

/// An app over the given fake workers (endpoints `http://fake-<i>:8815`).
pub fn app_with(workers: Vec<Arc<FakeWorker>>) -> (Router, AppState) {
    app_with_args(workers, |a| a)
}

pub fn app_with_args(workers: Vec<Arc<FakeWorker>>, edit: impl FnOnce(ServeArgs) -> ServeArgs) -> (Router, AppState) {
    let endpoints: Vec<String> = (0..workers.len()).map(|i| format!("http://fake-{i}:8815")).collect();
    let config = Config::try_from(edit(serve_args(&endpoints))).unwrap();
    let map = endpoints.iter().cloned().zip(workers).collect();
    let state = AppState::new(&config, Discovery::fixed(endpoints), Arc::new(FakeConnector(map)));
    (quiver_dashboard::app(state.clone()), state)
}

/// Two healthy shards.
pub fn app() -> Router {
    app_with(vec![FakeWorker::new(0, 2, Mode::Ok), FakeWorker::new(1, 2, Mode::Ok)]).0
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_string()
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body }
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

pub fn bearer(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    req
}

pub fn with_cookie(mut req: Request<Body>, cookie: &str) -> Request<Body> {
    req.headers_mut().insert(header::COOKIE, format!("quiver_session={cookie}").parse().unwrap());
    req
}

pub fn post_json(path: &str, body: &serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Logs in with JSON and returns the session cookie's value.
pub async fn login(app: &Router) -> String {
    let a = send(app, post_json("/login", &serde_json::json!({ "token": TOKEN }))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let set = a.header("set-cookie").expect("a cookie").to_string();
    set.strip_prefix("quiver_session=").unwrap().split(';').next().unwrap().to_string()
}

/// A query request with the token.
pub fn query(body: serde_json::Value) -> Request<Body> {
    bearer(post_json("/api/query", &body), TOKEN)
}

pub fn world() -> serde_json::Value {
    serde_json::json!({"west": -180, "south": -80, "east": 180, "north": 80})
}

pub const SHORT: Duration = Duration::from_millis(300);
