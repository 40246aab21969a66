//! `quiver-dashboard bench`: end-to-end latency of `/api/query` (HTTP → fan-out
//! → merge → PNG) for three typical interactions at several concurrencies,
//! against a running dashboard or a stack started in this process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::parse_duration;
use crate::error::{Error, Result};
use crate::tools::demo::{Stack, StackOptions, random_token};

/// Flags of `quiver-dashboard bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// A running dashboard, e.g. `http://127.0.0.1:8050` (plain HTTP). Without it,
    /// the benchmark starts workers and a dashboard in this process.
    #[arg(long)]
    pub url: Option<String>,
    /// The dashboard token (with `--url`).
    #[arg(long, env = "QUIVER_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Cell towers in the self-hosted stack.
    #[arg(long, default_value_t = 2_000_000)]
    pub rows: u64,
    /// Workers in the self-hosted stack.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Data directory of the self-hosted stack (default `./quiver-data/bench-<rows>`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub clients: Vec<usize>,
    /// How long each (interaction, clients) cell runs.
    #[arg(long, default_value = "5s")]
    pub duration: String,
    /// Dataset to query.
    #[arg(long, default_value = "celltowers")]
    pub dataset: String,
    /// Image width.
    #[arg(long, default_value_t = 800)]
    pub width: u32,
    /// Image height.
    #[arg(long, default_value_t = 500)]
    pub height: u32,
    /// Only measure merging, shading and PNG encoding of a synthetic raster (no servers).
    #[arg(long)]
    pub shade_only: bool,
    /// Only these interactions, by name (e.g. `--only "realistic mix"`); all when empty.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Times of the dashboard's CPU work on one image, milliseconds (median of runs).
#[derive(Clone, Debug)]
pub struct ShadeTimes {
    /// Non-empty pixels.
    pub pixels: usize,
    /// Merging two shards' sparse rasters.
    pub merge_ms: f64,
    /// Colour mixing, equalisation, spreading.
    pub shade_ms: f64,
    /// PNG encoding.
    pub png_ms: f64,
    /// PNG size, bytes.
    pub png_bytes: usize,
}

/// A synthetic shard raster: `fill` of the pixels non-empty, clustered in blobs,
/// with heavy-tailed counts over `categories` categories.
pub fn synthetic_raster(
    width: u32,
    height: u32,
    categories: usize,
    fill: f64,
    seed: u64,
) -> quiver_worker::protocol::Raster {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut pixels = Vec::new();
    let mut counts = Vec::new();
    for p in 0..width * height {
        let (x, y) = ((p % width) as f64 / width as f64, (p / width) as f64 / height as f64);
        // Smooth "continents" so the non-empty pixels cluster like real data.
        let density = ((x * 17.0).sin() * (y * 11.0).cos() + 1.0) / 2.0;
        if (next() % 10_000) as f64 / 10_000.0 < fill * 2.0 * density {
            pixels.push(p);
            for c in 0..categories {
                let r = next();
                counts.push(if (r >> 8) % 3 == 0 || c == 0 { (1u32 << (r % 12)) + (r >> 40) as u32 % 7 } else { 0 });
            }
        }
    }
    quiver_worker::protocol::Raster {
        width,
        height,
        categories: (0..categories).map(|c| format!("c{c}")).collect(),
        pixels,
        counts,
    }
}

/// Measures merge, shade and PNG on two synthetic shard rasters (median of `runs`).
pub fn shade_bench(width: u32, height: u32, runs: usize) -> Result<ShadeTimes> {
    let a = synthetic_raster(width, height, 6, 0.3, 1);
    let b = synthetic_raster(width, height, 6, 0.3, 2);
    let colors: Vec<[u8; 3]> = (0..6).map(|i| quiver_worker::bins::PALETTE[i]).collect();
    let opts = crate::shade::ShadeOptions::default();
    let (mut m, mut sh, mut pn) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pixels, mut bytes) = (0, 0);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let merged = crate::merge::merge_rasters(vec![&a, &b])?.expect("two rasters");
        m.push(t.elapsed());
        let t = Instant::now();
        let img = crate::shade::shade(&merged, &colors, &opts)?;
        sh.push(t.elapsed());
        let t = Instant::now();
        let png = crate::shade::encode_png(&img)?;
        pn.push(t.elapsed());
        pixels = merged.pixels.len();
        bytes = png.len();
    }
    let med = |mut v: Vec<Duration>| {
        v.sort_unstable();
        ms(quantile(&v, 0.5))
    };
    Ok(ShadeTimes { pixels, merge_ms: med(m), shade_ms: med(sh), png_ms: med(pn), png_bytes: bytes })
}

fn print_shade_times(width: u32, height: u32) -> Result<()> {
    let t = shade_bench(width, height, 21)?;
    println!(
        "shading {width}x{height} ({} non-empty pixels, 6 categories, 2 shards): merge {:.2} ms, shade {:.2} ms, png {:.2} ms ({} KB)",
        t.pixels,
        t.merge_ms,
        t.shade_ms,
        t.png_ms,
        t.png_bytes / 1024
    );
    Ok(())
}

/// One interaction: a name and its request body.
#[derive(Clone, Debug)]
pub struct Interaction {
    /// Short name.
    pub name: &'static str,
    /// `/api/query` body.
    pub body: Value,
    /// What distinct requests of the interaction differ in.
    pub vary: Vary,
}

/// How request `n` of an interaction differs from the others.
#[derive(Clone, Debug, PartialEq)]
pub enum Vary {
    /// The viewport's west edge moves by `n` × 10⁻⁹° (the same work).
    Viewport,
    /// A brush of `width` bins slides over dimension `dim` (bin lower edges
    /// `edges`), as while dragging, the viewport fixed; its upper end is
    /// nudged within its bin so repeated positions are distinct requests.
    Brush {
        /// The brushed dimension.
        dim: String,
        /// Its bins' lower edges.
        edges: Vec<f64>,
        /// Bins the brush spans.
        width: usize,
    },
}

/// The interactions, built from the dataset's dimensions: a world view with
/// three histograms and the image; a brush over the middle third of the
/// first temporal (else numeric) dimension; that brush dragged (positions
/// over the same view); a city-scale zoom filtered to one category; a
/// category click at world view.
pub fn interactions(dataset: &Value, width: u32, height: u32, city: (f64, f64)) -> Result<Vec<Interaction>> {
    let name = dataset["name"].as_str().unwrap_or_default();
    let dims = dataset["dimensions"].as_array().cloned().unwrap_or_default();
    let hist: Vec<Value> = dims.iter().take(3).map(|d| d["name"].clone()).collect();
    let world = json!({"west": -180.0, "south": -60.0, "east": 180.0, "north": 75.0});
    let image = json!({"width": width, "height": height});
    let brush_dim = dims
        .iter()
        .find(|d| d["kind"] == "temporal")
        .or_else(|| dims.iter().find(|d| d["kind"] != "categorical"))
        .ok_or_else(|| Error::Setup(format!("dataset {name} has no numeric dimension to brush")))?;
    let bins = brush_dim["bins"].as_array().cloned().unwrap_or_default();
    let (lo, hi) = match bins.len() {
        0 => return Err(Error::Setup("the brushed dimension has no bins".into())),
        n => (bins[n / 3]["lo"].as_f64(), bins[(2 * n / 3).max(n / 3 + 1).min(n - 1)]["lo"].as_f64()),
    };
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Err(Error::Setup("the brushed dimension has no bin edges".into()));
    };
    let edges: Vec<f64> = bins.iter().filter_map(|b| b["lo"].as_f64()).collect();
    let brush_name = brush_dim["name"].as_str().unwrap_or_default().to_string();
    let cat_name = dataset["category"].as_str().unwrap_or_default();
    let cat_dim = dims
        .iter()
        .find(|d| d["name"] == cat_name)
        .ok_or_else(|| Error::Setup(format!("dataset {name} lacks its category dimension")))?;
    let labels: Vec<&str> =
        cat_dim["bins"].as_array().into_iter().flatten().filter_map(|b| b["label"].as_str()).collect();
    let category = labels.iter().find(|l| **l == "LTE").or(labels.first()).copied().unwrap_or_default();
    let (lon, lat) = city;
    let sample = json!({"limit": 5000, "allOrNone": true});
    Ok(vec![
        // A first view, as the front end asks it: with the baseline. Every
        // interaction asks for the points when at most 5000 match (else none).
        Interaction {
            name: "world view",
            body: json!({"dataset": name, "viewport": world, "viewportFilter": true, "histograms": hist, "image": image,
                         "baseline": true, "sample": sample}),
            vary: Vary::Viewport,
        },
        Interaction {
            name: "time brush",
            body: json!({"dataset": name, "viewport": world, "viewportFilter": true, "histograms": hist, "image": image,
                         "sample": sample,
                         "filters": {brush_name.as_str(): {"range": {"min": lo, "max": hi}}}}),
            vary: Vary::Viewport,
        },
        // The same brush dragged: positions after the first over one view.
        Interaction {
            name: "brush drag",
            body: json!({"dataset": name, "viewport": world, "viewportFilter": true, "histograms": hist, "image": image,
                         "sample": sample,
                         "filters": {brush_name.as_str(): {"range": {"min": lo, "max": hi}}}}),
            vary: Vary::Brush { dim: brush_name.clone(), edges: edges.clone(), width: (edges.len() / 4).max(1) },
        },
        Interaction {
            name: "city zoom",
            body: json!({"dataset": name, "histograms": hist, "image": image, "viewportFilter": true,
                         "sample": sample,
                         "viewport": {"west": lon - 0.3, "south": lat - 0.18, "east": lon + 0.3, "north": lat + 0.18},
                         "filters": {cat_name: {"categories": [category]}}}),
            vary: Vary::Viewport,
        },
        Interaction {
            name: "category click",
            body: json!({"dataset": name, "viewport": world, "viewportFilter": true, "histograms": hist, "image": image,
                         "sample": sample, "filters": {cat_name: {"categories": [category]}}}),
            vary: Vary::Viewport,
        },
    ])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Timings {
    workers_ms: f64,
    kernel_ms: f64,
    shade_ms: f64,
}

#[derive(Deserialize)]
struct Answer {
    partial: bool,
    timings: Timings,
}

/// A keep-alive HTTP/1.1 connection to the dashboard.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    auth: String,
}

impl Client {
    async fn connect(addr: SocketAddr, host: &str, token: &str) -> Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| Error::Setup(format!("cannot connect to {addr}: {e}")))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Setup(format!("HTTP handshake with {addr}: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { sender, host: host.to_string(), auth: format!("Bearer {token}") })
    }

    async fn call(&mut self, method: &str, path: &str, body: Bytes) -> Result<(u16, Bytes)> {
        self.sender.ready().await.map_err(|e| Error::Setup(format!("connection lost: {e}")))?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let resp = self.sender.send_request(req).await.map_err(|e| Error::Setup(format!("request failed: {e}")))?;
        let status = resp.status().as_u16();
        let body =
            resp.into_body().collect().await.map_err(|e| Error::Setup(format!("reading the answer: {e}")))?.to_bytes();
        Ok((status, body))
    }
}

/// One cell of the table.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Latencies of successful requests.
    pub latencies: Vec<Duration>,
    /// Failed requests.
    pub errors: u64,
    /// Answers flagged partial.
    pub partial: u64,
    /// Sum of server-reported worker times, ms.
    pub workers_ms: f64,
    /// Sum of server-reported kernel times (the slowest worker's scan), ms.
    pub kernel_ms: f64,
    /// Sum of server-reported shading times, ms.
    pub shade_ms: f64,
    /// Wall time of the cell.
    pub wall: Duration,
}

/// The `q`-quantile (0..=1) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Prints one row of the table.
fn print_row(name: &str, clients: usize, c: &Cell) {
    let n = c.latencies.len().max(1) as f64;
    println!(
        "{:<18} {:>7} {:>8} {:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.1} {:>9.1} {:>8.1} {:>6} {:>7}",
        name,
        clients,
        c.latencies.len(),
        c.latencies.len() as f64 / c.wall.as_secs_f64(),
        ms(quantile(&c.latencies, 0.50)),
        ms(quantile(&c.latencies, 0.95)),
        ms(quantile(&c.latencies, 0.99)),
        ms(c.latencies.last().copied().unwrap_or_default()),
        c.workers_ms / n,
        c.kernel_ms / n,
        c.shade_ms / n,
        c.errors,
        c.partial,
    );
}

/// The body of request `n` of a cell: the interaction itself when
/// `identical`, else a distinct request no worker has answered before, as
/// [`Vary`] says.
fn nth_body(it: &Interaction, identical: bool, n: u64) -> Bytes {
    let mut b = it.body.clone();
    if !identical {
        match &it.vary {
            Vary::Viewport => {
                if let Some(w) = b["viewport"]["west"].as_f64() {
                    b["viewport"]["west"] = json!(w + n as f64 * 1e-9);
                }
            }
            Vary::Brush { dim, edges, width } if edges.len() > width + 1 => {
                let k = n as usize % (edges.len() - width - 1);
                let (lo, hi, next) = (edges[k], edges[k + width], edges[k + width + 1]);
                // Within the bin above `hi`: the same bins pass.
                let nudge = (next - hi) * 1e-9 * (n % 1_000_000) as f64;
                b["filters"][dim.as_str()] = json!({"range": {"min": lo, "max": hi + nudge}});
            }
            Vary::Brush { .. } => {}
        }
    }
    Bytes::from(serde_json::to_vec(&b).expect("json"))
}

/// A realistic session's share of each interaction (by name), as the users
/// of a crossfilter dashboard spend it: mostly dragging brushes and zooming,
/// now and then a category or a new world view.
pub const MIX: [(&str, usize); 5] =
    [("world view", 1), ("time brush", 1), ("brush drag", 6), ("city zoom", 2), ("category click", 1)];

/// The mix's name in the table and for `--only`.
pub const MIX_NAME: &str = "realistic mix";

/// The interactions of [`MIX`], each repeated by its share, interleaved (so
/// consecutive requests of one client differ).
pub fn mix(list: &[Interaction]) -> Vec<Interaction> {
    let mut left: Vec<(Interaction, usize)> =
        MIX.iter().filter_map(|&(name, share)| Some((list.iter().find(|i| i.name == name)?.clone(), share))).collect();
    let mut out = vec![];
    while left.iter().any(|(_, n)| *n > 0) {
        for (it, n) in left.iter_mut().filter(|(_, n)| *n > 0) {
            out.push(it.clone());
            *n -= 1;
        }
    }
    out
}

/// Runs `clients` connections for `duration`; request `n` is interaction
/// `n mod its.len()`.
#[allow(clippy::too_many_arguments)]
async fn run_cell(
    addr: SocketAddr,
    host: &str,
    token: &str,
    path: &str,
    its: &[Interaction],
    identical: bool,
    clients: usize,
    duration: Duration,
) -> Result<Cell> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Client::connect(addr, host, token).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let (its, path, counter) = (its.to_vec(), path.to_string(), counter.clone());
            tokio::spawn(async move {
                let mut cell = Cell::default();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let request = nth_body(&its[n as usize % its.len()], identical, n);
                    let t = Instant::now();
                    match c.call("POST", &path, request).await {
                        Ok((200, b)) => {
                            cell.latencies.push(t.elapsed());
                            if let Ok(a) = serde_json::from_slice::<Answer>(&b) {
                                cell.partial += u64::from(a.partial);
                                cell.workers_ms += a.timings.workers_ms;
                                cell.kernel_ms += a.timings.kernel_ms;
                                cell.shade_ms += a.timings.shade_ms;
                            }
                        }
                        Ok(_) => cell.errors += 1,
                        Err(_) => {
                            cell.errors += 1;
                            break;
                        }
                    }
                }
                cell
            })
        })
        .collect();
    let mut total = Cell::default();
    for t in tasks {
        let c = t.await.map_err(|e| Error::Internal(e.to_string()))?;
        total.latencies.extend(c.latencies);
        total.errors += c.errors;
        total.partial += c.partial;
        total.workers_ms += c.workers_ms;
        total.kernel_ms += c.kernel_ms;
        total.shade_ms += c.shade_ms;
    }
    total.wall = started.elapsed();
    total.latencies.sort_unstable();
    Ok(total)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints the table.
pub async fn run(a: BenchArgs) -> Result<()> {
    if a.shade_only {
        return print_shade_times(a.width, a.height);
    }
    let duration = parse_duration("duration", &a.duration)?;
    if a.clients.is_empty() || a.clients.iter().any(|&c| c == 0 || c > 1024) {
        return Err(Error::Config("--clients must list counts between 1 and 1024".into()));
    }
    let mut stack = None;
    let (base, token) = match &a.url {
        Some(u) => {
            let token = a
                .token
                .clone()
                .ok_or_else(|| Error::Config("--url needs --token (or QUIVER_DASHBOARD_TOKEN)".into()))?;
            (u.clone(), token)
        }
        None => {
            let data_dir =
                a.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("./quiver-data/bench-{}", a.rows)));
            eprintln!("starting {} workers over {} rows in {}", a.workers, a.rows, data_dir.display());
            let s = Stack::start(&StackOptions {
                data_dir,
                rows: a.rows,
                ais_rows: 0,
                workers: a.workers,
                addr: "127.0.0.1:0".parse().expect("address"),
                token: random_token(),
                tile_url: None,
                progress: true,
            })
            .await?;
            let t = Instant::now();
            s.wait_loaded(Duration::from_secs(900)).await?;
            eprintln!("loaded in {:.1} s", t.elapsed().as_secs_f64());
            let out = (s.url.clone(), s.token.clone());
            stack = Some(s);
            out
        }
    };
    let url = url::Url::parse(&base).map_err(|e| Error::Config(format!("--url {base:?}: {e}")))?;
    if url.scheme() != "http" {
        return Err(Error::Config(format!("--url {base:?}: only plain http:// is supported")));
    }
    let host = url.host_str().ok_or_else(|| Error::Config(format!("--url {base:?} has no host")))?.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| Error::Config(format!("--url {base:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("--url {base:?} does not resolve")))?;
    let host_header = format!("{host}:{port}");
    let prefix = url.path().trim_end_matches('/').to_string();
    let (api_datasets, api_query) = (format!("{prefix}/api/datasets"), format!("{prefix}/api/query"));

    let mut probe = Client::connect(addr, &host_header, &token).await?;
    let (status, body) = probe.call("GET", &api_datasets, Bytes::new()).await?;
    if status != 200 {
        return Err(Error::Setup(format!("GET /api/datasets answered {status}: {}", String::from_utf8_lossy(&body))));
    }
    let catalog: Value = serde_json::from_slice(&body).map_err(|e| Error::Setup(format!("/api/datasets: {e}")))?;
    let dataset = catalog["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == a.dataset.as_str())
        .cloned()
        .ok_or_else(|| Error::Setup(format!("the dashboard does not serve {:?}", a.dataset)))?;
    // Paris: the generator clusters towers around real cities.
    let list = interactions(&dataset, a.width, a.height, (2.35, 48.86))?;
    let names: Vec<&str> = list.iter().map(|i| i.name).chain([MIX_NAME]).collect();
    if let Some(unknown) = a.only.iter().find(|o| !names.contains(&o.as_str())) {
        return Err(Error::Config(format!("--only {unknown:?}: the interactions are {}", names.join(", "))));
    }
    let wanted = |name: &str| a.only.is_empty() || a.only.iter().any(|o| o == name);

    println!(
        "quiver-dashboard bench: {} · {} ({} rows) · {}x{} image · {} per cell",
        if a.url.is_some() { base.as_str() } else { "self-hosted" },
        a.dataset,
        dataset["rows"],
        a.width,
        a.height,
        humantime::format_duration(duration)
    );
    if a.url.is_none() {
        println!(
            "self-hosted: {} workers in this process; clients, dashboard and workers share the machine",
            a.workers
        );
    }
    print_shade_times(a.width, a.height)?;
    println!();
    println!(
        "{:<18} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>8} {:>6} {:>7}",
        "interaction",
        "clients",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "workers ms",
        "kernel ms",
        "shade ms",
        "errors",
        "partial"
    );
    for it in list.iter().filter(|it| wanted(it.name)) {
        let body = Bytes::from(serde_json::to_vec(&it.body).expect("json"));
        // Warm up (and check the request is accepted), on a connection of its
        // own: the dashboard closes a keep-alive connection left idle longer
        // than its header-read timeout, as the first probe is during the cells.
        let mut probe = Client::connect(addr, &host_header, &token).await?;
        for _ in 0..3 {
            let (status, b) = probe.call("POST", &api_query, body.clone()).await?;
            if status != 200 {
                return Err(Error::Setup(format!(
                    "{}: /api/query answered {status}: {}",
                    it.name,
                    String::from_utf8_lossy(&b)
                )));
            }
        }
        // Every request distinct, then (for the world view) all identical,
        // which workers compute once and keep: many users opening the same view.
        let variants: &[(bool, &str)] =
            if it.name == "world view" { &[(false, ""), (true, " (same)")] } else { &[(false, "")] };
        for (&clients, &(identical, suffix)) in a.clients.iter().flat_map(|c| variants.iter().map(move |v| (c, v))) {
            let c = run_cell(
                addr,
                &host_header,
                &token,
                &api_query,
                std::slice::from_ref(it),
                identical,
                clients,
                duration,
            )
            .await?;
            print_row(&format!("{}{suffix}", it.name), clients, &c);
        }
    }
    // Every client runs the realistic mix, each request distinct.
    let sessions = mix(&list);
    for &clients in a.clients.iter().filter(|_| wanted(MIX_NAME)) {
        let c = run_cell(addr, &host_header, &token, &api_query, &sessions, false, clients, duration).await?;
        print_row(MIX_NAME, clients, &c);
    }
    println!("(realistic mix: {})", MIX.iter().map(|(n, k)| format!("{k} {n}")).collect::<Vec<_>>().join(", "));
    if let Some(s) = stack {
        s.stop().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn interactions_follow_the_dataset() {
        let towers = crate::catalog::celltowers_for_tests(10);
        let v = serde_json::to_value(&towers.view).unwrap();
        let list = interactions(&v, 800, 500, (2.35, 48.86)).unwrap();
        assert_eq!(list.len(), 5);
        assert_eq!(list[0].body["histograms"], json!(["radio", "range", "created"]));
        // The first view as the front end asks it.
        assert_eq!(list[0].body["baseline"], json!(true));
        assert_eq!(list[0].body["sample"], json!({"limit": 5000, "allOrNone": true}));
        assert_eq!(list[4].body["filters"]["radio"]["categories"], json!(["LTE"]));
        assert!(list[4].body["viewport"]["west"].as_f64().unwrap() <= -179.0, "a category click at world view");
        let brush = &list[1].body["filters"]["created"]["range"];
        assert!(brush["min"].as_f64().unwrap() < brush["max"].as_f64().unwrap());
        assert_eq!(list[3].body["filters"]["radio"]["categories"], json!(["LTE"]));
        // Every body is a valid request for the dataset, nudged or not.
        for it in &list {
            let nudged: serde_json::Value = serde_json::from_slice(&nth_body(it, false, 7)).unwrap();
            assert_ne!(nudged, it.body, "{}: a distinct request", it.name);
            assert_eq!(nth_body(it, true, 7), Bytes::from(serde_json::to_vec(&it.body).unwrap()));
            for r in [it.body.clone(), nudged] {
                let r: crate::query::QueryRequest = serde_json::from_value(r).unwrap();
                crate::query::plan(&r, &towers).unwrap();
            }
        }
        // The drag keeps the view and slides a brush of whole bins.
        let drag = &list[2];
        let Vary::Brush { edges, width, .. } = &drag.vary else { panic!("a drag varies the brush") };
        let at = |n: u64| -> serde_json::Value { serde_json::from_slice(&nth_body(drag, false, n)).unwrap() };
        assert_eq!(at(1)["viewport"], drag.body["viewport"]);
        let (a, b) = (at(1)["filters"]["created"]["range"].clone(), at(2)["filters"]["created"]["range"].clone());
        assert_eq!(a["min"].as_f64().unwrap(), edges[1]);
        assert_eq!(b["min"].as_f64().unwrap(), edges[2]);
        let hi = a["max"].as_f64().unwrap();
        assert!(hi > edges[1 + width] && hi < edges[2 + width], "the upper end stays in its bin");
        // The realistic mix holds every interaction by its share, interleaved.
        let sessions = mix(&list);
        assert_eq!(sessions.len(), MIX.iter().map(|m| m.1).sum::<usize>());
        for (name, share) in MIX {
            assert_eq!(sessions.iter().filter(|i| i.name == name).count(), share, "{name}");
        }
        assert!(sessions.windows(2).take(4).all(|w| w[0].name != w[1].name), "interleaved");
    }
}
