//! Probes and metrics, for Kubernetes and Prometheus (no auth, no data).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /healthz`: the process serves; depends on nothing remote.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: at least one worker answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.fanout.any_healthy().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no worker answers\n").into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.encode(),
    )
        .into_response()
}
