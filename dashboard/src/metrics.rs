//! The dashboard's Prometheus metrics, one registry per process.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route pattern (never the raw path, to bound cardinality).
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// A failure category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    /// Category, e.g. `timeout`, `unavailable`.
    pub category: String,
}

/// Why a login failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `wrong_token` or `rate_limited`.
    pub reason: String,
}

/// Handles to every metric; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// `/api/query` latency, seconds.
    pub query_seconds: Histogram,
    /// Worker call failures by category.
    pub worker_errors: Family<CategoryLabels, Counter>,
    /// Failed logins (and Bearer checks) by reason.
    pub login_failures: Family<ReasonLabels, Counter>,
    /// Query answers flagged partial.
    pub partial_results: Counter,
    /// Queries sent to a second replica of a shard because the first was slow.
    pub hedges_fired: Counter,
    /// Hedged queries whose second replica answered first.
    pub hedges_won: Counter,
    /// Queries sent to another replica of a shard after one failed or refused.
    pub replica_retries: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("quiver_dashboard");
        let requests = Family::<RequestLabels, Counter>::default();
        r.register("http_requests", "HTTP requests by route and status", requests.clone());
        // 1 ms to ~16 s.
        let query_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        r.register("query_duration_seconds", "End-to-end /api/query latency", query_seconds.clone());
        let worker_errors = Family::<CategoryLabels, Counter>::default();
        r.register("worker_errors", "Failed worker calls by category", worker_errors.clone());
        let login_failures = Family::<ReasonLabels, Counter>::default();
        r.register("login_failures", "Failed logins and Bearer checks by reason", login_failures.clone());
        let partial_results = Counter::default();
        r.register("partial_results", "Query answers with missing or inconsistent shards", partial_results.clone());
        let hedges_fired = Counter::default();
        r.register("hedges_fired", "Queries hedged on a second replica of a slow shard", hedges_fired.clone());
        let hedges_won = Counter::default();
        r.register("hedges_won", "Hedged queries answered first by the hedge", hedges_won.clone());
        let replica_retries = Counter::default();
        r.register(
            "replica_retries",
            "Queries retried on another replica after one failed or refused",
            replica_retries.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(r)),
            requests,
            query_seconds,
            worker_errors,
            login_failures,
            partial_results,
            hedges_fired,
            hedges_won,
            replica_retries,
        }
    }

    /// Counts a worker failure.
    pub fn worker_error(&self, category: &str) {
        self.worker_errors.get_or_create(&CategoryLabels { category: category.to_string() }).inc();
    }

    /// Counts a failed login.
    pub fn login_failure(&self, reason: &str) {
        self.login_failures.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
    }

    /// Counts a request.
    pub fn request(&self, route: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route: route.to_string(), status }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let r = self.registry.lock().expect("metrics lock");
        prometheus_client::encoding::text::encode(&mut s, &r).expect("writing to a String cannot fail");
        s
    }
}
