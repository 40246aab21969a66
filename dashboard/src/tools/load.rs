//! `quiver-dashboard load`: a bounded load generator for reliability tests.
//!
//! Simulated users replay a mix of interactions (world views, brushes, category
//! clicks, city zooms, pans, histogram-only refreshes, status polls) against a
//! dashboard or the ingress in front of several, each over its own keep-alive
//! connection, half of them with a session cookie from `POST /login` and half
//! with a Bearer token. Every answer is checked: a `200` to `/api/query` that
//! says it is complete must carry the dataset's full row count as `total`.
//!
//! The generator is bounded on purpose: it stops at `--duration` or after
//! `--max-requests`, whichever comes first, and it only targets loopback
//! addresses (it is a test tool, not a way to load someone else's server).
//! `--report` writes every request (start time, interaction, status, latency,
//! partial flag, total) as JSON, so a test can line requests up with the faults
//! it injected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::parse_duration;
use crate::error::{Error, Result};
use crate::tools::bench::quantile;

/// Most simulated users one run may start.
pub const MAX_CLIENTS: usize = 1024;
/// Most requests one run may send.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Flags of `quiver-dashboard load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The dashboard or the ingress in front of several, e.g. `http://127.0.0.1:8080`
    /// (plain HTTP, loopback only).
    #[arg(long)]
    pub url: String,
    /// The dashboard token.
    #[arg(long, env = "QUIVER_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Concurrent simulated users, one keep-alive connection each.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Stop after this long.
    #[arg(long, default_value = "20s")]
    pub duration: String,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Datasets to query (default: every dataset the dashboard serves).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Vec<String>,
    /// Expected complete row counts, `NAME=ROWS` (default: the catalogue's counts
    /// at the start, which must then be complete).
    #[arg(long = "expect-rows", value_parser = parse_expect)]
    pub expect_rows: Vec<(String, u64)>,
    /// How long one request may take before it counts as an error.
    #[arg(long, default_value = "30s")]
    pub request_timeout: String,
    /// Image size of the map requests, `WIDTHxHEIGHT`.
    #[arg(long, default_value = "800x500")]
    pub image: String,
    /// Seed of the interaction mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the summary and every request as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

fn parse_expect(s: &str) -> std::result::Result<(String, u64), String> {
    let (name, rows) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=ROWS"))?;
    let rows = rows.parse::<u64>().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((name.to_string(), rows))
}

/// The kinds of interaction in the mix, with their weights.
pub const MIX: &[(&str, u32)] = &[
    ("world", 22),
    ("brush", 20),
    ("category", 14),
    ("zoom", 20),
    ("pan", 10),
    ("histograms", 8),
    ("status", 4),
    ("datasets", 2),
];

/// What happened to one request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 200 and a complete answer with the right total (or a 200 to a GET).
    Complete,
    /// 200, flagged partial.
    Partial,
    /// 200, unflagged, but the total is not the dataset's row count: a wrong
    /// answer presented as complete.
    WrongTotal,
    /// 200 whose body is not a valid answer.
    Invalid,
    /// Any status other than 200.
    Status,
    /// No answer: the connection failed or the request timed out.
    Transport,
}

impl Outcome {
    /// A failure from the user's point of view (partial answers are not: they
    /// are flagged and the UI shows a banner).
    pub fn is_error(&self) -> bool {
        !matches!(self, Outcome::Complete | Outcome::Partial)
    }
}

/// One request.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Start, milliseconds since the unix epoch.
    pub start_ms: f64,
    /// Latency, milliseconds.
    pub latency_ms: f64,
    /// Interaction kind.
    pub kind: &'static str,
    /// Dataset (empty for status and catalogue requests).
    pub dataset: String,
    /// Simulated user.
    pub client: usize,
    /// HTTP status, 0 without one.
    pub status: u16,
    /// Classification.
    pub outcome: Outcome,
    /// `total` of a query answer.
    pub total: Option<u64>,
    /// What went wrong, for errors.
    pub error: Option<String>,
}

/// Latency figures of a group of requests, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Requests in the group.
    pub requests: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// Figures of `records`.
    pub fn of<'a>(records: impl Iterator<Item = &'a Record>) -> Latency {
        let mut v: Vec<Duration> = records.map(|r| Duration::from_secs_f64(r.latency_ms / 1000.0)).collect();
        v.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Latency {
            requests: v.len() as u64,
            p50: ms(quantile(&v, 0.50)),
            p95: ms(quantile(&v, 0.95)),
            p99: ms(quantile(&v, 0.99)),
            max: ms(v.last().copied().unwrap_or_default()),
        }
    }
}

/// Summary of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Target.
    pub url: String,
    /// Simulated users.
    pub clients: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second.
    pub throughput: f64,
    /// Failed requests (status, transport, invalid, wrong total).
    pub errors: u64,
    /// Complete answers.
    pub complete: u64,
    /// Answers flagged partial.
    pub partial: u64,
    /// Unflagged answers with a wrong total.
    pub wrong_totals: u64,
    /// Requests per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Latency of every request.
    pub latency: Latency,
    /// Latency per interaction kind.
    pub by_kind: BTreeMap<String, Latency>,
    /// The row counts complete answers were checked against.
    pub expected_rows: BTreeMap<String, u64>,
    /// The first few errors, for the log.
    pub first_errors: Vec<String>,
}

/// A run's summary and its requests.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Figures.
    pub summary: Summary,
    /// Every request, in start order.
    pub records: Vec<Record>,
}

/// Summarises records.
pub fn summarize(
    url: &str,
    clients: usize,
    wall: Duration,
    expected: &BTreeMap<String, u64>,
    records: &[Record],
) -> Summary {
    let mut outcomes = BTreeMap::new();
    for r in records {
        let key =
            serde_json::to_value(&r.outcome).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        *outcomes.entry(key).or_insert(0u64) += 1;
    }
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count() as u64;
    let mut by_kind = BTreeMap::new();
    for (kind, _) in MIX {
        let l = Latency::of(records.iter().filter(|r| r.kind == *kind));
        if l.requests > 0 {
            by_kind.insert(kind.to_string(), l);
        }
    }
    let seconds = wall.as_secs_f64();
    Summary {
        url: url.to_string(),
        clients,
        seconds,
        requests: records.len() as u64,
        throughput: if seconds > 0.0 { records.len() as f64 / seconds } else { 0.0 },
        errors: records.iter().filter(|r| r.outcome.is_error()).count() as u64,
        complete: count(Outcome::Complete),
        partial: count(Outcome::Partial),
        wrong_totals: count(Outcome::WrongTotal),
        outcomes,
        latency: Latency::of(records.iter()),
        by_kind,
        expected_rows: expected.clone(),
        first_errors: records
            .iter()
            .filter(|r| r.outcome.is_error())
            .take(10)
            .map(|r| format!("{} {} → {} {}", r.kind, r.dataset, r.status, r.error.as_deref().unwrap_or("")))
            .collect(),
    }
}

/// Checks a `/api/query` answer against the expected row count.
pub fn classify_answer(body: &[u8], expected_total: Option<u64>) -> (Outcome, Option<u64>, Option<String>) {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return (Outcome::Invalid, None, Some(format!("answer is not JSON: {e}"))),
    };
    let (Some(partial), Some(total), Some(selected)) =
        (v["partial"].as_bool(), v["total"].as_u64(), v["selected"].as_u64())
    else {
        return (Outcome::Invalid, None, Some("answer lacks partial, total or selected".into()));
    };
    if selected > total {
        return (Outcome::Invalid, Some(total), Some(format!("selected {selected} > total {total}")));
    }
    if partial {
        return (Outcome::Partial, Some(total), None);
    }
    let answered = v["shards"]["answered"].as_array().map(Vec::len);
    let shards = v["shards"]["expected"].as_u64().map(|n| n as usize);
    if answered != shards {
        return (
            Outcome::WrongTotal,
            Some(total),
            Some(format!("unflagged answer from {answered:?} of {shards:?} shards")),
        );
    }
    match expected_total {
        Some(want) if want != total => {
            (Outcome::WrongTotal, Some(total), Some(format!("unflagged total {total}, the dataset has {want}")))
        }
        _ => (Outcome::Complete, Some(total), None),
    }
}

/// What a simulated user needs to know about a dataset.
#[derive(Clone, Debug)]
pub struct DatasetInfo {
    /// Name.
    pub name: String,
    /// Histogram dimensions (up to three, as the app shows).
    pub histograms: Vec<String>,
    /// Numeric dimensions with their bin edges (`lo` of every bin).
    pub numeric: Vec<(String, Vec<f64>)>,
    /// The category dimension and its labels.
    pub category: Option<(String, Vec<String>)>,
}

impl DatasetInfo {
    /// From one entry of `/api/datasets`.
    pub fn from_catalog(d: &Value) -> Option<DatasetInfo> {
        let name = d["name"].as_str()?.to_string();
        let dims = d["dimensions"].as_array()?;
        let histograms = dims.iter().take(3).filter_map(|d| d["name"].as_str().map(str::to_string)).collect();
        let numeric = dims
            .iter()
            .filter(|d| d["kind"] != "categorical")
            .filter_map(|d| {
                let edges: Vec<f64> = d["bins"].as_array()?.iter().filter_map(|b| b["lo"].as_f64()).collect();
                (edges.len() >= 2).then(|| (d["name"].as_str().unwrap_or_default().to_string(), edges))
            })
            .collect();
        let category = d["category"].as_str().and_then(|c| {
            let dim = dims.iter().find(|d| d["name"] == c)?;
            let labels =
                dim["bins"].as_array()?.iter().filter_map(|b| b["label"].as_str().map(str::to_string)).collect();
            Some((c.to_string(), labels))
        });
        Some(DatasetInfo { name, histograms, numeric, category })
    }
}

/// Places the towers and ships cluster around: zoom targets.
const PLACES: &[(f64, f64)] = &[
    (2.35, 48.86),
    (-0.13, 51.51),
    (-74.0, 40.71),
    (139.69, 35.69),
    (77.21, 28.61),
    (-46.63, -23.55),
    (31.24, 30.04),
    (151.21, -33.87),
    (4.48, 51.92),
    (103.82, 1.35),
];

/// One request: method, path, body, kind and dataset.
#[derive(Clone, Debug)]
pub struct Planned {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path below the base URL.
    pub path: &'static str,
    /// JSON body.
    pub body: Option<Value>,
    /// Interaction kind.
    pub kind: &'static str,
    /// Dataset, if a query.
    pub dataset: String,
}

/// Picks the next interaction of a simulated user.
pub fn plan(rng: &mut SmallRng, datasets: &[DatasetInfo], image: (u32, u32)) -> Planned {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    let kind = MIX
        .iter()
        .find(|(_, w)| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .map(|(k, _)| *k)
        .unwrap_or("world");
    match kind {
        "status" => return Planned { method: "GET", path: "/api/status", body: None, kind, dataset: String::new() },
        "datasets" => {
            return Planned { method: "GET", path: "/api/datasets", body: None, kind, dataset: String::new() };
        }
        _ => {}
    }
    let d = &datasets[rng.random_range(0..datasets.len())];
    let world = json!({"west": -180.0, "south": -60.0, "east": 180.0, "north": 75.0});
    let img = json!({"width": image.0, "height": image.1});
    let mut body = json!({"dataset": d.name, "histograms": d.histograms});
    match kind {
        "world" => {
            body["viewport"] = world;
            body["image"] = img;
        }
        "brush" if !d.numeric.is_empty() => {
            let (dim, edges) = &d.numeric[rng.random_range(0..d.numeric.len())];
            let a = rng.random_range(0..edges.len() - 1);
            let b = rng.random_range(a + 1..edges.len());
            body["viewport"] = world;
            body["image"] = img;
            body["filters"] = json!({dim: {"range": {"min": edges[a], "max": edges[b]}}});
        }
        "category" if d.category.as_ref().is_some_and(|(_, l)| !l.is_empty()) => {
            let (dim, labels) = d.category.as_ref().expect("checked");
            let n = rng.random_range(1..=labels.len().min(3));
            let picked: Vec<&String> = (0..n).map(|_| &labels[rng.random_range(0..labels.len())]).collect();
            body["viewport"] = world;
            body["image"] = img;
            body["filters"] = json!({dim: {"categories": picked}});
        }
        "zoom" => {
            let (lon, lat) = PLACES[rng.random_range(0..PLACES.len())];
            let half = [8.0, 2.0, 0.5, 0.12][rng.random_range(0..4)];
            body["viewport"] =
                json!({"west": lon - half, "south": lat - half * 0.6, "east": lon + half, "north": lat + half * 0.6});
            body["viewportFilter"] = json!(true);
            body["image"] = img;
            if half < 1.0 {
                body["sample"] = json!({"limit": 5000, "allOrNone": true});
            }
        }
        "pan" => {
            let west = rng.random_range(-180.0..120.0);
            let south = rng.random_range(-60.0..40.0);
            body["viewport"] = json!({"west": west, "south": south, "east": west + 60.0, "north": south + 30.0});
            body["viewportFilter"] = json!(true);
            body["image"] = img;
        }
        _ => {
            // Histograms only, with the baseline behind them (a brush drag).
            body["baseline"] = json!(true);
        }
    }
    Planned { method: "POST", path: "/api/query", body: Some(body), kind, dataset: d.name.clone() }
}

/// A keep-alive HTTP/1.1 connection of one simulated user.
struct Conn {
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    addr: SocketAddr,
    host: String,
    /// `Authorization` or `Cookie` header.
    credential: (header::HeaderName, String),
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

impl Conn {
    async fn connect(&mut self) -> std::result::Result<(), String> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request. A connection the server closed between requests (as
    /// nginx does after `keepalive_requests`) is reopened first, as a browser does.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
        extra: Option<(header::HeaderName, &str)>,
    ) -> std::result::Result<(u16, http::HeaderMap, Bytes), String> {
        let usable = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some((name, value)) = extra {
            req = req.header(name, value);
        } else {
            req = req.header(self.credential.0.clone(), &self.credential.1);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(format!("request failed: {e}"));
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(format!("reading the answer: {e}"));
            }
        };
        Ok((status, headers, body))
    }
}

/// Resolves `url` and refuses anything but a loopback address.
async fn loopback_target(url: &str) -> Result<(SocketAddr, String, String)> {
    let u = url::Url::parse(url).map_err(|e| Error::Config(format!("--url {url:?}: {e}")))?;
    if u.scheme() != "http" {
        return Err(Error::Config(format!("--url {url:?}: only plain http:// is supported")));
    }
    let host = u.host_str().ok_or_else(|| Error::Config(format!("--url {url:?} has no host")))?.to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| Error::Config(format!("--url {url:?}: {e}")))?
        .collect();
    let addr = *addrs.first().ok_or_else(|| Error::Config(format!("--url {url:?} does not resolve")))?;
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(Error::Config(format!(
            "--url {url:?} resolves to {}, which is not a loopback address: the load generator only targets this machine",
            bad.ip()
        )));
    }
    Ok((addr, format!("{host}:{port}"), u.path().trim_end_matches('/').to_string()))
}

/// Validated settings of a run.
#[derive(Clone, Debug)]
pub struct Plan {
    clients: usize,
    duration: Duration,
    max_requests: u64,
    request_timeout: Duration,
    image: (u32, u32),
}

fn validate(a: &LoadArgs) -> Result<Plan> {
    if a.clients == 0 || a.clients > MAX_CLIENTS {
        return Err(Error::Config(format!("--clients must be between 1 and {MAX_CLIENTS}")));
    }
    if a.max_requests == 0 || a.max_requests > MAX_REQUESTS {
        return Err(Error::Config(format!("--max-requests must be between 1 and {MAX_REQUESTS}")));
    }
    let duration = parse_duration("duration", &a.duration)?;
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(Error::Config("--duration must be between 1 ms and 1 h".into()));
    }
    let request_timeout = parse_duration("request-timeout", &a.request_timeout)?;
    let (w, h) = a
        .image
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(w, h)| (1..=4096).contains(w) && (1..=4096).contains(h))
        .ok_or_else(|| Error::Config(format!("--image {:?}: expected WIDTHxHEIGHT, each 1 to 4096", a.image)))?;
    Ok(Plan { clients: a.clients, duration, max_requests: a.max_requests, request_timeout, image: (w, h) })
}

/// The datasets to load and the row count a complete answer over each must carry.
async fn read_catalog(
    probe: &mut Conn,
    prefix: &str,
    a: &LoadArgs,
) -> Result<(Vec<DatasetInfo>, BTreeMap<String, u64>)> {
    let (status, _, body) =
        probe.call("GET", &format!("{prefix}/api/datasets"), Bytes::new(), None).await.map_err(Error::Setup)?;
    if status != 200 {
        return Err(Error::Setup(format!("GET /api/datasets answered {status}: {}", String::from_utf8_lossy(&body))));
    }
    let catalog: Value = serde_json::from_slice(&body).map_err(|e| Error::Setup(format!("/api/datasets: {e}")))?;
    let entries = catalog["datasets"].as_array().cloned().unwrap_or_default();
    let mut datasets = Vec::new();
    let mut expected = BTreeMap::new();
    for d in &entries {
        let Some(info) = DatasetInfo::from_catalog(d) else { continue };
        if !a.datasets.is_empty() && !a.datasets.contains(&info.name) {
            continue;
        }
        if let Some(rows) = d["rows"].as_u64() {
            expected.insert(info.name.clone(), rows);
        }
        datasets.push(info);
    }
    for want in &a.datasets {
        if !datasets.iter().any(|d| &d.name == want) {
            return Err(Error::Setup(format!("the dashboard does not serve {want:?}")));
        }
    }
    if datasets.is_empty() {
        return Err(Error::Setup("the dashboard serves no dataset".into()));
    }
    if a.expect_rows.is_empty() {
        let (status, _, body) =
            probe.call("GET", &format!("{prefix}/api/status"), Bytes::new(), None).await.map_err(Error::Setup)?;
        let s: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != 200 || s["complete"] != true {
            return Err(Error::Setup(format!(
                "the cluster is not complete now (status {status}), so its row counts cannot be trusted: pass --expect-rows"
            )));
        }
    } else {
        expected = a.expect_rows.iter().cloned().collect();
    }
    Ok((datasets, expected))
}

/// The requests left for the whole run, shared by every user.
struct Budget(Arc<AtomicU64>);

impl Budget {
    fn new(requests: u64) -> Budget {
        Budget(Arc::new(AtomicU64::new(requests)))
    }

    /// Counts a request made whatever is left (a login). An empty budget stays
    /// empty: it never wraps around to "unlimited".
    fn spend(&self) {
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Takes one request; false when none is left.
    fn take(&self) -> bool {
        self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// What every simulated user shares: what to ask, what a complete answer
/// holds, and when to stop.
struct Workload {
    datasets: Vec<DatasetInfo>,
    /// Rows a complete answer over each dataset carries.
    expected: BTreeMap<String, u64>,
    image: (u32, u32),
    deadline: Instant,
    budget: Budget,
}

/// One simulated user's connection and what it needs to send requests.
struct User {
    conn: Conn,
    client: usize,
    prefix: String,
    timeout: Duration,
}

impl User {
    /// A record of a request of `kind` started now, to be filled with its outcome.
    fn record(&self, kind: &'static str, dataset: &str, t0: f64, took: Duration) -> Record {
        Record {
            start_ms: t0,
            latency_ms: took.as_secs_f64() * 1000.0,
            kind,
            dataset: dataset.to_string(),
            client: self.client,
            status: 0,
            outcome: Outcome::Complete,
            total: None,
            error: None,
        }
    }

    /// Logs in like a browser (`POST /login`) and sends the session cookie from then on.
    async fn login(&mut self, token: &str) -> Record {
        let body = Bytes::from(serde_json::to_vec(&json!({"token": token})).expect("json"));
        let (t0, t) = (now_ms(), Instant::now());
        let path = format!("{}/login", self.prefix);
        let login = tokio::time::timeout(
            self.timeout,
            self.conn.call("POST", &path, body, Some((header::ACCEPT, "application/json"))),
        )
        .await;
        let mut rec = self.record("login", "", t0, t.elapsed());
        match login {
            Ok(Ok((status, headers, body))) => {
                rec.status = status;
                let cookie =
                    headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
                        v.split(';').next().filter(|c| c.starts_with("quiver_session=")).map(str::to_string)
                    });
                match (status, cookie) {
                    (204, Some(c)) => self.conn.credential = (header::COOKIE, c),
                    _ => {
                        rec.outcome = Outcome::Status;
                        rec.error = Some(format!("login: {}", String::from_utf8_lossy(&body)));
                    }
                }
            }
            Ok(Err(e)) => {
                rec.outcome = Outcome::Transport;
                rec.error = Some(e);
            }
            Err(_) => {
                rec.outcome = Outcome::Transport;
                rec.error = Some("login timed out".into());
            }
        }
        rec
    }

    /// Sends one planned request and classifies its answer; `expected` is the
    /// row count a complete answer over its dataset carries, when known.
    async fn send(&mut self, planned: &Planned, expected: Option<u64>) -> Record {
        let body = planned.body.as_ref().map(|b| Bytes::from(serde_json::to_vec(b).expect("json"))).unwrap_or_default();
        let (t0, t) = (now_ms(), Instant::now());
        let path = format!("{}{}", self.prefix, planned.path);
        let answer = tokio::time::timeout(self.timeout, self.conn.call(planned.method, &path, body, None)).await;
        let mut rec = self.record(planned.kind, &planned.dataset, t0, t.elapsed());
        match answer {
            Ok(Ok((200, _, body))) => {
                rec.status = 200;
                if planned.path == "/api/query" {
                    let (o, total, err) = classify_answer(&body, expected);
                    rec.outcome = o;
                    rec.total = total;
                    rec.error = err;
                } else if serde_json::from_slice::<Value>(&body).is_err() {
                    rec.outcome = Outcome::Invalid;
                    rec.error = Some("answer is not JSON".into());
                }
            }
            Ok(Ok((status, _, body))) => {
                rec.status = status;
                rec.outcome = Outcome::Status;
                rec.error = Some(String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
            }
            Ok(Err(e)) => {
                rec.outcome = Outcome::Transport;
                rec.error = Some(e);
            }
            Err(_) => {
                self.conn.sender = None;
                rec.outcome = Outcome::Transport;
                rec.error = Some(format!("no answer within {}", humantime::format_duration(self.timeout)));
            }
        }
        rec
    }

    /// One simulated user's run: every other user logs in like a browser
    /// first (and sends its cookie from then on), then each sends planned
    /// requests until the deadline or the budget runs out.
    async fn session(mut self, work: Arc<Workload>, token: String, mut rng: SmallRng) -> Vec<Record> {
        let mut records = Vec::new();
        if self.client % 2 == 1 {
            records.push(self.login(&token).await);
            work.budget.spend();
        }
        while Instant::now() < work.deadline {
            if !work.budget.take() {
                break;
            }
            let planned = plan(&mut rng, &work.datasets, work.image);
            records.push(self.send(&planned, work.expected.get(&planned.dataset).copied()).await);
        }
        records
    }
}

/// Each user's own random sequence, from the run's seed.
fn user_rng(seed: u64, client: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(client as u64))
}

/// Waits for every user and returns their records in start order.
async fn gather(users: Vec<tokio::task::JoinHandle<Vec<Record>>>) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for u in users {
        records.extend(u.await.map_err(|e| Error::Internal(e.to_string()))?);
    }
    records.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    Ok(records)
}

/// Runs the load and returns the report: set up (settings, the loopback
/// target, the datasets and their row counts), run every user at once, then
/// summarise their records.
pub async fn run_load(a: &LoadArgs) -> Result<Report> {
    let p = validate(a)?;
    let (addr, host, prefix) = loopback_target(&a.url).await?;
    let bearer = format!("Bearer {}", a.token);
    let conn = || Conn { sender: None, addr, host: host.clone(), credential: (header::AUTHORIZATION, bearer.clone()) };
    let (datasets, expected) = read_catalog(&mut conn(), &prefix, a).await?;
    let work = Arc::new(Workload {
        datasets,
        expected,
        image: p.image,
        deadline: Instant::now() + p.duration,
        budget: Budget::new(p.max_requests),
    });

    let started = Instant::now();
    let users = (0..p.clients)
        .map(|client| {
            let user = User { conn: conn(), client, prefix: prefix.clone(), timeout: p.request_timeout };
            tokio::spawn(user.session(work.clone(), a.token.clone(), user_rng(a.seed, client)))
        })
        .collect();
    let records = gather(users).await?;
    let wall = started.elapsed();

    let summary = summarize(&a.url, p.clients, wall, &work.expected, &records);
    Ok(Report { summary, records })
}

/// Prints a summary as a few lines of text.
pub fn print_summary(s: &Summary) {
    println!(
        "load: {} simulated users for {:.1} s against {} (rows checked: {})",
        s.clients,
        s.seconds,
        s.url,
        s.expected_rows.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "requests {} ({:.1}/s) · errors {} · complete {} · partial {} · wrong totals {}",
        s.requests, s.throughput, s.errors, s.complete, s.partial, s.wrong_totals
    );
    println!("{:<11} {:>8} {:>9} {:>9} {:>9} {:>9}", "interaction", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms");
    for (k, l) in s.by_kind.iter().chain(std::iter::once((&"all".to_string(), &s.latency))) {
        println!("{:<11} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}", k, l.requests, l.p50, l.p95, l.p99, l.max);
    }
    for e in &s.first_errors {
        println!("error: {e}");
    }
}

/// `quiver-dashboard load`: runs, prints, writes the report; fails when any
/// request failed or a wrong total was presented as complete.
pub async fn run(a: LoadArgs) -> Result<()> {
    let report = run_load(&a).await?;
    print_summary(&report.summary);
    if let Some(path) = &a.report {
        let json = serde_json::to_vec(&report).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(path, json).map_err(|e| Error::Setup(format!("writing {}: {e}", path.display())))?;
    }
    if report.summary.errors > 0 {
        return Err(Error::Setup(format!("{} of {} requests failed", report.summary.errors, report.summary.requests)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tower_infos(towers: &crate::catalog::Dataset) -> Vec<DatasetInfo> {
        let v = serde_json::to_value(&towers.view).unwrap();
        vec![DatasetInfo::from_catalog(&v).expect("catalogue entry")]
    }

    #[test]
    fn every_planned_query_is_valid_for_the_dataset() {
        let towers = crate::catalog::celltowers_for_tests(10);
        let infos = tower_infos(&towers);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut kinds = BTreeMap::new();
        for _ in 0..2000 {
            let p = plan(&mut rng, &infos, (800, 500));
            *kinds.entry(p.kind).or_insert(0) += 1;
            if let Some(body) = p.body {
                let r: crate::query::QueryRequest = serde_json::from_value(body.clone()).unwrap();
                crate::query::plan(&r, &towers)
                    .unwrap_or_else(|e| panic!("{} plans an invalid query {body}: {e}", p.kind));
            }
        }
        // Every kind of the mix comes up.
        for (k, _) in MIX {
            assert!(kinds.get(k).copied().unwrap_or(0) > 10, "{k} in {kinds:?}");
        }
    }

    #[test]
    fn answers_are_classified() {
        let ok = json!({"partial": false, "total": 10, "selected": 4, "shards": {"expected": 2, "answered": [0, 1]}});
        assert_eq!(classify_answer(ok.to_string().as_bytes(), Some(10)).0, Outcome::Complete);
        assert_eq!(classify_answer(ok.to_string().as_bytes(), Some(11)).0, Outcome::WrongTotal);
        let unflagged =
            json!({"partial": false, "total": 5, "selected": 4, "shards": {"expected": 2, "answered": [0]}});
        assert_eq!(classify_answer(unflagged.to_string().as_bytes(), None).0, Outcome::WrongTotal);
        let partial = json!({"partial": true, "total": 5, "selected": 4, "shards": {"expected": 2, "answered": [0]}});
        assert_eq!(classify_answer(partial.to_string().as_bytes(), Some(10)).0, Outcome::Partial);
        let odd = json!({"partial": false, "total": 5, "selected": 6});
        assert_eq!(classify_answer(odd.to_string().as_bytes(), None).0, Outcome::Invalid);
        assert_eq!(classify_answer(b"<html>", None).0, Outcome::Invalid);
    }

    #[test]
    fn summaries_count_outcomes_and_errors() {
        let rec = |outcome: Outcome, ms: f64| Record {
            start_ms: 0.0,
            latency_ms: ms,
            kind: "world",
            dataset: "d".into(),
            client: 0,
            status: 200,
            outcome,
            total: None,
            error: None,
        };
        let records = vec![
            rec(Outcome::Complete, 10.0),
            rec(Outcome::Partial, 20.0),
            rec(Outcome::WrongTotal, 30.0),
            rec(Outcome::Transport, 40.0),
        ];
        let s = summarize("http://127.0.0.1:1", 1, Duration::from_secs(2), &BTreeMap::new(), &records);
        assert_eq!((s.requests, s.errors, s.complete, s.partial, s.wrong_totals), (4, 2, 1, 1, 1));
        assert_eq!(s.throughput, 2.0);
        assert_eq!(s.latency.max, 40.0);
        assert_eq!(s.latency.p50, 20.0);
        assert_eq!(s.first_errors.len(), 2);
    }

    #[tokio::test]
    async fn only_loopback_targets_are_accepted() {
        assert!(loopback_target("http://127.0.0.1:8080").await.is_ok());
        assert!(loopback_target("http://[::1]:8080").await.is_ok());
        let e = loopback_target("http://10.1.2.3:8080").await.unwrap_err().to_string();
        assert!(e.contains("not a loopback address"), "{e}");
        assert!(loopback_target("https://127.0.0.1").await.is_err());
    }

    #[test]
    fn limits_are_enforced() {
        let base = LoadArgs {
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            clients: 32,
            duration: "20s".into(),
            max_requests: 1000,
            datasets: vec![],
            expect_rows: vec![],
            request_timeout: "30s".into(),
            image: "800x500".into(),
            seed: 1,
            report: None,
        };
        assert!(validate(&base).is_ok());
        assert!(validate(&LoadArgs { clients: 0, ..base.clone() }).is_err());
        assert!(validate(&LoadArgs { clients: MAX_CLIENTS + 1, ..base.clone() }).is_err());
        assert!(validate(&LoadArgs { max_requests: 0, ..base.clone() }).is_err());
        assert!(validate(&LoadArgs { duration: "2h".into(), ..base.clone() }).is_err());
        assert!(validate(&LoadArgs { image: "0x5".into(), ..base.clone() }).is_err());
        assert!(validate(&LoadArgs { image: "5000x5".into(), ..base }).is_err());
    }

    #[test]
    fn logins_past_the_budget_do_not_lift_the_limit() {
        let budget = Budget::new(2);
        assert!(budget.take());
        // Three logins on two requests' budget: it is spent, not wrapped around.
        for _ in 0..3 {
            budget.spend();
        }
        assert!(!budget.take(), "an overspent budget refuses further requests");
        assert!(!budget.take());
    }
}
