//! What a worker's request handlers share: its configuration, its datasets
//! and their loading, counters. Below both servers ([`crate::flight`] and
//! [`crate::health`]), which [`crate::server`] starts.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;

use crate::error::{Error, Result};
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
