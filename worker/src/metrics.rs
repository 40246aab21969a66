//! Prometheus metrics of the worker, one registry per process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label naming a dataset.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabel {
    /// Dataset name.
    pub dataset: String,
}

/// Label naming an error category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// Error category (see `Error::category`).
    pub category: String,
}

/// Label naming where an answer came from (`computed`, `shared`, `cached`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// See [`crate::cache::Source`].
    pub source: &'static str,
}

/// The worker's metrics.
pub struct Metrics {
    /// The registry they are exported from.
    pub registry: Registry,
    /// Rows held per dataset.
    pub rows: Family<DatasetLabel, Gauge>,
    /// Bytes held per dataset.
    pub bytes: Family<DatasetLabel, Gauge>,
    /// Queries answered per dataset.
    pub queries: Family<DatasetLabel, Counter>,
    /// Errors by category.
    pub errors: Family<ErrorLabel, Counter>,
    /// Answers by where they came from: a scan, a concurrent identical scan, or kept.
    pub answers: Family<SourceLabel, Counter>,
    /// Query latency on the worker (parse, kernel, encode), seconds.
    pub query_seconds: Histogram,
    /// Duration of the last load per dataset, milliseconds.
    pub load_millis: Family<DatasetLabel, Gauge>,
    /// Loads that failed, per dataset.
    pub load_failures: Family<DatasetLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("quiver_worker");
        let m = Metrics {
            rows: Family::default(),
            bytes: Family::default(),
            queries: Family::default(),
            errors: Family::default(),
            answers: Family::default(),
            query_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            load_millis: Family::default(),
            load_failures: Family::default(),
            registry: Registry::default(),
        };
        registry.register("rows", "Rows held in memory", m.rows.clone());
        registry.register("bytes", "Bytes held in memory", m.bytes.clone());
        registry.register("queries", "Queries answered", m.queries.clone());
        registry.register("errors", "Errors by category", m.errors.clone());
        registry.register("answers", "Answers by source (computed, shared, cached)", m.answers.clone());
        registry.register("query_seconds", "Query latency on the worker", m.query_seconds.clone());
        registry.register("load_duration_milliseconds", "Duration of the last load", m.load_millis.clone());
        registry.register("load_failures", "Failed loads", m.load_failures.clone());
        Metrics { registry, ..m }
    }

    /// Counts an error.
    pub fn error(&self, e: &crate::Error) {
        self.errors.get_or_create(&ErrorLabel { category: e.category().to_string() }).inc();
    }

    /// Text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
