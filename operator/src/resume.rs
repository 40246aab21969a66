//! The resume endpoint: lets a dashboard wake its idle-suspended cluster
//! without holding any credential that could change a DataCluster.
//!
//! The dashboard pod runs with no service-account token. It proves which
//! cluster it serves with that cluster's own dashboard login token (the one it
//! already mounts), sent as a Bearer token to the operator, which compares it
//! in constant time with the cluster's token Secret. The one write this
//! endpoint can make is the resume annotation, set to the operator's "now";
//! the lifecycle decision (resume only an idle suspension, never one the spec
//! asks for) stays the reconciler's.
//!
//! ```text
//! GET  /v1/namespaces/{ns}/dataclusters/{name}/status  -> {"phase", "suspended", "suspendReason", ...}
//! POST /v1/namespaces/{ns}/dataclusters/{name}/resume  -> 202 {"resumeRequestedAt"}
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::net::TcpListener;

use crate::children::TOKEN_KEY;
use crate::crd::{DataCluster, Phase, RESUME_ANNOTATION, SuspendReason};
use crate::lifecycle::Clock;
use crate::validate::ValidCluster;

/// Port of the resume endpoint in the operator pods.
pub const RESUME_PORT: u16 = 8081;

/// What the endpoint needs.
#[derive(Clone)]
pub struct ResumeState {
    /// API client (reads the DataCluster and its token Secret, sets the annotation).
    pub client: Client,
    /// Now, for the annotation.
    pub clock: Arc<dyn Clock>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No Bearer token, or not the cluster's dashboard token.
    Unauthenticated,
    /// No such DataCluster (or no token Secret for it).
    NotFound,
    /// The API server failed; details are logged, not sent.
    Unavailable,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            Refusal::Unauthenticated => (StatusCode::UNAUTHORIZED, "not authorised for this cluster"),
            Refusal::NotFound => (StatusCode::NOT_FOUND, "no such cluster"),
            Refusal::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "the Kubernetes API is unavailable"),
        };
        (code, Json(json!({"error": message}))).into_response()
    }
}

/// Constant-time equality of a presented token and the expected one.
pub fn token_matches(expected: &[u8], presented: &[u8]) -> bool {
    if expected.is_empty() || expected.len() != presented.len() {
        return false;
    }
    expected.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Reads the DataCluster and checks the Bearer token against its dashboard token.
pub async fn authorize(
    client: &Client,
    namespace: &str,
    name: &str,
    presented: Option<&str>,
) -> Result<DataCluster, Refusal> {
    let presented = presented.ok_or(Refusal::Unauthenticated)?;
    let api: Api<DataCluster> = Api::namespaced(client.clone(), namespace);
    let dc = api
        .get_opt(name)
        .await
        .map_err(|e| {
            tracing::warn!(cluster = name, namespace, error = %e, "resume: reading the DataCluster failed");
            Refusal::Unavailable
        })?
        .ok_or(Refusal::NotFound)?;
    let (secret, key) = match &dc.spec.dashboard.token_secret_ref {
        Some(r) => (r.name.clone(), r.key.clone()),
        None => (ValidCluster::generated_dashboard_token_secret(name), TOKEN_KEY.to_string()),
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let expected = secrets
        .get_opt(&secret)
        .await
        .map_err(|e| {
            tracing::warn!(cluster = name, namespace, error = %e, "resume: reading the token Secret failed");
            Refusal::Unavailable
        })?
        .and_then(|s| s.data?.remove(&key))
        .ok_or(Refusal::NotFound)?;
    let expected = String::from_utf8_lossy(&expected.0);
    if token_matches(expected.trim().as_bytes(), presented.as_bytes()) { Ok(dc) } else { Err(Refusal::Unauthenticated) }
}

/// Sets the resume annotation (nothing else) to now; returns the time written.
pub async fn request_resume(
    client: &Client,
    clock: &dyn Clock,
    namespace: &str,
    name: &str,
) -> Result<String, Refusal> {
    let at = clock.now().to_string();
    let api: Api<DataCluster> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {RESUME_ANNOTATION: at}}});
    api.patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| {
        tracing::warn!(cluster = name, namespace, error = %e, "resume: setting the annotation failed");
        Refusal::Unavailable
    })?;
    Ok(at)
}

/// The routes.
pub fn router(state: ResumeState) -> Router {
    Router::new()
        .route("/v1/namespaces/{namespace}/dataclusters/{name}/status", get(status))
        .route("/v1/namespaces/{namespace}/dataclusters/{name}/resume", post(resume))
        .with_state(state)
}

async fn status(
    State(s): State<ResumeState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let dc = authorize(&s.client, &namespace, &name, bearer(&headers)).await?;
    let st = dc.status.unwrap_or_default();
    Ok(Json(json!({
        "phase": st.phase.map(Phase::as_str),
        "suspended": st.phase == Some(Phase::Suspended),
        "suspendReason": st.suspend_reason.map(|r| match r {
            SuspendReason::Spec => "Spec",
            SuspendReason::Idle => "Idle",
        }),
        "readyWorkers": st.ready_workers,
        "desiredWorkers": st.desired_workers,
    }))
    .into_response())
}

async fn resume(
    State(s): State<ResumeState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    authorize(&s.client, &namespace, &name, bearer(&headers)).await?;
    let at = request_resume(&s.client, s.clock.as_ref(), &namespace, &name).await?;
    tracing::info!(cluster = %name, namespace = %namespace, "a dashboard asked to resume");
    Ok((StatusCode::ACCEPTED, Json(json!({"resumeRequestedAt": at}))).into_response())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: ResumeState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(b"s3cr3t-token", b"s3cr3t-token"));
        assert!(!token_matches(b"s3cr3t-token", b"s3cr3t-tokeN"));
        assert!(!token_matches(b"s3cr3t-token", b"s3cr3t"));
        assert!(!token_matches(b"", b""));
    }
}
