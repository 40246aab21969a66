//! Hostile input and auth attacks against the real binaries.
//!
//! Two `quiver-worker serve` processes (halves of 200K generated cell towers)
//! and two `quiver-dashboard serve` processes (one at the default log level, one
//! at `RUST_LOG=debug` with `--trust-proxy`, another token and a 3 s session),
//! all logging to files. The test sends a corpus of malformed, oversized and
//! sneaky requests to the dashboards (HTTP) and the workers (Arrow Flight),
//! holds hundreds of slow connections open, attacks the login and the session
//! cookies, then checks that every server still answers with the same totals
//! and that no token or cookie appears in any log line. Every case prints what
//! was sent and what came back.
//!
//! One fixture, ten sections run in order (later ones rely on what earlier
//! ones leave: issued cookies, a session old enough to expire, the login rate
//! limit, logs to scan). A failed assertion is recorded under its section's
//! name and the next sections still run; the test fails at the end listing
//! every case and section that did not hold.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, Criteria, FlightData, FlightDescriptor, HandshakeRequest, Ticket};
use futures::StreamExt;
use quiver_dashboard::auth::Auth;
use quiver_dashboard::config::Secret;
use quiver_e2e::cluster::build_binaries;
use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::{PROTOCOL_VERSION, Query, View};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DASH_TOKEN: &str = "hostile-dash-token-7Kq2xW9vLm4Pz8Rt";
const DASH2_TOKEN: &str = "hostile-other-deploy-token-Vb6Nn3Qe1Ws5";
const WORKER_TOKEN: &str = "hostile-worker-token-3Fh8Jd2Ks9Lq5Zx";
const ROWS: u64 = 200_000;
/// Header and body read limits the dashboards are started with.
const READ_TIMEOUT_SECS: u64 = 5;

// ---------------------------------------------------------------- processes

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A server process whose stdout and stderr go to `<logs>/<name>.out|.err`.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn start(logs: &Path, name: &str, bin: &Path, args: &[String], env: &[(&str, &str)]) -> Proc {
        let out = File::create(logs.join(format!("{name}.out"))).unwrap();
        let err = File::create(logs.join(format!("{name}.err"))).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err));
        // Defaults unless the case sets them: the environment of the test must not leak in.
        for k in ["RUST_LOG", "QUIVER_DASHBOARD_TOKEN", "QUIVER_WORKER_TOKEN", "QUIVER_LOG_FORMAT"] {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { name: name.to_string(), child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after 5 s.
    fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

// ---------------------------------------------------------------- raw HTTP

/// What a server sent back on one connection.
#[derive(Debug, Default)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Set when no complete answer head arrived.
    failure: Option<String>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The `error` of a `{"error": "..."}` body.
    fn json_error(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        let o = v.as_object()?;
        (o.len() == 1).then(|| o.get("error")?.as_str().map(str::to_string))?
    }
    fn summary(&self) -> String {
        if let Some(f) = &self.failure {
            return format!("no answer: {f}");
        }
        let msg = self.json_error().unwrap_or_else(|| String::from_utf8_lossy(&self.body).replace('\n', " "));
        let allow = self.header("allow").map(|a| format!(" (Allow: {a})")).unwrap_or_default();
        format!("{} {}{allow}", self.status, first(&msg, 80))
    }
}

fn first(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

async fn connect_from(addr: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(addr).await
}

fn parse_reply(buf: &[u8], failure: Option<String>) -> Reply {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply {
            failure: Some(failure.unwrap_or_else(|| format!("{} bytes, no answer head", buf.len()))),
            ..Default::default()
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut rest = buf[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        let mut r = &rest[..];
        while let Some(nl) = r.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(String::from_utf8_lossy(&r[..nl]).trim(), 16).unwrap_or(0);
            if n == 0 || r.len() < nl + 2 + n {
                break;
            }
            body.extend_from_slice(&r[nl + 2..nl + 2 + n]);
            r = &r[(nl + 4 + n).min(r.len())..];
        }
        rest = body;
    } else if let Some(n) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest.truncate(n);
    }
    Reply { status, headers, body: rest, failure: None }
}

/// Sends `bytes` on a fresh connection (from `from` when given) and reads until
/// the server closes or `limit` passes.
async fn exchange(addr: SocketAddr, from: Option<IpAddr>, bytes: Vec<u8>, limit: Duration) -> Reply {
    let stream = match connect_from(addr, from).await {
        Ok(s) => s,
        Err(e) => return Reply { failure: Some(format!("connect: {e}")), ..Default::default() },
    };
    let (mut r, mut w) = stream.into_split();
    // Written while reading: a server may answer (413) before taking the whole body.
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&bytes).await;
        w
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    let mut failure = None;
    loop {
        match tokio::time::timeout_at(deadline, r.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => {
                failure = Some(format!("read: {e}"));
                break;
            }
            Err(_) => {
                failure = Some(format!("no close within {limit:?} (hang)"));
                break;
            }
        }
    }
    writer.abort();
    parse_reply(&buf, failure)
}

/// An HTTP/1.1 request with `Connection: close` and a `Content-Length` unless
/// the headers set their own framing.
fn http_req(method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: hostile.test\r\nConnection: close\r\n");
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !framed {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    let mut b = s.into_bytes();
    b.extend_from_slice(body);
    b
}

fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// What a case must get back.
#[derive(Clone, Copy)]
enum Want {
    /// One of these 4xx statuses with a `{"error": "..."}` body.
    Error(&'static [u16]),
    /// One of these statuses, no body shape required (refused by the HTTP parser
    /// before the app sees the request, or a success).
    Status(&'static [u16]),
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    from: Option<IpAddr>,
    want: Want,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, want: Want) -> Case {
    Case { name: name.into(), bytes, from: None, want }
}

/// Runs the cases one by one, printing a table line each; returns the failures.
async fn run_cases(label: &str, addr: SocketAddr, cases: Vec<Case>) -> Vec<String> {
    println!("\n== {label}: {} cases against {addr}", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let t = Instant::now();
        let reply = exchange(addr, c.from, c.bytes, Duration::from_secs(READ_TIMEOUT_SECS * 3)).await;
        let ms = t.elapsed().as_millis();
        let ok = match c.want {
            Want::Error(codes) => codes.contains(&reply.status) && reply.json_error().is_some_and(|m| !m.is_empty()),
            Want::Status(codes) => codes.contains(&reply.status),
        };
        let ok = ok && reply.failure.is_none() && reply.status < 500;
        println!("{} {:<58} → {} ({ms} ms)", if ok { "ok  " } else { "FAIL" }, first(&c.name, 58), reply.summary());
        if !ok {
            failures.push(format!("{label}: {} → {}", c.name, reply.summary()));
        }
    }
    failures
}

// ---------------------------------------------------------------- HTTP clients

fn http_client(from: Option<IpAddr>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30)).redirect(reqwest::redirect::Policy::none());
    if let Some(ip) = from {
        b = b.local_address(ip);
    }
    b.build().unwrap()
}

/// Every cookie value a dashboard issued, for the log scan.
type Issued = Arc<Mutex<Vec<String>>>;

/// `POST /login` with a JSON token; the status and the session cookie value.
async fn login(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    xff: Option<&str>,
    issued: &Issued,
) -> (u16, Option<String>, Option<String>) {
    let mut r = http.post(format!("{base}/login")).json(&json!({ "token": token }));
    if let Some(x) = xff {
        r = r.header("X-Forwarded-For", x);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("quiver_session="))
        .and_then(|v| v.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    if let Some(c) = &cookie {
        issued.lock().unwrap().push(c.clone());
    }
    (status, cookie, retry)
}

fn good_query() -> Value {
    json!({
        "dataset": "towers",
        "histograms": ["radio", "range"],
        "viewport": {"west": -180, "south": -85, "east": 180, "north": 85},
        "image": {"width": 256, "height": 160},
    })
}

/// A normal query with a cookie or a Bearer token; the answer's counts.
async fn query_counts(http: &reqwest::Client, base: &str, auth: &Auth2) -> (u16, Value, Duration) {
    let t = Instant::now();
    let r = auth.apply(http.post(format!("{base}/api/query")).json(&good_query()));
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let counts = json!({
        "total": v["total"], "selected": v["selected"], "partial": v["partial"],
        "histograms": v["histograms"], "hasImage": v["image"].is_string(),
    });
    (status, counts, t.elapsed())
}

/// How a good client authenticates.
#[derive(Clone)]
enum Auth2 {
    Cookie(String),
    Bearer(String),
}

impl Auth2 {
    fn apply(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth2::Cookie(c) => r.header("Cookie", format!("quiver_session={c}")),
            Auth2::Bearer(t) => r.bearer_auth(t),
        }
    }
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} not within {limit:?}");
}

// ---------------------------------------------------------------- Flight

fn flight_request<T>(msg: T, auth: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(a) = auth {
        match a.parse() {
            Ok(v) => {
                r.metadata_mut().insert("authorization", v);
            }
            Err(e) => panic!("metadata {a:?}: {e}"),
        }
    }
    r
}

fn status_line(s: &tonic::Status) -> String {
    format!("{:?} {}", s.code(), first(s.message(), 80))
}

fn ticket(q: Value) -> Vec<u8> {
    serde_json::to_vec(&q).unwrap()
}

fn worker_query() -> Query {
    Query {
        version: PROTOCOL_VERSION,
        dataset: "towers".into(),
        filters: Default::default(),
        viewport: None,
        viewport_filter: false,
        views: vec![View::Histogram { dimension: "radio".into() }],
    }
}

/// Rows over both workers, asked through our client.
async fn worker_total(urls: &[String]) -> u64 {
    let mut total = 0;
    for u in urls {
        let c = WorkerClient::connect(u, Some(WORKER_TOKEN.into())).await.unwrap();
        total += c.query(&worker_query()).await.unwrap().total;
    }
    total
}

/// `GET /api/datasets` with a session cookie: the status.
async fn get_with(http: &reqwest::Client, base: &str, cookie: &str) -> u16 {
    http.get(format!("{base}/api/datasets"))
        .header("Cookie", format!("quiver_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const E400: Want = Want::Error(&[400]);

// ---------------------------------------------------------------- the fixture

/// The processes every section attacks, and what the baseline answered.
struct Fixture {
    started: Instant,
    bin: std::path::PathBuf,
    _tmp: tempfile::TempDir,
    logs: std::path::PathBuf,
    issued: Issued,
    procs: Vec<Proc>,
    flight_urls: Vec<String>,
    worker_http: Vec<String>,
    flight_addrs: Vec<SocketAddr>,
    d1_addr: SocketAddr,
    d2_addr: SocketAddr,
    d1: String,
    d2: String,
    /// dashboard1's session cookie from the first login.
    c1: String,
    d1_auth: Auth2,
    d2_auth: Auth2,
    before1: Value,
    before2: Value,
    pids: Vec<(String, u32)>,
    rss_before: Vec<f64>,
}

impl Fixture {
    /// `serve` arguments of a dashboard on `addr` in front of both workers.
    fn dash_args(&self, addr: SocketAddr, extra: &[&str]) -> Vec<String> {
        dash_args(&self.flight_urls, addr, extra)
    }
}

fn dash_args(flight_urls: &[String], addr: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "serve".into(),
        "--addr".into(),
        addr.to_string(),
        "--workers".into(),
        flight_urls.join(","),
        "--header-read-timeout".into(),
        format!("{READ_TIMEOUT_SECS}s"),
        "--body-read-timeout".into(),
        format!("{READ_TIMEOUT_SECS}s"),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// What the sections found, and what later sections need from earlier ones.
#[derive(Default)]
struct Findings {
    /// Each failed case or section, named.
    failures: Vec<String>,
    /// Wrong tokens sent: none may appear in a log.
    near_misses: Vec<String>,
    /// Forged cookies sent: none may appear in a log.
    forged: Vec<(String, String)>,
    /// dashboard2's cookie (`--session-ttl 3s`) and when it was issued.
    c2: Option<(String, Instant)>,
}

/// Two workers (the second logs at debug) over generated data, two dashboards
/// (the second at debug, `--trust-proxy`, another token, a 3 s session and at
/// most 50 connections), logged in, with baseline answers.
async fn start() -> Fixture {
    let started = Instant::now();
    let bin = build_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let data = tmp.path().join("towers");
    let url = format!("file://{}/", data.display());
    let issued: Issued = Arc::default();

    // Data, through the real binary.
    let gen_out = Command::new(bin.join("quiver-worker"))
        .args(["gen", "celltowers", "--rows", &ROWS.to_string(), "--out", &url, "--files", "2", "--no-progress"])
        .output()
        .unwrap();
    assert!(gen_out.status.success(), "gen failed: {}", String::from_utf8_lossy(&gen_out.stderr));

    // Two workers (the second logs at debug), two dashboards.
    let mut procs: Vec<Proc> = Vec::new();
    let mut flight_urls = Vec::new();
    let mut worker_http = Vec::new();
    let mut flight_addrs = Vec::new();
    for i in 0..2u32 {
        let (fa, ha) = (free_addr(), free_addr());
        let args: Vec<String> = [
            "serve",
            "--flight-addr",
            &fa.to_string(),
            "--http-addr",
            &ha.to_string(),
            "--dataset",
            &format!("towers=celltowers:{url}"),
            "--shard-index",
            &i.to_string(),
            "--shards",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut env = vec![("QUIVER_WORKER_TOKEN", WORKER_TOKEN)];
        if i == 1 {
            env.push(("RUST_LOG", "debug"));
        }
        procs.push(Proc::start(&logs, &format!("worker{i}"), &bin.join("quiver-worker"), &args, &env));
        flight_urls.push(format!("http://{fa}"));
        worker_http.push(format!("http://{ha}"));
        flight_addrs.push(fa);
    }
    let (d1_addr, d2_addr) = (free_addr(), free_addr());
    let d1 = format!("http://{d1_addr}");
    let d2 = format!("http://{d2_addr}");
    procs.push(Proc::start(
        &logs,
        "dashboard1",
        &bin.join("quiver-dashboard"),
        &dash_args(&flight_urls, d1_addr, &[]),
        &[("QUIVER_DASHBOARD_TOKEN", DASH_TOKEN), ("QUIVER_WORKER_TOKEN", WORKER_TOKEN)],
    ));
    procs.push(Proc::start(
        &logs,
        "dashboard2-debug",
        &bin.join("quiver-dashboard"),
        &dash_args(&flight_urls, d2_addr, &["--trust-proxy", "--session-ttl", "3s", "--max-connections", "50"]),
        &[("QUIVER_DASHBOARD_TOKEN", DASH2_TOKEN), ("QUIVER_WORKER_TOKEN", WORKER_TOKEN), ("RUST_LOG", "debug")],
    ));

    let http = http_client(None);
    for w in &worker_http {
        let u = format!("{w}/readyz");
        wait_for(&format!("{u} ready"), Duration::from_secs(60), async || {
            http.get(&u).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    let (st, c1, _) = loop {
        match http.post(format!("{d1}/login")).json(&json!({"token": DASH_TOKEN})).send().await {
            Ok(_) => break login(&http, &d1, DASH_TOKEN, None, &issued).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(st, 204, "login on dashboard1");
    let c1 = c1.expect("a session cookie");
    let d1_auth = Auth2::Cookie(c1.clone());
    let d2_auth = Auth2::Bearer(DASH2_TOKEN.into());
    wait_for("dashboard2 up", Duration::from_secs(30), async || http.get(format!("{d2}/healthz")).send().await.is_ok())
        .await;

    // Baseline answers.
    let total = worker_total(&flight_urls).await;
    assert_eq!(total, ROWS, "the two workers hold every generated row");
    let (s1, before1, _) = query_counts(&http, &d1, &d1_auth).await;
    let (s2, before2, _) = query_counts(&http, &d2, &d2_auth).await;
    assert_eq!((s1, s2), (200, 200), "baseline queries");
    assert_eq!(before1["total"], json!(ROWS));
    assert_eq!(before1["partial"], json!(false));
    assert_eq!(before1, before2, "both dashboards give the same counts");
    let pids: Vec<(String, u32)> = procs.iter().map(|p| (p.name.clone(), p.pid())).collect();
    let rss_before: Vec<f64> = pids.iter().map(|(_, p)| rss_mb(*p)).collect();
    println!(
        "setup: {} rows in 2 shards, dashboards {d1} (info) and {d2} (debug), ready after {:.1} s",
        ROWS,
        started.elapsed().as_secs_f64()
    );
    Fixture {
        started,
        bin,
        _tmp: tmp,
        logs,
        issued,
        procs,
        flight_urls,
        worker_http,
        flight_addrs,
        d1_addr,
        d2_addr,
        d1,
        d2,
        c1,
        d1_auth,
        d2_auth,
        before1,
        before2,
        pids,
        rss_before,
    }
}

/// Malformed, oversized and sneaky HTTP requests to dashboard1.
async fn dashboard_http_corpus(fx: &Fixture, log: &mut Findings) {
    let Fixture { d1_addr, ref c1, .. } = *fx;
    // ------------------------------------------------ dashboard HTTP corpus
    let ck = || ("Cookie", format!("quiver_session={c1}"));
    let jt = || ("Content-Type", "application/json".to_string());
    let q = |body: &[u8]| http_req("POST", "/api/query", &[ck(), jt()], body);
    let qj = |v: Value| q(&serde_json::to_vec(&v).unwrap());
    let with = |extra: Value| {
        let mut v = json!({"dataset": "towers", "histograms": ["radio"]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        qj(v)
    };
    let world = json!({"west": -180, "south": -85, "east": 180, "north": 85});
    let deep = |n: usize| format!("{{\"dataset\": {}{}}}", "[".repeat(n), "]".repeat(n));
    let mut cases = vec![
        case("malformed JSON (cut off)", q(br#"{"dataset": "towers", "histograms": ["#), E400),
        case("not JSON at all", q(b"hello there"), E400),
        case("empty body", q(b""), E400),
        case("JSON null", q(b"null"), E400),
        case("JSON array instead of object", q(b"[1,2,3]"), E400),
        case("dataset is a number", qj(json!({"dataset": 42, "histograms": ["radio"]})), E400),
        case("histograms is a string", qj(json!({"dataset": "towers", "histograms": "radio"})), E400),
        case("image width is a string", with(json!({"viewport": world, "image": {"width": "800", "height": 500}})), E400),
        case("viewportFilter is a string", with(json!({"viewport": world, "viewportFilter": "yes"})), E400),
        case("width 1e400", q(br#"{"dataset":"towers","viewport":{"west":-1,"south":-1,"east":1,"north":1},"image":{"width":1e400,"height":5}}"#), E400),
        case("width u64 overflow 18446744073709551616", q(br#"{"dataset":"towers","viewport":{"west":-1,"south":-1,"east":1,"north":1},"image":{"width":18446744073709551616,"height":5}}"#), E400),
        case("width u32 overflow 4294967296", with(json!({"viewport": world, "image": {"width": 4294967296u64, "height": 5}})), E400),
        case("range min 1e400", q(br#"{"dataset":"towers","histograms":["radio"],"filters":{"range":{"range":{"min":1e400,"max":5}}}}"#), E400),
        case("range min -1e400", q(br#"{"dataset":"towers","histograms":["radio"],"filters":{"range":{"range":{"min":-1e400,"max":5}}}}"#), E400),
        case("range min NaN literal", q(br#"{"dataset":"towers","histograms":["radio"],"filters":{"range":{"range":{"min":NaN,"max":5}}}}"#), E400),
        case("range max Infinity literal", q(br#"{"dataset":"towers","histograms":["radio"],"filters":{"range":{"range":{"min":1,"max":Infinity}}}}"#), E400),
        case("range min \"NaN\" string", with(json!({"filters": {"range": {"range": {"min": "NaN", "max": 5}}}})), E400),
        case("range max \"Infinity\" string", with(json!({"filters": {"range": {"range": {"min": 1, "max": "Infinity"}}}})), E400),
        case("viewport west -Infinity", q(br#"{"dataset":"towers","histograms":["radio"],"viewport":{"west":-Infinity,"south":-1,"east":1,"north":1}}"#), E400),
        case("sample limit 99999999999", with(json!({"viewport": world, "sample": {"limit": 99999999999u64}})), E400),
        case("sample limit 10001", with(json!({"viewport": world, "sample": {"limit": 10001}})), E400),
        case("image width -1", with(json!({"viewport": world, "image": {"width": -1, "height": 10}})), E400),
        case("image 0x0", with(json!({"viewport": world, "image": {"width": 0, "height": 0}})), E400),
        case("image 100000x100000", with(json!({"viewport": world, "image": {"width": 100000, "height": 100000}})), E400),
        case("image 4096x4096 (over the pixel limit)", with(json!({"viewport": world, "image": {"width": 4096, "height": 4096}})), E400),
        case("image without viewport", with(json!({"image": {"width": 10, "height": 10}})), E400),
        case("west > east (crosses the antimeridian: valid)", with(json!({"viewport": {"west": 170, "south": -10, "east": -170, "north": 10}, "viewportFilter": true})), Want::Status(&[200])),
        case("north 89 (outside ±85.0511)", with(json!({"viewport": {"west": -10, "south": 0, "east": 10, "north": 89}})), E400),
        case("south -90", with(json!({"viewport": {"west": -10, "south": -90, "east": 10, "north": 0}})), E400),
        case("south > north", with(json!({"viewport": {"west": -10, "south": 20, "east": 10, "north": 10}})), E400),
        case("longitude 200", with(json!({"viewport": {"west": -10, "south": 0, "east": 200, "north": 10}})), E400),
        case("zero-width viewport", with(json!({"viewport": {"west": 5, "south": 0, "east": 5, "north": 10}})), E400),
        case("10k nested [ as dataset", q(deep(10_000).as_bytes()), E400),
        case("10k nested [ alone", q("[".repeat(10_000).as_bytes()), E400),
        case("deep nesting in filters", q(format!("{{\"dataset\":\"towers\",\"histograms\":[\"radio\"],\"filters\":{{\"radio\":{{\"categories\":{}{}}}}}}}", "[".repeat(5000), "]".repeat(5000)).as_bytes()), E400),
        case("1 MB dataset name", qj(json!({"dataset": "d".repeat(1 << 20), "histograms": ["radio"]})), Want::Error(&[413])),
        case("60 KB dataset name", qj(json!({"dataset": "d".repeat(60_000), "histograms": ["radio"]})), E400),
        case("100k-char dimension name", qj(json!({"dataset": "towers", "histograms": ["x".repeat(100_000)]})), Want::Error(&[413])),
        case("60k-char dimension name", qj(json!({"dataset": "towers", "histograms": ["x".repeat(60_000)]})), E400),
        case("60k-char filter dimension", qj(json!({"dataset": "towers", "histograms": ["radio"], "filters": {"y".repeat(60_000): {"bins": [1]}}})), E400),
        case("unknown top-level field", with(json!({"evil": true})), E400),
        case("unknown field in image", with(json!({"viewport": world, "image": {"width": 5, "height": 5, "depth": 3}})), E400),
        case("unknown filter kind", with(json!({"filters": {"radio": {"regex": ".*"}}})), E400),
        case("dataset ../../etc/passwd", qj(json!({"dataset": "../../etc/passwd", "histograms": ["radio"]})), E400),
        case("dataset %2e%2e/%2e%2e/etc/passwd", qj(json!({"dataset": "%2e%2e/%2e%2e/etc/passwd", "histograms": ["radio"]})), E400),
        case("dataset with NUL byte", qj(json!({"dataset": "towers\u{0}", "histograms": ["radio"]})), E400),
        case("dataset ..%2F..%2Fetc%2Fpasswd", qj(json!({"dataset": "..%2F..%2Fetc%2Fpasswd", "histograms": ["radio"]})), E400),
        case("dataset file:///etc/passwd", qj(json!({"dataset": "file:///etc/passwd", "histograms": ["radio"]})), E400),
        case("body 100 KB (over the 64 KiB limit)", q(&vec![b' '; 100_000]), Want::Error(&[413])),
        case("Content-Length 10 MB, 10 bytes sent", http_req("POST", "/api/query", &[ck(), jt(), ("Content-Length", "10000000".into())], b"{\"dataset\""), Want::Error(&[413])),
        case("Content-Length 1000, 20 bytes sent (408 after the body limit)", http_req("POST", "/api/query", &[ck(), jt(), ("Content-Length", "1000".into())], b"{\"dataset\":\"towers\"}"), Want::Error(&[408])),
        case("Content-Length 5, longer body", http_req("POST", "/api/query", &[ck(), jt(), ("Content-Length", "5".into())], &serde_json::to_vec(&good_query()).unwrap()), E400),
        case("chunked 200 KB without length", http_req("POST", "/api/query", &[ck(), jt(), ("Transfer-Encoding", "chunked".into())], &chunked(&vec![b' '; 200_000], 8192)), Want::Error(&[413])),
        case("chunked valid query (accepted)", http_req("POST", "/api/query", &[ck(), jt(), ("Transfer-Encoding", "chunked".into())], &chunked(&serde_json::to_vec(&good_query()).unwrap(), 7)), Want::Status(&[200])),
        case("Content-Length and chunked together", http_req("POST", "/api/query", &[ck(), jt(), ("Content-Length", "3".into()), ("Transfer-Encoding", "chunked".into())], &chunked(b"{}", 2)), Want::Status(&[400])),
        case("two different Content-Lengths", http_req("POST", "/api/query", &[ck(), jt(), ("Content-Length", "2".into()), ("Content-Length", "3".into())], b"{}x"), Want::Status(&[400])),
        case("Content-Type text/plain, valid JSON (parsed as JSON)", http_req("POST", "/api/query", &[ck(), ("Content-Type", "text/plain".into())], &serde_json::to_vec(&good_query()).unwrap()), Want::Status(&[200])),
        case("Content-Type application/xml, XML body", http_req("POST", "/api/query", &[ck(), ("Content-Type", "application/xml".into())], b"<query dataset='towers'/>"), E400),
        case("form-encoded body", http_req("POST", "/api/query", &[ck(), ("Content-Type", "application/x-www-form-urlencoded".into())], b"dataset=towers&histograms=radio"), E400),
        case("invalid UTF-8 in a string", q(b"{\"dataset\": \"tow\xff\xfeers\", \"histograms\": [\"radio\"]}"), E400),
        case("invalid UTF-8 outside strings", q(b"\xff\xfe{}"), E400),
        case("UTF-16 body with BOM", q(&[0xff, 0xfe, b'{', 0, b'}', 0]), E400),
        case("duplicate key dataset", q(br#"{"dataset":"towers","dataset":"other","histograms":["radio"]}"#), E400),
        case("5000 histograms (repeats)", qj(json!({"dataset": "towers", "histograms": vec!["radio"; 5000]})), E400),
        case("2000 filters on unknown dimensions", qj(json!({"dataset": "towers", "histograms": ["radio"], "filters": (0..2000).map(|i| (format!("d{i}"), json!({"bins": [1]}))).collect::<serde_json::Map<_, _>>()})), E400),
        case("2000 categories in one filter", with(json!({"filters": {"radio": {"categories": vec!["GSM"; 2000]}}})), E400),
        case("2000 bins in one filter", with(json!({"filters": {"range": {"bins": vec![1; 2000]}}})), E400),
        case("bin 4294967295", with(json!({"filters": {"range": {"bins": [4294967295u64]}}})), E400),
        case("bin -1", with(json!({"filters": {"range": {"bins": [-1]}}})), E400),
        case("bin 999", with(json!({"filters": {"range": {"bins": [999]}}})), E400),
        case("unknown category 5G", with(json!({"filters": {"radio": {"categories": ["5G"]}}})), E400),
        case("categories on a numeric dimension", with(json!({"filters": {"range": {"categories": ["x"]}}})), E400),
        case("range on a categorical dimension", with(json!({"filters": {"radio": {"range": {"min": 0, "max": 1}}}})), E400),
        case("range min > max", with(json!({"filters": {"range": {"range": {"min": 10, "max": 1}}}})), E400),
        case("nothing to compute", qj(json!({"dataset": "towers"})), E400),
        // Other endpoints.
        case("GET /api/query (wrong method)", http_req("GET", "/api/query", &[ck()], b""), Want::Error(&[405])),
        case("DELETE /api/status", http_req("DELETE", "/api/status", &[ck()], b""), Want::Error(&[405])),
        case("PUT /login", http_req("PUT", "/login", &[jt()], b"{}"), Want::Error(&[405])),
        case("POST /api/reload garbage", http_req("POST", "/api/reload", &[ck(), jt()], b"{{{"), E400),
        case("POST /api/reload dataset ../../etc/passwd", http_req("POST", "/api/reload", &[ck(), jt()], br#"{"dataset":"../../etc/passwd"}"#), E400),
        case("POST /api/reload dataset with NUL", http_req("POST", "/api/reload", &[ck(), jt()], b"{\"dataset\":\"a\\u0000b\"}"), E400),
        case("POST /api/reload 1 MB dataset name", http_req("POST", "/api/reload", &[ck(), jt()], &serde_json::to_vec(&json!({"dataset": "r".repeat(1 << 20)})).unwrap()), Want::Error(&[413])),
        case("POST /api/reload unknown field", http_req("POST", "/api/reload", &[ck(), jt()], br#"{"dataset":"towers","now":true}"#), E400),
        case("POST /api/reload dataset is an array", http_req("POST", "/api/reload", &[ck(), jt()], br#"{"dataset":["towers"]}"#), E400),
        case("GET /api/status with a garbage body", http_req("GET", "/api/status", &[ck()], b"\xff\xff"), Want::Status(&[200])),
        case("GET /api/datasets?dataset=../../etc/passwd", http_req("GET", "/api/datasets?dataset=../../etc/passwd", &[ck()], b""), Want::Status(&[200])),
        case("GET /api/../../etc/passwd", http_req("GET", "/api/../../etc/passwd", &[ck()], b""), Want::Error(&[404])),
        case("GET /api/%2e%2e/%2e%2e/etc/passwd", http_req("GET", "/api/%2e%2e/%2e%2e/etc/passwd", &[ck()], b""), Want::Error(&[404])),
        case("GET /static/../../../../etc/passwd", http_req("GET", "/static/../../../../etc/passwd", &[], b""), Want::Error(&[404, 400])),
        case("GET /static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", http_req("GET", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", &[], b""), Want::Error(&[404, 400])),
        case("GET /static/..%2f..%2f..%2fetc%2fpasswd", http_req("GET", "/static/..%2f..%2f..%2fetc%2fpasswd", &[], b""), Want::Error(&[404, 400])),
        case("GET /static/app.js%00.png", http_req("GET", "/static/app.js%00.png", &[], b""), Want::Error(&[404, 400])),
        case("GET /static/%ff%fe", http_req("GET", "/static/%ff%fe", &[], b""), Want::Error(&[404, 400])),
        case("GET /%2e%2e/%2e%2e/etc/passwd", http_req("GET", "/%2e%2e/%2e%2e/etc/passwd", &[], b""), Want::Error(&[404])),
        case("POST /login malformed JSON", http_req("POST", "/login", &[jt()], b"{\"token\":"), E400),
        case("POST /login token is a number", http_req("POST", "/login", &[jt()], b"{\"token\":12345}"), E400),
        case("POST /login 1 MB token", http_req("POST", "/login", &[jt()], &serde_json::to_vec(&json!({"token": "t".repeat(1 << 20)})).unwrap()), Want::Error(&[413])),
        case("POST /login text/plain", http_req("POST", "/login", &[("Content-Type", "text/plain".into())], b"token=x"), E400),
        case("POST /login no Content-Type", http_req("POST", "/login", &[], b"token=x"), E400),
        case("POST /login form without token field", http_req("POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded".into())], b"tok=x"), E400),
        case("POST /login deep nesting", http_req("POST", "/login", &[jt()], deep(10_000).replace("dataset", "token").as_bytes()), E400),
        // Refused by the HTTP parser before the app: no JSON body to expect.
        case("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), Want::Status(&[400])),
        case("NUL in a header value", b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n".to_vec(), Want::Status(&[400])),
        case("1 MB header (over the parser's buffer)", http_req("GET", "/healthz", &[("X-Big", "b".repeat(1 << 20))], b""), Want::Status(&[431, 400])),
        case("HTTP/0.9-style request", b"GET /\r\n\r\n".to_vec(), Want::Status(&[400, 505])),
    ];
    // An unauthenticated copy of a query must be refused before any parsing.
    cases.push(case(
        "query without credentials (malformed body)",
        http_req("POST", "/api/query", &[jt()], b"{{{"),
        Want::Error(&[401]),
    ));
    log.failures.extend(run_cases("dashboard HTTP corpus", d1_addr, cases).await);
    // Nothing of /etc/passwd ever came back: checked on the traversal answers above by status;
    // double-check one body here.
    let r =
        exchange(d1_addr, None, http_req("GET", "/static/../../../../etc/passwd", &[], b""), Duration::from_secs(5))
            .await;
    assert!(!String::from_utf8_lossy(&r.body).contains("root:"), "a traversal served /etc/passwd");
}

/// Hostile tickets, actions and descriptors against worker 0 over Arrow Flight.
async fn worker_flight_corpus(fx: &Fixture, log: &mut Findings) {
    let Fixture { ref flight_urls, .. } = *fx;
    println!("\n== worker Flight corpus against {}", flight_urls[0]);
    let bearer = format!("Bearer {WORKER_TOKEN}");
    let mut fc = FlightServiceClient::new(
        tonic::transport::Endpoint::from_shared(flight_urls[0].clone()).unwrap().connect().await.unwrap(),
    )
    .max_decoding_message_size(64 << 20);
    let vp = json!({"west": -10, "south": 0, "east": 10, "north": 10});
    let base_ticket = |extra: Value| {
        let mut v = json!({"version": 1, "dataset": "towers", "views": [{"type": "histogram", "dimension": "radio"}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        ticket(v)
    };
    use tonic::Code;
    /// Name, ticket bytes, `authorization` metadata, acceptable codes.
    type TicketCase<'a> = (&'a str, Vec<u8>, Option<String>, &'a [Code]);
    let flight_tickets: Vec<TicketCase> = vec![
        ("valid ticket (control)", base_ticket(json!({})), Some(bearer.clone()), &[Code::Ok]),
        ("not JSON", b"SELECT * FROM towers".to_vec(), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("empty ticket", vec![], Some(bearer.clone()), &[Code::InvalidArgument]),
        ("invalid UTF-8", b"{\"version\":1,\"dataset\":\"\xff\xfe\"}".to_vec(), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("version 2", base_ticket(json!({"version": 2})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("version -1", base_ticket(json!({"version": -1})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("unknown dataset", base_ticket(json!({"dataset": "nope"})), Some(bearer.clone()), &[Code::NotFound]),
        ("dataset ../../etc/passwd", base_ticket(json!({"dataset": "../../etc/passwd"})), Some(bearer.clone()), &[Code::NotFound]),
        ("dataset with NUL", base_ticket(json!({"dataset": "towers\u{0}"})), Some(bearer.clone()), &[Code::NotFound]),
        ("dataset of 60 KB", base_ticket(json!({"dataset": "z".repeat(60_000)})), Some(bearer.clone()), &[Code::NotFound]),
        ("unknown dimension", base_ticket(json!({"views": [{"type": "histogram", "dimension": "colour"}]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("range bound 1e999 (NaN cannot be sent)", b"{\"version\":1,\"dataset\":\"towers\",\"filters\":{\"range\":{\"range\":{\"min\":1e999,\"max\":1}}},\"views\":[{\"type\":\"histogram\",\"dimension\":\"radio\"}]}".to_vec(), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("viewport NaN literal", b"{\"version\":1,\"dataset\":\"towers\",\"viewport\":{\"west\":NaN,\"south\":0,\"east\":1,\"north\":1},\"views\":[{\"type\":\"histogram\",\"dimension\":\"radio\"}]}".to_vec(), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("viewport latitude 90", base_ticket(json!({"viewport": {"west": 0, "south": 0, "east": 1, "north": 90}})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("raster 100000x100000", base_ticket(json!({"viewport": vp, "views": [{"type": "raster", "width": 100000, "height": 100000}]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("raster 0x10", base_ticket(json!({"viewport": vp, "views": [{"type": "raster", "width": 0, "height": 10}]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("raster width 2^32", base_ticket(json!({"viewport": vp, "views": [{"type": "raster", "width": 4294967296u64, "height": 10}]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("two rasters", base_ticket(json!({"viewport": vp, "views": [{"type": "raster", "width": 8, "height": 8}, {"type": "raster", "width": 8, "height": 8}]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("sample limit 1e9", base_ticket(json!({"viewport": vp, "views": [{"type": "sample", "limit": 1000000000}]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("5000 histogram views", base_ticket(json!({"views": vec![json!({"type": "histogram", "dimension": "radio"}); 5000]})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("bins filter 4294967295", base_ticket(json!({"filters": {"range": {"bins": [4294967295u64]}}})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("unknown category", base_ticket(json!({"filters": {"radio": {"categories": ["5G"]}}})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("unknown field", base_ticket(json!({"sql": "DROP TABLE"})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("10k nested [", format!("{{\"version\":1,\"dataset\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("100 KB ticket (over the 64 KiB ticket limit)", base_ticket(json!({"pad": "p".repeat(100_000)})), Some(bearer.clone()), &[Code::InvalidArgument]),
        ("1.1 MB ticket (over the 1 MiB message limit)", base_ticket(json!({"pad": "p".repeat(1_100_000)})), Some(bearer.clone()), &[Code::OutOfRange, Code::ResourceExhausted, Code::InvalidArgument]),
        ("no token", base_ticket(json!({})), None, &[Code::Unauthenticated]),
        ("wrong token", base_ticket(json!({})), Some(format!("Bearer {WORKER_TOKEN}x")), &[Code::Unauthenticated]),
        ("token prefix", base_ticket(json!({})), Some(format!("Bearer {}", &WORKER_TOKEN[..WORKER_TOKEN.len() - 1])), &[Code::Unauthenticated]),
        ("lower-case scheme", base_ticket(json!({})), Some(format!("bearer {WORKER_TOKEN}")), &[Code::Unauthenticated]),
        ("token without scheme", base_ticket(json!({})), Some(WORKER_TOKEN.to_string()), &[Code::Unauthenticated]),
        ("Basic scheme", base_ticket(json!({})), Some("Basic dXNlcjpwYXNz".into()), &[Code::Unauthenticated]),
        ("empty Bearer", base_ticket(json!({})), Some("Bearer ".into()), &[Code::Unauthenticated]),
    ];
    log.near_misses.push(format!("{WORKER_TOKEN}x"));
    log.near_misses.push(WORKER_TOKEN[..WORKER_TOKEN.len() - 1].to_string());
    for (name, t, auth, want) in flight_tickets {
        let r = fc.do_get(flight_request(Ticket::new(t), auth.as_deref())).await;
        let outcome = match r {
            Ok(resp) => {
                let mut s = resp.into_inner();
                let mut n = 0;
                let mut err = None;
                while let Some(item) = s.next().await {
                    match item {
                        Ok(_) => n += 1,
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                match err {
                    Some(e) => Err(e),
                    None => Ok(n),
                }
            }
            Err(e) => Err(e),
        };
        let (code, line) = match &outcome {
            Ok(n) => (Code::Ok, format!("Ok, {n} messages")),
            Err(s) => (s.code(), status_line(s)),
        };
        let ok = want.contains(&code) && outcome.as_ref().err().is_none_or(|s| !s.message().is_empty());
        println!("{} DoGet {:<50} → {line}", if ok { "ok  " } else { "FAIL" }, name);
        if !ok {
            log.failures.push(format!("DoGet {name} → {line}"));
        }
    }
    type ActionCase<'a> = (&'a str, &'a str, Vec<u8>, Option<String>, &'a [Code]);
    let actions: Vec<ActionCase> = vec![
        ("health (control)", "health", vec![], Some(bearer.clone()), &[Code::Ok]),
        ("unknown action", "drop_all", vec![], Some(bearer.clone()), &[Code::InvalidArgument]),
        ("action type of 100 KB", "a", vec![], Some(bearer.clone()), &[Code::InvalidArgument]),
        ("empty action type", "", vec![], Some(bearer.clone()), &[Code::InvalidArgument]),
        ("reload with garbage body", "reload", b"{{{".to_vec(), Some(bearer.clone()), &[Code::InvalidArgument]),
        (
            "reload with unknown field",
            "reload",
            br#"{"dataset":"towers","force":1}"#.to_vec(),
            Some(bearer.clone()),
            &[Code::InvalidArgument],
        ),
        (
            "reload ../../etc/passwd",
            "reload",
            br#"{"dataset":"../../etc/passwd"}"#.to_vec(),
            Some(bearer.clone()),
            &[Code::NotFound],
        ),
        ("reload with invalid UTF-8", "reload", b"\xff\xfe".to_vec(), Some(bearer.clone()), &[Code::InvalidArgument]),
        (
            "reload, deep nesting",
            "reload",
            "[".repeat(10_000).into_bytes(),
            Some(bearer.clone()),
            &[Code::InvalidArgument],
        ),
        ("stats without token", "stats", vec![], None, &[Code::Unauthenticated]),
        (
            "reload with wrong token",
            "reload",
            vec![],
            Some(format!("Bearer {WORKER_TOKEN}x")),
            &[Code::Unauthenticated],
        ),
    ];
    for (name, kind, body, auth, want) in actions {
        let kind = if name.starts_with("action type of 100 KB") { "a".repeat(100_000) } else { kind.to_string() };
        let r = fc.do_action(flight_request(Action { r#type: kind, body: body.into() }, auth.as_deref())).await;
        let outcome = match r {
            Ok(resp) => resp.into_inner().next().await.transpose().map(|_| ()),
            Err(e) => Err(e),
        };
        let (code, line) = match &outcome {
            Ok(()) => (Code::Ok, "Ok".to_string()),
            Err(s) => (s.code(), status_line(s)),
        };
        let ok = want.contains(&code) && outcome.as_ref().err().is_none_or(|s| !s.message().is_empty());
        println!("{} DoAction {:<47} → {line}", if ok { "ok  " } else { "FAIL" }, name);
        if !ok {
            log.failures.push(format!("DoAction {name} → {line}"));
        }
    }
    // Other calls with hostile descriptors.
    let other: Vec<(&str, Result<(), tonic::Status>, &[Code])> = vec![
        (
            "GetFlightInfo path ../../etc/passwd",
            fc.get_flight_info(flight_request(
                FlightDescriptor::new_path(vec!["../../etc/passwd".into()]),
                Some(&bearer),
            ))
            .await
            .map(|_| ()),
            &[Code::NotFound],
        ),
        (
            "GetFlightInfo cmd garbage",
            fc.get_flight_info(flight_request(FlightDescriptor::new_cmd(b"\x00\x01garbage".to_vec()), Some(&bearer)))
                .await
                .map(|_| ()),
            &[Code::InvalidArgument],
        ),
        (
            "GetSchema empty descriptor",
            fc.get_schema(flight_request(FlightDescriptor::new_cmd(Vec::<u8>::new()), Some(&bearer))).await.map(|_| ()),
            &[Code::InvalidArgument],
        ),
        (
            "ListFlights without token",
            fc.list_flights(flight_request(Criteria::default(), None)).await.map(|_| ()),
            &[Code::Unauthenticated],
        ),
        (
            "Handshake",
            fc.handshake(flight_request(futures::stream::iter(vec![HandshakeRequest::default()]), Some(&bearer)))
                .await
                .map(|_| ()),
            &[Code::Unimplemented],
        ),
        (
            "DoPut of a record batch",
            fc.do_put(flight_request(futures::stream::iter(vec![FlightData::default()]), Some(&bearer)))
                .await
                .map(|_| ()),
            &[Code::Unimplemented],
        ),
    ];
    for (name, r, want) in other {
        let (code, line) = match &r {
            Ok(()) => (Code::Ok, "Ok".to_string()),
            Err(s) => (s.code(), status_line(s)),
        };
        let ok = want.contains(&code);
        println!("{} {:<56} → {line}", if ok { "ok  " } else { "FAIL" }, name);
        if !ok {
            log.failures.push(format!("{name} → {line}"));
        }
    }
    assert_eq!(worker_total(flight_urls).await, ROWS, "the workers answer after the Flight corpus");
}

/// Garbage and held-open connections on worker 0's Flight port while a real client queries.
async fn raw_tcp_on_the_flight_port(fx: &Fixture) {
    let Fixture { ref flight_urls, ref flight_addrs, .. } = *fx;
    println!("\n== raw TCP against the Flight port {}", flight_addrs[0]);
    let garbage_closed = {
        let mut s = TcpStream::connect(flight_addrs[0]).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage garbage").await.unwrap();
        let t = Instant::now();
        let mut buf = vec![0u8; 4096];
        let mut got = 0;
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break Some(t.elapsed()),
                Ok(Ok(n)) => got += n,
                Err(_) => break None,
            }
        };
        println!(
            "garbage (an HTTP/1 request and binary junk): server answered {got} bytes and closed after {closed:?}"
        );
        closed
    };
    assert!(garbage_closed.is_some(), "the worker closes a connection that sends garbage");
    // Held open while a real client queries: idle connections and half prefaces.
    let mut held = Vec::new();
    for i in 0..150 {
        let mut s = TcpStream::connect(flight_addrs[0]).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        held.push(s);
    }
    let client = WorkerClient::connect(&flight_urls[0], Some(WORKER_TOKEN.into())).await.unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = client.query(&worker_query()).await.unwrap();
        assert!(r.total > 0);
        worst = worst.max(t.elapsed());
    }
    println!(
        "150 connections held (75 idle, 75 with half an HTTP/2 preface): 20 real Flight queries, slowest {worst:?}"
    );
    assert!(worst < Duration::from_secs(2), "the worker keeps answering a real client");
    let mut still_open = 0;
    for s in &mut held {
        let mut b = [0u8; 1024];
        // Drain what the worker sent (its SETTINGS); a read that then waits means it still holds the connection.
        loop {
            match tokio::time::timeout(Duration::from_millis(5), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => {
                    still_open += 1;
                    break;
                }
            }
        }
    }
    drop(held);
    println!(
        "after the queries {still_open} of 150 held connections were still open (closed by the worker's connection age limit later)"
    );
}

/// Forged cookies, bearer variants, tokens in query strings, cookies across deployments.
async fn auth_attacks(fx: &Fixture, log: &mut Findings) {
    let http = http_client(None);
    let Fixture { d1_addr, d2_addr, ref d1, ref d2, ref c1, ref issued, .. } = *fx;
    println!("\n== auth attacks");
    let now = quiver_dashboard::routes::session::unix_now();
    let parts: Vec<&str> = c1.split('.').collect();
    assert_eq!(parts.len(), 5, "cookie v1.issued.expires.nonce.mac");
    let mut flipped = c1.clone().into_bytes();
    let i = flipped.len() - 5;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let far_future = format!("{}.{}.{}.{}.{}", parts[0], parts[1], now + 10 * 365 * 86400, parts[3], parts[4]);
    let backdated_issue = format!("{}.{}.{}.{}.{}", parts[0], now + 100, parts[2], parts[3], parts[4]);
    let guessed = Auth::new(&Secret::new("guessed-token"), 0, Duration::from_secs(10 * 365 * 86400)).issue(now);
    let guessed_epoch = Auth::new(&Secret::new(DASH_TOKEN), 7, Duration::from_secs(3600)).issue(now);
    let random = format!("v1.{now}.{}.00112233445566778899aabbccddeeff.{}", now + 3600, "A".repeat(43));
    let forged: Vec<(&str, String)> = vec![
        ("random cookie", random),
        ("flipped MAC byte", flipped),
        ("expiry edited to +10 years", far_future),
        ("issue time edited", backdated_issue),
        ("re-signed with a guessed token, 10-year expiry", guessed),
        ("signed with the right token but epoch 7", guessed_epoch),
        ("truncated", c1[..c1.len() - 10].to_string()),
        ("MAC only", parts[4].to_string()),
        ("empty", String::new()),
        ("400 chars", "v1.".to_string() + &"9".repeat(397)),
        ("with a control character", format!("{c1}\u{1}")),
        ("quoted", format!("\"{}x\"", c1)),
        ("v2 prefix", c1.replacen("v1", "v2", 1)),
    ];
    let mut auth_cases = Vec::new();
    for (name, c) in &forged {
        // A control character makes the header invalid HTTP: the parser refuses it with 400.
        let want = if c.contains('\u{1}') { Want::Status(&[400]) } else { Want::Error(&[401]) };
        auth_cases.push(case(
            format!("forged cookie: {name}"),
            http_req("GET", "/api/datasets", &[("Cookie", format!("quiver_session={c}"))], b""),
            want,
        ));
    }
    auth_cases.push(case(
        "cookie under another name",
        http_req("GET", "/api/datasets", &[("Cookie", format!("session={c1}"))], b""),
        Want::Error(&[401]),
    ));
    auth_cases.push(case(
        "forged cookie before the real one",
        http_req("GET", "/api/datasets", &[("Cookie", format!("quiver_session=forged; quiver_session={c1}"))], b""),
        Want::Error(&[401]),
    ));
    auth_cases.push(case(
        "real cookie (control)",
        http_req("GET", "/api/datasets", &[("Cookie", format!("quiver_session={c1}"))], b""),
        Want::Status(&[200]),
    ));
    // Bearer variants, each from its own loopback address so the rate limit does not mix them in.
    let t = DASH_TOKEN;
    let bearer_cases: Vec<(&str, String, Want)> = vec![
        ("Bearer wrong token", "Bearer wrong-token-entirely".into(), Want::Error(&[401])),
        ("Bearer token + x", format!("Bearer {t}x"), Want::Error(&[401])),
        ("Bearer token minus last char", format!("Bearer {}", &t[..t.len() - 1]), Want::Error(&[401])),
        ("Bearer token upper-cased", format!("Bearer {}", t.to_uppercase()), Want::Error(&[401])),
        ("Bearer token + trailing spaces (OWS: same value)", format!("Bearer {t}   "), Want::Status(&[200])),
        ("Bearer token + tab + x", format!("Bearer {t}\tx"), Want::Error(&[401])),
        ("Basic with the token", format!("Basic {t}"), Want::Error(&[401])),
        ("token without scheme", t.to_string(), Want::Error(&[401])),
        ("Bearer with the cookie value", format!("Bearer {c1}"), Want::Error(&[401])),
    ];
    log.near_misses.extend([format!("{t}x"), t[..t.len() - 1].to_string(), t.to_uppercase(), format!("{t}\tx")]);
    for (k, (name, h, want)) in bearer_cases.into_iter().enumerate() {
        let mut c = case(name, http_req("GET", "/api/datasets", &[("Authorization", h)], b""), want);
        c.from = Some(format!("127.0.1.{}", k + 1).parse().unwrap());
        auth_cases.push(c);
    }
    let mut nul = case(
        "Bearer token + NUL (refused by the HTTP parser)",
        [
            format!("GET /api/datasets HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {t}")
                .as_bytes(),
            b"\x00\r\n\r\n",
        ]
        .concat(),
        Want::Status(&[400]),
    );
    nul.from = Some("127.0.1.50".parse().unwrap());
    auth_cases.push(nul);
    // Tokens in the query string are not credentials (and must not be logged: see the scan).
    for (path, want) in [
        (format!("/api/datasets?token={t}"), Want::Error(&[401])),
        (format!("/api/datasets?access_token={t}"), Want::Error(&[401])),
        (format!("/?token={t}"), Want::Status(&[303])),
    ] {
        auth_cases.push(case(
            format!("token in the query string: {}", path.split('?').next().unwrap()),
            http_req("GET", &path, &[], b""),
            want,
        ));
    }
    log.failures.extend(run_cases("dashboard auth corpus (dashboard1)", d1_addr, auth_cases).await);
    // The same query-string and near-miss probes against the debug-level dashboard.
    let t2 = DASH2_TOKEN;
    log.near_misses.push(format!("{t2}x"));
    let mut debug_cases = vec![
        case(
            "token in the query string (debug dashboard)",
            http_req("GET", &format!("/api/datasets?token={t2}"), &[], b""),
            Want::Error(&[401]),
        ),
        case(
            "form login with the token in the query string",
            http_req(
                "POST",
                &format!("/login?token={t2}"),
                &[("Content-Type", "application/x-www-form-urlencoded".into())],
                b"x=1",
            ),
            E400,
        ),
        case(
            "cookie from dashboard1 (another deployment)",
            http_req("GET", "/api/datasets", &[("Cookie", format!("quiver_session={c1}"))], b""),
            Want::Error(&[401]),
        ),
    ];
    let mut wrong = case(
        "Bearer token + x (debug dashboard)",
        http_req("GET", "/api/datasets", &[("Authorization", format!("Bearer {t2}x"))], b""),
        Want::Error(&[401]),
    );
    wrong.from = Some("127.0.2.1".parse().unwrap());
    debug_cases.push(wrong);
    log.failures.extend(run_cases("debug dashboard probes (dashboard2)", d2_addr, debug_cases).await);

    // Cross-deployment, expiry, logout replay, epoch.
    let (st, c2, _) = login(&http, d2, DASH2_TOKEN, None, issued).await;
    assert_eq!(st, 204);
    let c2 = c2.unwrap();
    let c2_fresh = get_with(&http, d2, &c2).await;
    let c2_on_d1 = get_with(&http, d1, &c2).await;
    println!("cookie of dashboard2 (another token) on dashboard1 → {c2_on_d1}; on dashboard2 → {c2_fresh}");
    assert_eq!((c2_fresh, c2_on_d1), (200, 401), "a cookie works only where its token is");
    let c2_issued = Instant::now();
    log.forged.extend(forged.iter().map(|(n, c)| (n.to_string(), c.clone())));
    log.c2 = Some((c2, c2_issued));
}

/// Logout is stateless; a bumped `--session-epoch` revokes earlier sessions.
async fn logout_and_session_epoch(fx: &Fixture) {
    let http = http_client(None);
    let Fixture { ref d1, ref issued, .. } = *fx;
    // Logout: stateless. The answer clears the cookie; a copy stays valid until it expires.
    let (st, c_logout, _) = login(&http, d1, DASH_TOKEN, None, issued).await;
    assert_eq!(st, 204);
    let c_logout = c_logout.unwrap();
    let resp =
        http.post(format!("{d1}/logout")).header("Cookie", format!("quiver_session={c_logout}")).send().await.unwrap();
    let clear = resp.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    println!("POST /logout → {} Set-Cookie: {clear}", resp.status().as_u16());
    assert_eq!(resp.status().as_u16(), 303);
    assert!(clear.starts_with("quiver_session=;") && clear.contains("Max-Age=0"), "logout clears the cookie: {clear}");
    let replay = get_with(&http, d1, &c_logout).await;
    println!(
        "a copy of the logged-out cookie replayed on dashboard1 → {replay} (logout is stateless: copies stay valid until they expire)"
    );
    assert_eq!(replay, 200, "documented: logout does not revoke copies");
    // The revocation that exists: a replica with a bumped --session-epoch (a restart with a new value).
    let d3_addr = free_addr();
    let d3 = format!("http://{d3_addr}");
    let mut d3_proc = Proc::start(
        &fx.logs,
        "dashboard1-epoch1",
        &fx.bin.join("quiver-dashboard"),
        &fx.dash_args(d3_addr, &["--session-epoch", "1"]),
        &[("QUIVER_DASHBOARD_TOKEN", DASH_TOKEN), ("QUIVER_WORKER_TOKEN", WORKER_TOKEN)],
    );
    wait_for("dashboard with epoch 1 up", Duration::from_secs(30), async || {
        http.get(format!("{d3}/healthz")).send().await.is_ok()
    })
    .await;
    let replay_epoch = get_with(&http, &d3, &c_logout).await;
    let (st3, c3, _) = login(&http, &d3, DASH_TOKEN, None, issued).await;
    let c3_ok = get_with(&http, &d3, c3.as_deref().unwrap_or("")).await;
    let c3_on_d1 = get_with(&http, d1, c3.as_deref().unwrap_or("")).await;
    println!(
        "same token, --session-epoch 1: the replayed cookie → {replay_epoch}; a fresh login → {st3}, its cookie → {c3_ok} there and {c3_on_d1} on the epoch-0 dashboard"
    );
    assert_eq!(
        (replay_epoch, st3, c3_ok, c3_on_d1),
        (401, 204, 200, 401),
        "bumping the epoch revokes every earlier session"
    );
    d3_proc.stop();
}

/// 200 slow connections against dashboard1 and the connection cap of dashboard2, while a normal client queries.
async fn slowloris_and_connection_cap(fx: &Fixture) {
    let http = http_client(None);
    let Fixture { d1_addr, d2_addr, ref d1, ref d2, ref c1, ref d1_auth, ref before1, .. } = *fx;
    println!("\n== slowloris against dashboard1 (header and body limits {READ_TIMEOUT_SECS} s)");
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Slow {
        Headers,
        Body,
        Idle,
    }
    let slow_started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..200usize {
        let kind = match i % 5 {
            0 | 1 => Slow::Headers,
            2 | 3 => Slow::Body,
            _ => Slow::Idle,
        };
        let cookie = c1.clone();
        slow.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut s = match TcpStream::connect(d1_addr).await {
                Ok(s) => s,
                Err(e) => return (kind, None, format!("connect: {e}")),
            };
            let head = match kind {
                Slow::Headers => "POST /api/query HTTP/1.1\r\nHost: x\r\n".to_string(),
                Slow::Body => format!(
                    "POST /api/query HTTP/1.1\r\nHost: x\r\nCookie: quiver_session={cookie}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                ),
                Slow::Idle => String::new(),
            };
            if s.write_all(head.as_bytes()).await.is_err() {
                return (kind, Some(t.elapsed()), "closed at once".into());
            }
            let drip: &[u8] = if kind == Slow::Headers { b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" } else { b"{\"dataset\":\"towers\",                          " };
            let mut k = 0;
            let mut buf = vec![0u8; 4096];
            let mut answer = Vec::new();
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => {
                            let r = parse_reply(&answer, None);
                            let what = if r.failure.is_some() { "closed without an answer".to_string() } else { r.summary() };
                            return (kind, Some(t.elapsed()), what);
                        }
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    },
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {
                        if t.elapsed() > Duration::from_secs(60) {
                            return (kind, None, "still open after 60 s".into());
                        }
                        if kind != Slow::Idle && s.write_all(&drip[k % drip.len()..k % drip.len() + 1]).await.is_err() {
                            return (kind, Some(t.elapsed()), "write failed: closed".into());
                        }
                        k += 1;
                    }
                }
            }
        }));
    }
    // The connection cap, on dashboard2 (--max-connections 50): 60 idle connections.
    let cap_task = tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..60 {
            conns.push(TcpStream::connect(d2_addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut closed_at_once = 0;
        for c in &mut conns {
            let mut b = [0u8; 1];
            if let Ok(Ok(0)) | Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(20), c.read(&mut b)).await {
                closed_at_once += 1;
            }
        }
        closed_at_once
    });
    // A normal client meanwhile.
    let mut latencies = Vec::new();
    let mut good_failures = 0;
    while slow.iter().any(|h| !h.is_finished()) && slow_started.elapsed() < Duration::from_secs(70) {
        let (st, counts, took) = query_counts(&http, d1, d1_auth).await;
        if st != 200 || counts != *before1 {
            good_failures += 1;
        }
        latencies.push(took);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut cut: BTreeMap<String, (usize, Duration, Vec<String>)> = BTreeMap::new();
    let mut never_cut = 0;
    for h in slow {
        let (kind, when, what) = h.await.unwrap();
        match when {
            Some(d) => {
                let e = cut.entry(format!("{kind:?}")).or_insert((0, Duration::ZERO, Vec::new()));
                e.0 += 1;
                e.1 = e.1.max(d);
                let w = first(&what, 60);
                if !e.2.contains(&w) {
                    e.2.push(w);
                }
            }
            None => never_cut += 1,
        }
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap();
    for (kind, (n, worst, answers)) in &cut {
        println!(
            "{n} {kind} connections cut by the server, the last after {:.1} s; they got: {}",
            worst.as_secs_f64(),
            answers.join(" | ")
        );
    }
    println!(
        "good client during the attack: {} queries, {good_failures} failed, latency p50 {:.0} ms, max {:.0} ms",
        latencies.len(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    let closed_at_once = cap_task.await.unwrap();
    println!("dashboard2 with --max-connections 50: of 60 idle connections, {closed_at_once} were closed at once");
    assert_eq!(never_cut, 0, "every slow connection is cut");
    let bound = Duration::from_secs(READ_TIMEOUT_SECS * 2 + 3);
    assert!(cut.values().all(|(_, worst, _)| *worst <= bound), "slow connections are cut within {bound:?}");
    assert!(cut.get("Body").is_some_and(|(_, _, a)| a.iter().all(|s| s.starts_with("408"))), "slow bodies get 408");
    assert_eq!(good_failures, 0, "the normal client is served during the attack");
    assert!(max < Duration::from_secs(3), "the normal client is served promptly during the attack");
    assert!(closed_at_once >= 10, "connections over the cap are closed at once");
    // The cap frees up once the idle ones are cut.
    wait_for("dashboard2 answers again after the cap test", Duration::from_secs(READ_TIMEOUT_SECS * 3), async || {
        http.get(format!("{d2}/healthz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

/// dashboard2's 3 s session has expired by now.
async fn session_expiry(fx: &Fixture, log: &mut Findings) {
    let http = http_client(None);
    let Fixture { ref d2, .. } = *fx;
    let (c2, c2_issued) = log.c2.clone().expect("the auth section logged in on dashboard2");
    let waited = c2_issued.elapsed();
    if waited < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_secs(4) - waited).await;
    }
    let expired = get_with(&http, d2, &c2).await;
    println!("dashboard2 cookie (--session-ttl 3s) after {:.1} s → {expired}", c2_issued.elapsed().as_secs_f64());
    assert_eq!(expired, 401, "expired cookies are refused");
}

/// Wrong tokens until the login rate limit answers 429, with and without a trusted proxy.
async fn brute_force(fx: &Fixture, log: &mut Findings) {
    let http = http_client(None);
    let Fixture { ref d1, ref d2, ref c1, ref issued, .. } = *fx;
    println!("\n== token brute force");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..50 {
        // A rotating X-Forwarded-For must not help: dashboard1 does not trust it.
        let guess = format!("guess-{i:02}-{}", &DASH_TOKEN[..8]);
        log.near_misses.push(guess.clone());
        let (st, _, ra) = login(&http, d1, &guess, Some(&format!("10.9.{i}.1")), issued).await;
        statuses.push(st);
        if st == 429 && retry_after.is_none() {
            retry_after = ra;
        }
    }
    let first_429 = statuses.iter().position(|s| *s == 429);
    let n401 = statuses.iter().filter(|s| **s == 401).count();
    let n429 = statuses.iter().filter(|s| **s == 429).count();
    println!(
        "50 wrong tokens from 127.0.0.1 with rotating X-Forwarded-For: {n401} × 401, then {n429} × 429 (first at #{}) Retry-After: {:?}",
        first_429.map_or(0, |i| i + 1),
        retry_after
    );
    assert_eq!(n401, quiver_dashboard::state::LOGIN_BURST as usize, "the burst is allowed, then refused");
    assert!(statuses[n401..].iter().all(|s| *s == 429), "all later attempts are 429");
    assert!(
        retry_after.as_deref().and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1),
        "429 carries Retry-After"
    );
    let (right_blocked, _, _) = login(&http, d1, DASH_TOKEN, None, issued).await;
    let bearer_blocked =
        http.get(format!("{d1}/api/datasets")).bearer_auth(DASH_TOKEN).send().await.unwrap().status().as_u16();
    let cookie_during = get_with(&http, d1, c1).await;
    let other_ip = http_client(Some("127.0.0.2".parse().unwrap()));
    let (other_st, _, _) = login(&other_ip, d1, DASH_TOKEN, None, issued).await;
    println!(
        "while blocked: right token from 127.0.0.1 → {right_blocked}, right Bearer → {bearer_blocked}; an existing session cookie → {cookie_during}; right token from 127.0.0.2 → {other_st}"
    );
    assert_eq!((right_blocked, bearer_blocked, cookie_during, other_st), (429, 429, 200, 204));
    // With --trust-proxy (dashboard2): the client is the last X-Forwarded-For entry.
    let mut s2 = Vec::new();
    for i in 0..10 {
        let guess = format!("proxy-guess-{i}-{}", &DASH2_TOKEN[..8]);
        log.near_misses.push(guess.clone());
        s2.push(login(&http, d2, &guess, Some("203.0.113.9"), issued).await.0);
    }
    let (blocked_xff, _, _) = login(&http, d2, DASH2_TOKEN, Some("203.0.113.9"), issued).await;
    let (other_xff, _, _) = login(&http, d2, DASH2_TOKEN, Some("198.51.100.7"), issued).await;
    let (spoof_first, _, _) = login(&http, d2, DASH2_TOKEN, Some("198.51.100.8, 203.0.113.9"), issued).await;
    println!(
        "dashboard2 (--trust-proxy): 10 wrong tokens as 203.0.113.9 → {s2:?}; right token as 203.0.113.9 → {blocked_xff}, as 198.51.100.7 → {other_xff}, with a forged first entry before 203.0.113.9 → {spoof_first}"
    );
    assert_eq!((blocked_xff, other_xff, spoof_first), (429, 204, 429));
}

/// Every server still answers with the same totals; then all stop.
async fn after_everything(fx: &mut Fixture) {
    let http = http_client(None);
    let Fixture {
        ref d1,
        ref d2,
        ref d1_auth,
        ref d2_auth,
        ref flight_urls,
        ref worker_http,
        ref before1,
        ref before2,
        ref pids,
        ref rss_before,
        ref mut procs,
        ..
    } = *fx;
    println!("\n== after the attacks");
    assert_eq!(worker_total(flight_urls).await, ROWS, "workers answer with every row");
    let (s1, after1, _) = query_counts(&http, d1, d1_auth).await;
    let (s2b, after2, _) = query_counts(&http, d2, d2_auth).await;
    assert_eq!((s1, s2b), (200, 200));
    assert_eq!(&after1, before1, "dashboard1 gives the same counts as before");
    assert_eq!(&after2, before2, "dashboard2 gives the same counts as before");
    for base in [d1, d2, &worker_http[0], &worker_http[1]] {
        let st = http.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16();
        assert_eq!(st, 200, "{base}/healthz");
    }
    println!("same totals ({ROWS} rows) and histograms as before on both dashboards; /healthz 200 everywhere");
    for (i, (name, pid)) in pids.iter().enumerate() {
        println!("RSS {name:<18} before {:>7.1} MB, after {:>7.1} MB", rss_before[i], rss_mb(*pid));
    }
    for p in procs.iter_mut() {
        assert!(p.alive(), "{} is still running", p.name);
    }
    for p in procs.iter_mut() {
        p.stop();
    }
}

/// No token, cookie or near-miss appears in any log line.
async fn secrets_in_logs(fx: &Fixture, log: &Findings) {
    let Fixture { ref issued, ref logs, .. } = *fx;
    let mut secrets: Vec<(String, String)> = vec![
        ("dashboard token".into(), DASH_TOKEN.into()),
        ("other dashboard token".into(), DASH2_TOKEN.into()),
        ("worker token".into(), WORKER_TOKEN.into()),
    ];
    for c in issued.lock().unwrap().iter() {
        secrets.push(("issued cookie".into(), c.clone()));
        if let Some(mac) = c.rsplit('.').next() {
            secrets.push(("issued cookie MAC".into(), mac.to_string()));
        }
    }
    for (name, c) in &log.forged {
        if c.len() >= 20 {
            secrets.push((format!("forged cookie ({name})"), c.clone()));
        }
    }
    for n in &log.near_misses {
        secrets.push(("near-miss token".into(), n.clone()));
    }
    let mut lines = 0usize;
    let mut per_file = Vec::new();
    let mut leaks = Vec::new();
    for entry in std::fs::read_dir(logs).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        let n = text.lines().count();
        lines += n;
        per_file.push(format!("{} {n}", path.file_name().unwrap().to_string_lossy()));
        for (i, line) in text.lines().enumerate() {
            for (what, s) in &secrets {
                if line.contains(s.as_str()) {
                    leaks.push(format!("{}:{}: {what}: {}", path.display(), i + 1, first(line, 200)));
                }
            }
        }
    }
    per_file.sort();
    println!(
        "\n== secrets in logs: {} secrets ({} cookies issued) searched in {lines} log lines ({})",
        secrets.len(),
        issued.lock().unwrap().len(),
        per_file.join(", ")
    );
    for l in &leaks {
        println!("LEAK {l}");
    }
    assert!(lines > 100, "the logs hold something to scan (debug processes included)");
}

/// The panic message of a failed section.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs one section: a failed assertion in it is recorded under its name and
/// the next sections still run; cases that did not hold are named too.
macro_rules! section {
    ($log:ident, $name:literal, $call:expr) => {{
        println!("\n==== section: {}", $name);
        let before = $log.failures.len();
        let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe($call)).await;
        if let Err(p) = r {
            $log.failures.push(format!("assertion failed: {}", panic_message(&*p)));
        }
        for f in &mut $log.failures[before..] {
            *f = format!("[{}] {f}", $name);
        }
    }};
}

// ---------------------------------------------------------------- the test

/// The sections run in this order on one fixture: later ones rely on what
/// earlier ones leave (issued cookies, a session old enough to expire, the
/// login rate limit's state, logs to scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_input_and_auth_attacks_are_refused_and_the_servers_hold() {
    let mut fx = start().await;
    let mut log = Findings::default();
    section!(log, "dashboard HTTP corpus", dashboard_http_corpus(&fx, &mut log));
    section!(log, "worker Flight corpus", worker_flight_corpus(&fx, &mut log));
    section!(log, "raw TCP on the Flight port", raw_tcp_on_the_flight_port(&fx));
    section!(log, "auth attacks", auth_attacks(&fx, &mut log));
    section!(log, "logout and session epoch", logout_and_session_epoch(&fx));
    section!(log, "slowloris and connection cap", slowloris_and_connection_cap(&fx));
    section!(log, "session expiry", session_expiry(&fx, &mut log));
    section!(log, "brute force", brute_force(&fx, &mut log));
    section!(log, "after everything", after_everything(&mut fx));
    section!(log, "secrets in logs", secrets_in_logs(&fx, &log));
    println!("\nhostile test took {:.1} s", fx.started.elapsed().as_secs_f64());
    assert!(log.failures.is_empty(), "cases that did not hold:\n{}", log.failures.join("\n"));
}
