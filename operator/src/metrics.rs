//! Prometheus metrics of the operator: one registry, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `Error::category()`.
    pub category: String,
}

/// Label of the lifecycle action counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `suspend`, `resume`, `delete`.
    pub action: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciles: Counter,
    /// Reconcile failures by error category.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Lifecycle actions taken.
    pub actions: Family<ActionLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("quiver_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let actions = Family::<ActionLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register("reconcile_errors", "Reconcile failures by error category", errors.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration", duration.clone());
        registry.register("lifecycle_actions", "Suspend, resume and delete actions taken", actions.clone());
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        Metrics { registry, reconciles, errors, duration, actions, leader }
    }
}

impl Metrics {
    /// Counts a failed reconcile.
    pub fn error(&self, category: &str) {
        self.errors.get_or_create(&ErrorLabels { category: category.into() }).inc();
    }

    /// Counts a lifecycle action.
    pub fn action(&self, action: &str) {
        self.actions.get_or_create(&ActionLabels { action: action.into() }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String never fails");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.error("kube_api");
        m.duration.observe(0.02);
        let text = m.encode();
        assert!(text.contains("quiver_operator_reconciles_total 1"), "{text}");
        assert!(text.contains("quiver_operator_reconcile_errors_total{category=\"kube_api\"} 1"), "{text}");
        assert!(text.contains("quiver_operator_reconcile_duration_seconds_count 1"), "{text}");
    }
}
