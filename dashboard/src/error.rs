//! The dashboard's one error type: every failure becomes an HTTP answer here,
//! with the details logged and only a safe message sent.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Result with the dashboard's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a limit; the message names the field or limit.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The client sent the request body too slowly.
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    BodyTimeout(Duration),
    /// No credential was presented, or the session cookie is invalid or expired.
    #[error("authentication required")]
    Unauthenticated,
    /// A token was presented and it is wrong.
    #[error("wrong token")]
    WrongToken,
    /// Too many failed logins from this client.
    #[error("too many failed logins; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// No such route or file.
    #[error("not found: {0}")]
    NotFound(String),
    /// A worker call failed.
    #[error("worker {endpoint}: {source}")]
    Worker {
        /// The worker's endpoint.
        endpoint: String,
        /// What the worker (or the client talking to it) said.
        #[source]
        source: quiver_worker::Error,
    },
    /// An export would return more rows than the configured limit.
    #[error("{rows} rows are selected; the export limit is {limit} rows: narrow the filters or the map view")]
    ExportTooLarge {
        /// Rows selected.
        rows: u64,
        /// `--export-row-limit`.
        limit: u64,
    },
    /// A worker did not answer in time.
    #[error("worker {endpoint} did not answer within {}", humantime::format_duration(*after))]
    WorkerTimeout {
        /// The worker's endpoint.
        endpoint: String,
        /// The timeout.
        after: Duration,
    },
    /// No worker could answer (none discovered, or all failed); the message says why.
    #[error("{0}")]
    Unavailable(String),
    /// Invalid configuration at start-up.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The demo or benchmark could not set itself up (data, workers, listener).
    #[error("{0}")]
    Setup(String),
    /// Local I/O (listeners, files).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A bug or an unexpected state; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Short label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::BodyTimeout(_) => "body_timeout",
            Error::Unauthenticated => "unauthenticated",
            Error::WrongToken => "wrong_token",
            Error::RateLimited { .. } => "rate_limited",
            Error::NotFound(_) => "not_found",
            Error::Worker { source, .. } => source.category(),
            Error::WorkerTimeout { .. } => "timeout",
            Error::ExportTooLarge { .. } => "export_too_large",
            Error::Unavailable(_) => "unavailable",
            Error::Config(_) => "config",
            Error::Setup(_) => "setup",
            Error::Io(_) => "io",
            Error::Internal(_) => "internal",
        }
    }

    /// True when the same worker call may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Worker { source, .. } => source.is_transient(),
            Error::Io(_) => true,
            _ => false,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use quiver_worker::Error as W;
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Unauthenticated | Error::WrongToken => StatusCode::UNAUTHORIZED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Worker { source, .. } => match source {
                W::InvalidQuery(_) | W::UnknownDataset(_) => StatusCode::BAD_REQUEST,
                W::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                W::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            Error::WorkerTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::ExportTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config(_) | Error::Setup(_) | Error::Io(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client: what the user can act on, nothing internal.
    pub fn public_message(&self) -> String {
        use quiver_worker::Error as W;
        match self {
            Error::Worker { source, .. } => match source {
                // These name the dataset, field or limit the user sent; safe to echo.
                W::InvalidQuery(_) | W::UnknownDataset(_) | W::NotReady { .. } | W::TooManyRows { .. } => {
                    source.to_string()
                }
                // Worker messages never carry secrets; the reason helps whoever runs the cluster.
                W::Unavailable { message, .. } => format!("worker unavailable: {message}"),
                W::Unauthenticated(_) => {
                    "the worker refused the dashboard's credentials (check --worker-token)".to_string()
                }
                _ => format!("a worker failed ({})", source.category()),
            },
            Error::Config(_) | Error::Setup(_) | Error::Io(_) | Error::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, category = self.category(), "request failed");
        } else {
            tracing::debug!(error = %self, category = self.category(), "request refused");
        }
        let body = Json(serde_json::json!({ "error": self.public_message() }));
        let mut resp = (status, body).into_response();
        match &self {
            Error::RateLimited { retry_after } => {
                // Round up so a client that waits exactly this long is let in.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Error::Unauthenticated | Error::WrongToken => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}
