//! The embedded front end: `static/` compiled into the binary by `build.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::Error;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/static_files.rs"));
}

/// The embedded file at `path` (relative to `static/`).
pub fn file(path: &str) -> Option<&'static [u8]> {
    embedded::FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// Whether the detailed offline basemap (`basemap/…`, built from
/// `dashboard/basemap/`) is embedded, or why not; without it the front end
/// draws the coarse country outlines of `countries.json`.
pub fn basemap_detail() -> Result<(), &'static str> {
    embedded::BASEMAP
}

/// Paths of every embedded file.
pub fn paths() -> impl Iterator<Item = &'static str> {
    embedded::FILES.iter().map(|(p, _)| *p)
}

/// Content type by extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "geojson" => "application/geo+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// A strong ETag per file, computed once.
fn etag(path: &'static str) -> &'static str {
    static TAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        embedded::FILES.iter().map(|(p, b)| (*p, format!("\"{}\"", &hex::encode(Sha256::digest(b))[..20]))).collect()
    })
    .get(path)
    .map(String::as_str)
    .unwrap_or("\"none\"")
}

/// Serves an embedded file. Assets are not fingerprinted, so browsers revalidate
/// every time (`no-cache`) and get a `304` while the ETag matches.
pub fn serve_file(path: &str, headers: &HeaderMap) -> Response {
    let Some((path, body)) = embedded::FILES.iter().find(|(p, _)| *p == path).map(|(p, b)| (*p, *b)) else {
        return Error::NotFound(format!("/static/{path}")).into_response();
    };
    let tag = etag(path);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if matches { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    resp
}

/// `GET /static/{*path}`. A path that does not decode (invalid UTF-8 after
/// percent-decoding) names no embedded file: `404` in JSON like every other refusal.
pub async fn static_file(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    match path {
        Ok(Path(path)) => serve_file(&path, &headers),
        Err(_) => Error::NotFound("/static/ (the path is not valid UTF-8)".into()).into_response(),
    }
}

/// An HTML page that must never be cached (it depends on the session).
pub fn page(name: &str) -> Response {
    match file(name) {
        Some(body) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        None => Error::Internal(format!("the front end lacks static/{name}")).into_response(),
    }
}
