//! Quiver operator: one `DataCluster` becomes a running cluster of workers and
//! dashboards, stopped or deleted when idle by policy.
//!
//! ```text
//! DataCluster ──watch──▶ reconcile:
//!   validate (pure: spec + defaults → ValidCluster, or SpecValid=False)
//!   → token Secrets (created once, never overwritten; read from the cache)
//!   → worker pods (from the cache: endpoints, failures such as ImagePullBackOff)
//!   → activity (workers' `stats` over Flight: load state, rows, last query)
//!   → lifecycle::decide (pure: Run | Suspend | Resume | Delete)
//!   → children::build_all (pure) → apply (server-side apply, owner refs;
//!     skipped when the watch cache shows the child applied from the same object)
//!   → rollout::plan (pure: which outdated worker pods to delete now)
//!   → status::compute (pure: phase, conditions, rows) → status + Events
//! ```
#![warn(missing_docs)]

pub mod activity;
pub mod apply;
pub mod cache;
pub mod children;
pub mod client;
pub mod crd;
pub mod error;
pub mod failures;
pub mod http;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod placement;
pub mod reconcile;
pub mod resume;
pub mod rollout;
mod schema;
pub mod status;
pub mod validate;

pub use error::{Error, Result};
