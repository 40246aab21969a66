//! Calling every worker at once: each call runs in its own task, bounded by a
//! per-worker deadline, retried once on a transient error; every worker's
//! outcome comes back, so the caller can say which shards are missing and why.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use quiver_worker::protocol::{DatasetInfo, Query, QueryResult, WorkerStats};

use crate::discovery::Discovery;
use crate::error::Error;
use crate::merge::Reply;
use crate::metrics::Metrics;

/// A worker's error, as its client reports it.
pub type WorkerResult<T> = std::result::Result<T, quiver_worker::Error>;

/// What the dashboard asks of one worker. The real one speaks Arrow Flight
/// ([`crate::flight::FlightConnector`]); tests plug in fakes.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Runs a query on this worker's shard.
    async fn query(&self, q: &Query) -> WorkerResult<QueryResult>;
    /// The `stats` action.
    async fn stats(&self) -> WorkerResult<WorkerStats>;
    /// The `reload` action, for one dataset or all.
    async fn reload(&self, dataset: Option<&str>) -> WorkerResult<()>;
    /// Datasets held and their view configs.
    async fn datasets(&self) -> WorkerResult<Vec<DatasetInfo>>;
    /// The `health` action.
    async fn health(&self) -> WorkerResult<()>;
    /// Runs an export (a query whose only view is `rows`): its batches as
    /// they arrive; a refusal comes before the first.
    async fn export(&self, q: &Query) -> WorkerResult<BatchStream> {
        let _ = q;
        Err(quiver_worker::Error::InvalidQuery("this worker does not export rows".into()))
    }
}

/// Record batches streamed from a worker.
pub type BatchStream = futures::stream::BoxStream<'static, WorkerResult<arrow::array::RecordBatch>>;

/// Makes a client for an endpoint.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Connects (or prepares to connect) to `endpoint`.
    async fn connect(&self, endpoint: &str) -> WorkerResult<Arc<dyn Worker>>;
}

/// Parallel calls to all discovered workers.
pub struct Fanout {
    discovery: Discovery,
    connector: Arc<dyn Connector>,
    clients: Mutex<HashMap<String, Arc<dyn Worker>>>,
    timeout: Duration,
    retry_backoff: Duration,
    metrics: Metrics,
}

impl Fanout {
    /// A fan-out over the workers `discovery` lists, each call bounded by `timeout`.
    pub fn new(discovery: Discovery, connector: Arc<dyn Connector>, timeout: Duration, metrics: Metrics) -> Fanout {
        Fanout {
            discovery,
            connector,
            clients: Mutex::new(HashMap::new()),
            timeout,
            retry_backoff: Duration::from_millis(50).min(timeout / 10),
            metrics,
        }
    }

    /// Where the workers come from.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The per-worker time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn client(&self, endpoint: &str) -> WorkerResult<Arc<dyn Worker>> {
        if let Some(c) = self.clients.lock().expect("client cache lock").get(endpoint) {
            return Ok(c.clone());
        }
        let c = self.connector.connect(endpoint).await?;
        self.clients.lock().expect("client cache lock").insert(endpoint.to_string(), c.clone());
        Ok(c)
    }

    fn forget(&self, endpoint: &str) {
        self.clients.lock().expect("client cache lock").remove(endpoint);
    }

    /// Drops cached clients of endpoints no longer discovered.
    fn prune(&self, current: &[String]) {
        self.clients.lock().expect("client cache lock").retain(|ep, _| current.iter().any(|c| c == ep));
    }

    /// Calls `op` on every worker in parallel; one reply per worker, in endpoint order.
    pub async fn call_all<T, F, Fut>(self: &Arc<Self>, op: F) -> Vec<Reply<T>>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Worker>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = WorkerResult<T>> + Send + 'static,
    {
        self.call_all_within(self.timeout, op).await
    }

    /// [`Fanout::call_all`] with another deadline.
    pub async fn call_all_within<T, F, Fut>(self: &Arc<Self>, deadline: Duration, op: F) -> Vec<Reply<T>>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Worker>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = WorkerResult<T>> + Send + 'static,
    {
        let endpoints = self.discovery.endpoints();
        self.prune(&endpoints);
        let handles: Vec<_> = endpoints
            .iter()
            .map(|ep| {
                let (this, ep, op) = (self.clone(), ep.clone(), op.clone());
                tokio::spawn(async move { this.call_one(ep, deadline, op).await })
            })
            .collect();
        let mut replies = Vec::with_capacity(handles.len());
        for (h, ep) in handles.into_iter().zip(endpoints.iter()) {
            replies.push(match h.await {
                Ok(r) => r,
                Err(e) => Reply {
                    endpoint: ep.clone(),
                    result: Err(Error::Internal(format!("worker call task failed: {e}"))),
                },
            });
        }
        // Workers replaced or scaled up from zero have new addresses: look
        // again now rather than at the next periodic resolution.
        if replies.is_empty() || replies.iter().any(|r| r.result.is_err()) {
            self.discovery.nudge();
        }
        replies
    }

    async fn call_one<T, F, Fut>(&self, endpoint: String, deadline: Duration, op: F) -> Reply<T>
    where
        F: Fn(Arc<dyn Worker>) -> Fut,
        Fut: Future<Output = WorkerResult<T>>,
    {
        let attempts = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let res = match self.client(&endpoint).await {
                    Ok(c) => op(c).await,
                    Err(e) => Err(e),
                };
                match res {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        self.metrics.worker_error(e.category());
                        if e.is_transient() {
                            // The connection may be broken: reconnect on the next try.
                            self.forget(&endpoint);
                            if attempt == 1 {
                                tracing::debug!(endpoint = %endpoint, error = %e, "transient worker error; retrying once");
                                tokio::time::sleep(self.retry_backoff).await;
                                continue;
                            }
                        }
                        return Err(Error::Worker { endpoint: endpoint.clone(), source: e });
                    }
                }
            }
        };
        let result = match tokio::time::timeout(deadline, attempts).await {
            Ok(r) => r,
            Err(_) => {
                self.metrics.worker_error("timeout");
                Err(Error::WorkerTimeout { endpoint: endpoint.clone(), after: deadline })
            }
        };
        if let Err(e) = &result {
            tracing::warn!(endpoint = %endpoint, error = %e, "worker call failed");
        }
        Reply { endpoint, result }
    }

    /// Starts an export on one worker (see [`Worker::export`]), within the
    /// per-call deadline for its first answer.
    pub async fn export_from(self: &Arc<Self>, endpoint: &str, q: &Query) -> std::result::Result<BatchStream, Error> {
        let w = self.client(endpoint).await.map_err(|e| Error::Worker { endpoint: endpoint.to_string(), source: e })?;
        match tokio::time::timeout(self.timeout, w.export(q)).await {
            Ok(r) => r.map_err(|e| Error::Worker { endpoint: endpoint.to_string(), source: e }),
            Err(_) => Err(Error::WorkerTimeout { endpoint: endpoint.to_string(), after: self.timeout }),
        }
    }

    /// Runs a query on every worker.
    pub async fn query(self: &Arc<Self>, q: Query) -> Vec<Reply<QueryResult>> {
        let q = Arc::new(q);
        self.call_all(move |w| {
            let q = q.clone();
            async move { w.query(&q).await }
        })
        .await
    }

    /// Every worker's stats.
    pub async fn stats(self: &Arc<Self>) -> Vec<Reply<WorkerStats>> {
        self.call_all(|w| async move { w.stats().await }).await
    }

    /// Every worker's datasets.
    pub async fn datasets(self: &Arc<Self>) -> Vec<Reply<Vec<DatasetInfo>>> {
        self.call_all(|w| async move { w.datasets().await }).await
    }

    /// Asks every worker to reload.
    pub async fn reload(self: &Arc<Self>, dataset: Option<String>) -> Vec<Reply<()>> {
        let dataset = Arc::new(dataset);
        self.call_all(move |w| {
            let d = dataset.clone();
            async move { w.reload(d.as_deref()).await }
        })
        .await
    }

    /// True when at least one worker answers `health` within a short deadline.
    pub async fn any_healthy(self: &Arc<Self>) -> bool {
        let deadline = self.timeout.min(Duration::from_secs(2));
        self.call_all_within(deadline, |w| async move { w.health().await }).await.iter().any(|r| r.result.is_ok())
    }
}
