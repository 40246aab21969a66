//! `quiver-dashboard demo`: the one-command local run. Generates the synthetic
//! datasets when the data directory lacks them, starts real Flight workers in
//! this process on 127.0.0.1, and serves the dashboard in front of them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::LoadState;
use quiver_worker::server::{RunningWorker, WorkerConfig};
use quiver_worker::source::{LoadOptions, ShardId};
use quiver_worker::spec::{DatasetSpec, Preset};
use quiver_worker::synth::{GenOptions, generate};

use crate::config::{Config, WorkerSource};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Flags of `quiver-dashboard demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where the datasets live (generated here when absent).
    #[arg(long, default_value = "./quiver-data")]
    pub data_dir: PathBuf,
    /// Cell towers to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// AIS positions to generate (0: no AIS dataset).
    #[arg(long, default_value_t = 3_000_000)]
    pub ais_rows: u64,
    /// Workers (shards) to start.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Address to serve the dashboard on.
    #[arg(long, default_value = "127.0.0.1:8050")]
    pub addr: SocketAddr,
    /// Login token (default: 32 random bytes, hex).
    #[arg(long, env = "QUIVER_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// XYZ tile URL template drawn under the data when the browser can reach it
    /// (default: OpenStreetMap's standard tiles); `none` turns online tiles off.
    #[arg(long, env = "QUIVER_TILE_URL")]
    pub tile_url: Option<String>,
}

/// What to run: data, workers, dashboard.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Cell towers.
    pub rows: u64,
    /// AIS positions (0: none).
    pub ais_rows: u64,
    /// Workers.
    pub workers: u32,
    /// Dashboard address (port 0 picks one).
    pub addr: SocketAddr,
    /// Login token.
    pub token: String,
    /// Tile URL template (`None`: online tiles off); its attribution is the known provider's.
    pub tile_url: Option<String>,
    /// Draw progress bars.
    pub progress: bool,
}

/// Written next to generated data; its presence means "complete, reuse it".
const MARKER: &str = "_quiver_demo.json";

/// A random login token: 32 bytes, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn setup(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("{what}: {e}"))
}

/// Makes sure `dir/<name>` holds the dataset: generated data with its marker, or
/// files the user put there (anything not named like the generator's `part-*`).
/// Returns the `file://` URL of the directory.
/// `min_files` files at least, so every shard gets a share of whole files.
pub async fn ensure_dataset(dir: &Path, preset: Preset, rows: u64, min_files: u32, progress: bool) -> Result<String> {
    let ddir = dir.join(preset.as_str());
    std::fs::create_dir_all(&ddir).map_err(|e| setup(&format!("cannot create {}", ddir.display()), e))?;
    let abs = ddir.canonicalize().map_err(|e| setup(&format!("cannot resolve {}", ddir.display()), e))?;
    let url = format!("file://{}/", abs.display());
    let marker = abs.join(MARKER);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let had: u64 =
            serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["rows"].as_u64()).unwrap_or(0);
        if had != rows {
            eprintln!(
                "  {}: using the {had} rows already in {} (delete it to generate {rows})",
                preset.as_str(),
                abs.display()
            );
        }
        return Ok(url);
    }
    let user_files = std::fs::read_dir(&abs)
        .map_err(|e| setup(&format!("cannot list {}", abs.display()), e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .any(|n| quiver_worker::spec::Format::from_path(&n).is_some() && !n.starts_with("part-"));
    if user_files {
        eprintln!("  {}: using the files in {}", preset.as_str(), abs.display());
        return Ok(url);
    }
    eprintln!("  {}: generating {rows} rows into {}", preset.as_str(), abs.display());
    let mut opts = GenOptions::new(preset, rows, url.clone());
    opts.files = opts.files.max(min_files).min(u32::try_from(rows).unwrap_or(u32::MAX)).max(1);
    let summary = generate(&opts, progress).await.map_err(|e| setup(&format!("generating {}", preset.as_str()), e))?;
    eprintln!(
        "  {}: {} rows in {} files, {:.1} MB, {:.1} s",
        preset.as_str(),
        summary.rows,
        summary.files.len(),
        summary.bytes as f64 / 1e6,
        summary.seconds
    );
    let m = serde_json::json!({ "rows": rows, "preset": preset.as_str(), "seed": 42 });
    std::fs::write(&marker, m.to_string()).map_err(|e| setup(&format!("cannot write {}", marker.display()), e))?;
    Ok(url)
}

/// Workers and a dashboard running in this process.
pub struct Stack {
    /// `http://ADDR` of the dashboard.
    pub url: String,
    /// Login token.
    pub token: String,
    /// The workers.
    pub workers: Vec<RunningWorker>,
    worker_token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<()>>,
}

impl Stack {
    /// Prepares the data, starts the workers (which begin loading) and the dashboard.
    pub async fn start(o: &StackOptions) -> Result<Stack> {
        if o.workers == 0 || o.workers > 64 {
            return Err(Error::Config(format!("--workers {} must be between 1 and 64", o.workers)));
        }
        let mut datasets = Vec::new();
        for (preset, rows) in [(Preset::Celltowers, o.rows), (Preset::Ais, o.ais_rows)] {
            if rows == 0 {
                continue;
            }
            let source = ensure_dataset(&o.data_dir, preset, rows, (2 * o.workers).max(4), o.progress).await?;
            datasets.push(DatasetSpec {
                name: preset.as_str().to_string(),
                source,
                preset: Some(preset),
                format: None,
                s3: None,
                view: None,
                details: None,
            });
        }
        if datasets.is_empty() {
            return Err(Error::Config("nothing to serve: --rows and --ais-rows are both 0".into()));
        }
        let worker_token = random_token();
        let mut workers = Vec::new();
        for i in 0..o.workers {
            let cfg = WorkerConfig {
                datasets: datasets.clone(),
                shard: ShardId::new(i, o.workers).map_err(|e| setup("shard", e))?,
                token: Some(worker_token.clone()),
                load: LoadOptions::default(),
                result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
            };
            workers.push(quiver_worker::server::spawn(cfg).await.map_err(|e| setup("starting a worker", e))?);
        }
        let config = Config {
            addr: o.addr,
            workers: WorkerSource::Static(workers.iter().map(|w| w.flight_url()).collect()),
            token: Secret::new(o.token.clone()),
            worker_token: Some(Secret::new(worker_token.clone())),
            cookie_secure: false,
            session_ttl: Duration::from_secs(12 * 3600),
            session_epoch: 0,
            worker_timeout: Duration::from_secs(10),
            hedge: Default::default(),
            tile_url: o.tile_url.clone(),
            tile_attribution: o.tile_url.as_deref().and_then(crate::config::default_tile_attribution),
            cluster: None,
            operator_url: None,
            dns_server: None,
            trust_proxy: false,
            export_row_limit: crate::config::DEFAULT_EXPORT_ROW_LIMIT,
            limits: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind(o.addr)
            .await
            .map_err(|e| setup(&format!("cannot listen on {}", o.addr), e))?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::run(config, listener, async move {
            let _ = rx.await;
        }));
        Ok(Stack { url, token: o.token.clone(), workers, worker_token, stop: Some(tx), server })
    }

    /// Waits until every worker has loaded every dataset; returns rows per dataset.
    pub async fn wait_loaded(&self, timeout: Duration) -> Result<Vec<(String, u64)>> {
        let deadline = Instant::now() + timeout;
        let mut clients = Vec::new();
        for w in &self.workers {
            clients.push(
                WorkerClient::connect(&w.flight_url(), Some(self.worker_token.clone()))
                    .await
                    .map_err(|e| setup("connecting to a worker", e))?,
            );
        }
        loop {
            let mut rows: std::collections::BTreeMap<String, u64> = Default::default();
            let mut ready = true;
            for c in &clients {
                match c.stats().await {
                    Ok(s) => {
                        for d in &s.datasets {
                            match d.state {
                                LoadState::Ready => *rows.entry(d.name.clone()).or_default() += d.rows,
                                LoadState::Loading => ready = false,
                                LoadState::Failed => {
                                    return Err(Error::Setup(format!(
                                        "dataset {} failed to load: {}",
                                        d.name,
                                        d.error.as_deref().unwrap_or("unknown error")
                                    )));
                                }
                            }
                        }
                    }
                    Err(_) => ready = false,
                }
            }
            if ready {
                return Ok(rows.into_iter().collect());
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!(
                    "workers did not load within {}",
                    humantime::format_duration(timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the dashboard, then the workers.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        for w in self.workers {
            let _ = w.shutdown().await;
        }
    }
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(a: DemoArgs, shutdown: impl Future<Output = ()>) -> Result<()> {
    let started = Instant::now();
    let token = a.token.clone().unwrap_or_else(random_token);
    eprintln!("Quiver demo: {} workers, data in {}", a.workers, a.data_dir.display());
    let stack = Stack::start(&StackOptions {
        data_dir: a.data_dir.clone(),
        rows: a.rows,
        ais_rows: a.ais_rows,
        workers: a.workers,
        addr: a.addr,
        token: token.clone(),
        tile_url: crate::config::tile_layer(a.tile_url.as_deref())?,
        progress: true,
    })
    .await?;
    eprintln!("  loading shards into memory…");
    let rows = stack.wait_loaded(Duration::from_secs(600)).await?;
    for (name, n) in &rows {
        eprintln!("  {name}: {n} rows in memory");
    }
    eprintln!("  ready in {:.1} s\n", started.elapsed().as_secs_f64());
    println!("Open   {}/login", stack.url);
    println!("Token  {token}");
    println!("(Ctrl-C stops the demo.)");
    shutdown.await;
    stack.stop().await;
    Ok(())
}
