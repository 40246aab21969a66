//! The real worker connection: the worker crate's Arrow Flight client.

use std::sync::Arc;

use async_trait::async_trait;
use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::{DatasetInfo, Query, QueryResult, WorkerStats};

use crate::fanout::{Connector, Worker, WorkerResult};

/// Connects to workers over Flight, with the worker token when one is set.
pub struct FlightConnector {
    token: Option<String>,
}

impl FlightConnector {
    /// A connector sending `token` as a Bearer token.
    pub fn new(token: Option<String>) -> FlightConnector {
        FlightConnector { token }
    }
}

#[async_trait]
impl Connector for FlightConnector {
    async fn connect(&self, endpoint: &str) -> WorkerResult<Arc<dyn Worker>> {
        // Lazy: an unreachable worker fails its call (inside the deadline), not the connect.
        Ok(Arc::new(FlightWorker(WorkerClient::connect_lazy(endpoint, self.token.clone())?)))
    }
}

struct FlightWorker(WorkerClient);

#[async_trait]
impl Worker for FlightWorker {
    async fn query(&self, q: &Query) -> WorkerResult<QueryResult> {
        self.0.query(q).await
    }
    async fn stats(&self) -> WorkerResult<WorkerStats> {
        self.0.stats().await
    }
    async fn reload(&self, dataset: Option<&str>) -> WorkerResult<()> {
        self.0.reload(dataset).await
    }
    async fn datasets(&self) -> WorkerResult<Vec<DatasetInfo>> {
        self.0.datasets().await
    }
    async fn health(&self) -> WorkerResult<()> {
        self.0.health().await
    }
    async fn export(&self, q: &Query) -> WorkerResult<crate::fanout::BatchStream> {
        self.0.export(q).await
    }
}
