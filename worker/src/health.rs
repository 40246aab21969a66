//! The HTTP side port: `/healthz` (the process answers), `/readyz` (every
//! dataset has data to serve), `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::WorkerState;

/// The side-port router.
pub fn router(state: Arc<WorkerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<WorkerState>>) -> impl IntoResponse {
    let stats = state.stats();
    let body = serde_json::to_string(&stats.datasets).unwrap_or_default();
    if state.registry.all_loaded() { (StatusCode::OK, body) } else { (StatusCode::SERVICE_UNAVAILABLE, body) }
}

async fn metrics(State(state): State<Arc<WorkerState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}
