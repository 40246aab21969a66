//! The operator's one error type, with a category for metrics.

use thiserror::Error;

/// Result with the operator's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while reconciling or running the operator. Messages never
/// contain secret values.
#[derive(Debug, Error)]
pub enum Error {
    /// The spec cannot be run. Reported as the `SpecValid` condition, not retried
    /// until the object changes.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A Kubernetes API call failed; retried with backoff.
    #[error("kubernetes API call failed while {action}: {source}")]
    Kube {
        /// What the operator was doing, e.g. `applying StatefulSet demo-workers`.
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The object lacks a field the API server always sets (name, namespace, uid).
    #[error("DataCluster has no {0}")]
    MissingField(&'static str),
    /// Leader election could not read or write its Lease.
    #[error("leader election: {0}")]
    Lease(String),
    /// Bad command-line configuration.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// Short label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Kube { .. } => "kube_api",
            Error::MissingField(_) => "missing_field",
            Error::Lease(_) => "lease",
            Error::Config(_) => "config",
        }
    }

    /// Wraps a client error with what the operator was doing.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Error {
        Error::Kube { action: action.into(), source: Box::new(source) }
    }
}

/// True when a client error is an API status with this HTTP code.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
