//! Running a worker: shared state, loading, the Flight and HTTP listeners.
//!
//! [`serve`] takes bound listeners and a shutdown future, so tests and the
//! demo run workers in-process on 127.0.0.1:0; [`spawn`] does that for them.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_flight::flight_service_server::FlightServiceServer;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::flight::auth::BearerAuth;
use crate::flight::service::Service;
use crate::metrics::{DatasetLabel, Metrics};
use crate::protocol::WorkerStats;
use crate::source::{self, LoadOptions, ShardId};
use crate::spec::DatasetSpec;
use crate::store::{Registry, Slot};

/// A validated worker configuration.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Datasets to hold.
    pub datasets: Vec<DatasetSpec>,
    /// This worker's shard.
    pub shard: ShardId,
    /// Bearer token every Flight call must carry.
    pub token: Option<String>,
    /// Loading options (S3 defaults, memory limit).
    pub load: LoadOptions,
    /// Bytes of recent answers kept for identical queries (0: none kept).
    pub result_cache_bytes: usize,
}

impl WorkerConfig {
    /// Checks names are unique and each spec is valid.
    pub fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for d in &self.datasets {
            d.validate()?;
            if !seen.insert(d.name.as_str()) {
                return Err(Error::InvalidSpec(format!("dataset {:?} is declared twice", d.name)));
            }
        }
        Ok(())
    }
}

/// What every request handler shares.
pub struct WorkerState {
    /// Datasets.
    pub registry: Registry,
    /// This worker's shard.
    pub shard: ShardId,
    /// Loading options.
    pub load: LoadOptions,
    /// Metrics.
    pub metrics: Metrics,
    /// Admission to the kernels: one large scan already uses every core
    /// (rayon), so more at once only add scratch memory (a raster and
    /// histograms each) and allocator arenas. Scans beyond this wait their
    /// turn, and a caller that gives up (deadline) leaves the queue.
    pub scans: tokio::sync::Semaphore,
    /// Admission of small scans (a zoomed viewport, under
    /// [`crate::kernel::SMALL_SCAN_ROWS`] rows): a queue of their own, so a
    /// city zoom never waits behind whole-world scans.
    pub small_scans: tokio::sync::Semaphore,
    /// Recent answers, and identical queries in flight computed once.
    pub results: crate::cache::ResultCache,
    queries: AtomicU64,
    last_query: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState").field("shard", &self.shard).finish_non_exhaustive()
    }
}

impl WorkerState {
    /// State for a configuration; nothing is loaded yet.
    pub fn new(cfg: &WorkerConfig) -> WorkerState {
        WorkerState {
            registry: Registry::new(cfg.datasets.clone()),
            shard: cfg.shard,
            load: cfg.load.clone(),
            metrics: Metrics::new(),
            // Two, so one scan's merge and encoding overlap the next scan.
            scans: tokio::sync::Semaphore::new(rayon::current_num_threads().max(2)),
            small_scans: tokio::sync::Semaphore::new(4 * rayon::current_num_threads().max(2)),
            results: crate::cache::ResultCache::new(cfg.result_cache_bytes),
            queries: AtomicU64::new(0),
            last_query: Mutex::new(None),
            started_at: chrono::Utc::now(),
        }
    }

    /// Records a query for the idle signal.
    pub fn note_query(&self, dataset: &str) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        *self.last_query.lock().expect("lock") = Some(chrono::Utc::now());
        self.metrics.queries.get_or_create(&DatasetLabel { dataset: dataset.to_string() }).inc();
    }

    /// The `stats` answer.
    pub fn stats(&self) -> WorkerStats {
        let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        WorkerStats {
            shard: self.shard.index,
            shards: self.shard.count,
            version: env!("CARGO_PKG_VERSION").to_string(),
            queries: self.queries.load(Ordering::Relaxed),
            last_query_time: self.last_query.lock().expect("lock").map(rfc),
            started_at: rfc(self.started_at),
            datasets: self.registry.slots().map(|s| s.stats()).collect(),
        }
    }

    /// Starts loading a slot in the background unless a load is running.
    /// Returns false when one was already running.
    pub fn start_load(self: &Arc<Self>, slot: Arc<Slot>) -> bool {
        if !slot.begin_load() {
            return false;
        }
        let state = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let label = DatasetLabel { dataset: slot.spec.name.clone() };
            // A panic anywhere in the load must still end it, or the slot
            // would report "loading" forever and refuse every later reload.
            let result = match AssertUnwindSafe(source::load(&slot.spec, state.shard, &state.load)).catch_unwind().await
            {
                Ok(r) => r,
                Err(payload) => {
                    let why = source::panic_message(payload.as_ref());
                    Err(Error::Protocol(format!("the load of {} failed unexpectedly: {why}", slot.spec.name)))
                }
            };
            let secs = started.elapsed().as_secs_f64();
            match result {
                Ok(data) => {
                    state.metrics.rows.get_or_create(&label).set(data.rows() as i64);
                    state.metrics.bytes.get_or_create(&label).set(data.bytes() as i64);
                    state.metrics.load_millis.get_or_create(&label).set((secs * 1000.0) as i64);
                    slot.finish_load(Ok((Arc::new(data), secs)));
                }
                Err(e) => {
                    tracing::error!(dataset = %slot.spec.name, error = %e, "load failed");
                    state.metrics.load_failures.get_or_create(&label).inc();
                    state.metrics.error(&e);
                    slot.finish_load(Err(e.to_string()));
                }
            }
            crate::source::return_freed_memory();
        });
        true
    }

    /// Starts loading every dataset.
    pub fn load_all(self: &Arc<Self>) {
        let slots: Vec<_> = self.registry.slots().cloned().collect();
        for s in slots {
            self.start_load(s);
        }
    }
}

/// Serves Flight and HTTP on the given listeners until `shutdown` resolves.
/// Starts loading every dataset at once.
pub async fn serve(
    cfg: WorkerConfig,
    flight: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    cfg.validate()?;
    let state = Arc::new(WorkerState::new(&cfg));
    state.load_all();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    tracing::info!(
        flight = %flight.local_addr()?, http = %http.local_addr()?,
        shard = cfg.shard.index, shards = cfg.shard.count, datasets = cfg.datasets.len(),
        auth = cfg.token.is_some(), "worker listening"
    );
    let svc = FlightServiceServer::new(Service::new(state.clone()))
        .max_decoding_message_size(1 << 20)
        .max_encoding_message_size(256 << 20);
    let grpc = tonic::service::interceptor::InterceptedService::new(svc, BearerAuth::new(cfg.token.clone()));
    let flight_task = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        // A connection that never completes the HTTP/2 preface has no other time limit:
        // every connection is asked to go away after 10 minutes (clients reconnect) and
        // cut 30 s later, so idle or half-open sockets cannot pile up.
        .max_connection_age(std::time::Duration::from_secs(600))
        .max_connection_age_grace(std::time::Duration::from_secs(30))
        .add_service(grpc)
        // `Server::tcp_nodelay` applies only to listeners tonic binds itself:
        // accepted sockets get TCP_NODELAY here, or every answer waits on
        // Nagle's algorithm and the client's delayed ACK (about 40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(flight)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60))),
            wait(rx.clone()),
        );
    let http = axum::serve::ListenerExt::tap_io(http, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let http_task = axum::serve(http, crate::health::router(state.clone())).with_graceful_shutdown(wait(rx.clone()));
    let (f, h) = tokio::join!(flight_task, http_task);
    f.map_err(|e| Error::Io(std::io::Error::other(format!("flight server: {e}"))))?;
    h?;
    tracing::info!("worker stopped");
    Ok(())
}

/// A worker running in this process.
#[derive(Debug)]
pub struct RunningWorker {
    flight: SocketAddr,
    http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningWorker {
    /// `http://127.0.0.1:PORT` of the Flight endpoint.
    pub fn flight_url(&self) -> String {
        format!("http://{}", self.flight)
    }
    /// `http://127.0.0.1:PORT` of the HTTP side port.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }
    /// Flight socket address.
    pub fn flight_addr(&self) -> SocketAddr {
        self.flight
    }
    /// Stops the worker and waits for it.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
    }
    /// Stops accepting connections at once, without a graceful shutdown.
    /// Connections already open keep being served by their own tasks (tonic
    /// spawns them); to cut those too, put a proxy in front, as the
    /// dashboard's fault tests do, or run the worker as a process and kill it.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Starts a worker on 127.0.0.1 with ephemeral ports.
pub async fn spawn(cfg: WorkerConfig) -> Result<RunningWorker> {
    spawn_on(cfg, "127.0.0.1:0".parse().expect("addr"), "127.0.0.1:0".parse().expect("addr")).await
}

/// Starts a worker on the given addresses (port 0 picks one).
pub async fn spawn_on(cfg: WorkerConfig, flight: SocketAddr, http: SocketAddr) -> Result<RunningWorker> {
    cfg.validate()?;
    let fl = TcpListener::bind(flight).await?;
    let hl = TcpListener::bind(http).await?;
    let (flight, http) = (fl.local_addr()?, hl.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(cfg, fl, hl, async move {
        let _ = rx.await;
    }));
    Ok(RunningWorker { flight, http, stop: Some(tx), task })
}

/// Resolves on Ctrl-C or SIGTERM (the binaries' shutdown signal). If the
/// SIGTERM handler cannot be installed, only Ctrl-C ends the wait.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
