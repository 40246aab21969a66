//! The worker's one error type, with a category for metrics and a mapping to gRPC status.

use thiserror::Error;

/// Result with the worker's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the worker. Messages name the file, column,
/// value or limit involved; they never contain secrets.
#[derive(Debug, Error)]
pub enum Error {
    /// A dataset spec or view config is invalid.
    #[error("invalid dataset spec: {0}")]
    InvalidSpec(String),
    /// A query ticket is malformed or exceeds a limit.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The query names a dataset this worker does not hold.
    #[error("unknown dataset {0:?}")]
    UnknownDataset(String),
    /// The dataset exists but is not loaded (still loading, or failed).
    #[error("dataset {name:?} is not ready: {reason}")]
    NotReady {
        /// Dataset name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The object store could not be reached or refused the request.
    #[error("object store error at {location}: {message}")]
    Store {
        /// URL or path involved.
        location: String,
        /// What the store said.
        message: String,
    },
    /// A file could not be decoded, or does not fit the expected schema.
    #[error("{file}: {message}")]
    Decode {
        /// The file (URL) involved.
        file: String,
        /// What is wrong, naming the column when there is one.
        message: String,
    },
    /// The shard would not fit the memory limit.
    #[error("shard does not fit in memory: {0}")]
    OutOfMemory(String),
    /// An export matches more rows than its limit.
    #[error("{rows} rows are selected; the export limit is {limit} rows")]
    TooManyRows {
        /// Rows selected.
        rows: u64,
        /// The limit.
        limit: u64,
    },
    /// Wrong or missing token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A remote call failed (client side).
    #[error("worker {endpoint} unavailable: {message}")]
    Unavailable {
        /// Endpoint called.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The remote side answered with something this client cannot read.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Local I/O (listeners, files).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Arrow encoding or decoding failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl Error {
    /// Short label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::InvalidQuery(_) => "invalid_query",
            Error::UnknownDataset(_) => "unknown_dataset",
            Error::NotReady { .. } => "not_ready",
            Error::Store { .. } => "store",
            Error::Decode { .. } => "decode",
            Error::OutOfMemory(_) => "out_of_memory",
            Error::TooManyRows { .. } => "too_many_rows",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Unavailable { .. } => "unavailable",
            Error::Protocol(_) => "protocol",
            Error::Io(_) => "io",
            Error::Arrow(_) => "arrow",
        }
    }

    /// True when retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Store { .. } | Error::Io(_))
    }
}

/// gRPC metadata key carrying [`Error::category`], so clients recover the kind
/// of error that one status code covers (e.g. `unavailable`: loading vs down).
pub const CATEGORY_HEADER: &str = "quiver-error";

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let category = e.category();
        let mut status = status_of(e);
        if let Ok(v) = category.parse() {
            status.metadata_mut().insert(CATEGORY_HEADER, v);
        }
        status
    }
}

fn status_of(e: Error) -> tonic::Status {
    {
        let msg = e.to_string();
        match e {
            Error::InvalidSpec(_) | Error::InvalidQuery(_) => tonic::Status::invalid_argument(msg),
            Error::UnknownDataset(_) => tonic::Status::not_found(msg),
            Error::NotReady { .. } => tonic::Status::unavailable(msg),
            Error::Unauthenticated(_) => tonic::Status::unauthenticated(msg),
            Error::OutOfMemory(_) | Error::TooManyRows { .. } => tonic::Status::resource_exhausted(msg),
            Error::Store { .. } | Error::Unavailable { .. } => tonic::Status::unavailable(msg),
            Error::Decode { .. } => tonic::Status::failed_precondition(msg),
            Error::Protocol(_) | Error::Io(_) | Error::Arrow(_) => tonic::Status::internal(msg),
        }
    }
}
