//! Login, logout, the pages that depend on the session, and the guard on `/api`.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tokio::time::Instant;

use crate::auth::{Bearer, bearer, clear_cookie, client_ip, session_cookie};
use crate::error::Error;
use crate::routes::{BODY_LIMIT, assets, read_body};
use crate::state::AppState;

/// Wall-clock now, unix seconds (sessions must agree across replicas, so not a monotonic clock).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn has_session(state: &AppState, headers: &HeaderMap) -> bool {
    session_cookie(headers).is_some_and(|c| state.auth.verify(c, unix_now()).is_ok())
}

/// `GET /`: the app, or the login page's address without a session.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if has_session(&state, &headers) { assets::page("index.html") } else { Redirect::to("/login").into_response() }
}

/// `GET /login`.
pub async fn login_page() -> Response {
    assets::page("login.html")
}

#[derive(serde::Deserialize)]
struct JsonLogin {
    token: String,
}

/// How the login was sent, which decides how failures are answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    /// A browser posting the login form: failures go back to the form.
    BrowserForm,
    /// A form post from a non-browser client.
    Form,
    /// JSON.
    Json,
}

fn login_failure(client: Client, err: Error) -> Response {
    if client == Client::BrowserForm {
        let reason = if matches!(err, Error::RateLimited { .. }) { "rate" } else { "1" };
        return Redirect::to(&format!("/login?error={reason}")).into_response();
    }
    err.into_response()
}

/// `POST /login`: exchanges the token for a session cookie.
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let ip = client_ip(req.headers(), peer(&req), state.settings.trust_proxy);
    let ctype =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let accepts_html =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    let client = if ctype.starts_with("application/json") {
        Client::Json
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        if accepts_html { Client::BrowserForm } else { Client::Form }
    } else {
        return Error::BadRequest("send the token as a form (token=...) or as JSON {\"token\": \"...\"}".into())
            .into_response();
    };
    // Refuse before looking at the token: a limited client learns nothing.
    if let Err(retry_after) = state.limiter.check(ip, Instant::now()) {
        state.metrics.login_failure("rate_limited");
        return login_failure(client, Error::RateLimited { retry_after });
    }
    let body = match read_body(req.into_body(), BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let token = match client {
        Client::Json => match serde_json::from_slice::<JsonLogin>(&body) {
            Ok(j) => j.token,
            Err(e) => return Error::BadRequest(format!("login body: {e}")).into_response(),
        },
        Client::Form | Client::BrowserForm => match url::form_urlencoded::parse(&body).find(|(k, _)| k == "token") {
            Some((_, v)) => v.into_owned(),
            None => return login_failure(client, Error::BadRequest("the form has no token field".into())),
        },
    };
    if !state.auth.check_token(&token) {
        state.limiter.record_failure(ip, Instant::now());
        state.metrics.login_failure("wrong_token");
        tracing::info!("login refused: wrong token");
        return login_failure(client, Error::WrongToken);
    }
    let cookie = state.auth.issue(unix_now());
    let set = state.auth.set_cookie(&cookie, state.settings.cookie_secure);
    let set = HeaderValue::from_str(&set).expect("cookie is ASCII");
    tracing::info!("login accepted");
    match client {
        Client::Json => (StatusCode::NO_CONTENT, [(header::SET_COOKIE, set)]).into_response(),
        _ => (StatusCode::SEE_OTHER, [(header::SET_COOKIE, set), (header::LOCATION, HeaderValue::from_static("/"))])
            .into_response(),
    }
}

/// `POST /logout`: clears the cookie. (A copied cookie stays valid until it
/// expires; bump `--session-epoch` or rotate the token to cut every session.)
pub async fn logout(State(state): State<AppState>) -> Response {
    let clear = HeaderValue::from_str(&clear_cookie(state.settings.cookie_secure)).expect("ASCII");
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, clear), (header::LOCATION, HeaderValue::from_static("/login"))])
        .into_response()
}

/// Guard on every `/api` route: a valid session cookie or Bearer token, else 401.
/// A wrong Bearer token counts as a failed login (and is rate-limited like one).
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match bearer(req.headers()) {
        Bearer::Token(t) => {
            let ip = client_ip(req.headers(), peer(&req), state.settings.trust_proxy);
            if let Err(retry_after) = state.limiter.check(ip, Instant::now()) {
                state.metrics.login_failure("rate_limited");
                return Error::RateLimited { retry_after }.into_response();
            }
            if !state.auth.check_token(t) {
                state.limiter.record_failure(ip, Instant::now());
                state.metrics.login_failure("wrong_token");
                return Error::WrongToken.into_response();
            }
        }
        Bearer::Malformed => return Error::Unauthenticated.into_response(),
        Bearer::Absent => match session_cookie(req.headers()).map(|c| state.auth.verify(c, unix_now())) {
            Some(Ok(_)) => {}
            Some(Err(why)) => {
                tracing::debug!(reason = ?why, "session cookie refused");
                return Error::Unauthenticated.into_response();
            }
            None => return Error::Unauthenticated.into_response(),
        },
    }
    next.run(req).await
}
