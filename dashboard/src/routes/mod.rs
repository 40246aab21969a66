//! The HTTP surface: pages, login, the JSON API, probes, assets.

pub mod api;
pub mod assets;
pub mod export;
pub mod ops;
pub mod session;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http_body_util::{BodyExt, Limited};

use crate::error::Error;
use crate::state::AppState;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads a body, refusing one over `limit` bytes with 413 and one sent slower
/// than the server's body read time limit with 408.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    // A declared length over the limit is refused before waiting for any of it.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(Error::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge { limit }),
        Err(e) if let Some(t) = crate::conn::BodyTimeout::find(&*e) => Err(Error::BodyTimeout(t.0)),
        Err(e) => Err(Error::BadRequest(format!("could not read the request body: {e}"))),
    }
}

/// The metrics label of a path: the route pattern, so raw paths never explode cardinality.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/login" => "/login",
        "/logout" => "/logout",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/api/datasets" => "/api/datasets",
        "/api/status" => "/api/status",
        "/api/resume" => "/api/resume",
        "/api/query" => "/api/query",
        "/api/reload" => "/api/reload",
        "/api/config" => "/api/config",
        "/api/export" => "/api/export",
        "/api/export/python" => "/api/export/python",
        p if p.starts_with("/static/") => "/static/*",
        p if p.starts_with("/api/") => "/api/other",
        _ => "other",
    }
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let resp = next.run(req).await;
    state.metrics.request(route, resp.status().as_u16());
    resp
}

/// Headers every answer carries: no sniffing, no framing, no referrer, and a
/// content policy that allows only this origin (plus the tile server's images).
async fn security_headers(State(csp): State<HeaderValue>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The Content-Security-Policy for a deployment.
pub fn content_security_policy(tile_url: Option<&str>) -> HeaderValue {
    let tiles = tile_url.map(|t| format!(" {}", tile_source(t))).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; img-src 'self' data: blob:{tiles}; style-src 'self' 'unsafe-inline'; \
         script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// The CSP source matching a tile URL template's host: `{s}.tile.example` becomes
/// `*.tile.example`; a host with other placeholders allows the whole scheme.
pub fn tile_source(template: &str) -> String {
    let (scheme, rest) = template.split_once("://").unwrap_or(("https", template));
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.strip_prefix("{s}.").map(|h| format!("*.{h}")).unwrap_or_else(|| host.to_string());
    if host.is_empty() || host.contains(['{', '}', ' ', ';', '\'', ',']) {
        format!("{scheme}:")
    } else {
        format!("{scheme}://{host}")
    }
}

/// A known path asked with the wrong method: `405` with the JSON error every other refusal has.
async fn method_not_allowed(req: Request) -> Response {
    let msg =
        format!("method {} is not allowed on {}", req.method(), req.uri().path().chars().take(100).collect::<String>());
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/datasets", get(api::datasets))
        .route("/status", get(api::status))
        .route("/query", post(api::query))
        .route("/reload", post(api::reload))
        .route("/resume", post(api::resume))
        .route("/config", get(api::config))
        .route("/export", get(export::export))
        .route("/export/python", get(export::python))
        .route("/{*rest}", any(api::not_found))
        .fallback(api::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), session::require_auth));
    let csp = content_security_policy(state.settings.tile_url.as_deref());
    Router::new()
        .route("/", get(session::index))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/{*path}", get(assets::static_file))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .nest("/api", api)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|req: Request| async move {
            Error::NotFound(req.uri().path().chars().take(100).collect()).into_response()
        })
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(middleware::from_fn_with_state(csp, security_headers))
        // The span names the path only: a query string may hold anything, even a token.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::debug_span!("request", method = %req.method(), path = %req.uri().path()),
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_sources_cover_subdomain_templates() {
        assert_eq!(tile_source("https://tiles.example/{z}/{x}/{y}.png"), "https://tiles.example");
        assert_eq!(tile_source("https://{s}.tile.osm.org/{z}/{x}/{y}.png"), "https://*.tile.osm.org");
        assert_eq!(tile_source("http://localhost:8080/{z}/{x}/{y}"), "http://localhost:8080");
        assert_eq!(tile_source("https://{a}x.example/{z}/{x}/{y}"), "https:");
    }

    #[test]
    fn metrics_labels_are_route_patterns() {
        assert_eq!(route_label("/static/app.js"), "/static/*");
        assert_eq!(route_label("/api/query"), "/api/query");
        assert_eq!(route_label("/api/../../etc"), "/api/other");
        assert_eq!(route_label("/wp-admin"), "other");
    }
}
