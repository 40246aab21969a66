//! Login, sessions, Bearer tokens, rate limiting and the `/api` guard, through the router.

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use quiver_dashboard::auth::Auth;
use quiver_dashboard::config::Secret;

fn form_login(token: &str, browser: bool) -> Request<Body> {
    let mut b = Request::post("/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if browser {
        b = b.header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8");
    }
    let body: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("token", token).finish();
    b.body(Body::from(body)).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn the_right_token_gets_a_safe_session_cookie() {
    let app = app();
    let a = send(&app, post_json("/login", &serde_json::json!({"token": TOKEN}))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let set = a.header("set-cookie").unwrap();
    for attr in ["quiver_session=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("Secure"), "not configured");
    assert!(!set.contains(TOKEN), "the token itself is never the cookie");
    let cookie = login(&app).await;
    let a = send(&app, with_cookie(get("/api/config"), &cookie)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["tileUrl"], "https://tiles.example/{z}/{x}/{y}.png");
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let (app, _) = app_with_args(vec![FakeWorker::new(0, 1, Mode::Ok)], |mut a| {
        a.cookie_secure = true;
        a
    });
    let a = send(&app, post_json("/login", &serde_json::json!({"token": TOKEN}))).await;
    assert!(a.header("set-cookie").unwrap().contains("; Secure"));
}

#[tokio::test]
async fn a_form_login_redirects_to_the_app() {
    let app = app();
    let a = send(&app, form_login(TOKEN, true)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/"));
    assert!(a.header("set-cookie").unwrap().starts_with("quiver_session="));
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let app = app();
    let a = send(&app, post_json("/login", &serde_json::json!({"token": "nope"}))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.header("set-cookie").is_none());
    assert_eq!(a.error(), "wrong token");
    // A browser posting the form goes back to the form with the reason.
    let a = send(&app, form_login("nope", true)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/login?error=1"));
    assert!(a.header("set-cookie").is_none());
    // A script posting the form gets the status.
    let a = send(&app, form_login("nope", false)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tampered_cookies_are_refused() {
    let app = app();
    let cookie = login(&app).await;
    let mut forged = cookie.clone().into_bytes();
    // Change the expiry digit right after "v1.<issued>.".
    let pos = cookie.match_indices('.').nth(1).unwrap().0 + 1;
    forged[pos] = if forged[pos] == b'9' { b'8' } else { b'9' };
    let forged = String::from_utf8(forged).unwrap();
    let a = send(&app, with_cookie(get("/api/config"), &forged)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send(&app, with_cookie(get("/api/config"), "v1.1.2.3.4")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_cookies_are_refused() {
    let app = app();
    // Signed with the right key, but issued two hours ago with a one-hour TTL.
    let auth = Auth::new(&Secret::new(TOKEN), 0, Duration::from_secs(3600));
    let old = auth.issue(now() - 7200);
    let a = send(&app, with_cookie(get("/api/config"), &old)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let fresh = auth.issue(now() - 60);
    let a = send(&app, with_cookie(get("/api/config"), &fresh)).await;
    assert_eq!(a.status, StatusCode::OK, "a cookie minted by another replica with the same token works");
}

#[tokio::test]
async fn a_cookie_signed_with_another_token_is_refused() {
    let app = app();
    let other = Auth::new(&Secret::new("another-token"), 0, Duration::from_secs(3600)).issue(now());
    let a = send(&app, with_cookie(get("/api/config"), &other)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_tokens_work_for_api_clients() {
    let app = app();
    assert_eq!(send(&app, bearer(get("/api/config"), TOKEN)).await.status, StatusCode::OK);
    let a = send(&app, bearer(get("/api/config"), "wrong")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    let mut basic = get("/api/config");
    basic.headers_mut().insert(header::AUTHORIZATION, "Basic dGVzdA==".parse().unwrap());
    assert_eq!(send(&app, basic).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_with_retry_after() {
    let (app, state) = app_with(vec![FakeWorker::new(0, 1, Mode::Ok)]);
    for i in 0..quiver_dashboard::state::LOGIN_BURST {
        let a = send(&app, post_json("/login", &serde_json::json!({"token": format!("guess{i}")}))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let a = send(&app, post_json("/login", &serde_json::json!({"token": "guess-again"}))).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=quiver_dashboard::state::LOGIN_REFILL.as_secs()).contains(&retry), "Retry-After {retry}");
    // Even the right token waits: a limited client learns nothing.
    let a = send(&app, post_json("/login", &serde_json::json!({"token": TOKEN}))).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // Bearer guesses are limited the same way.
    let a = send(&app, bearer(get("/api/config"), "guess")).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // The browser form is sent back to the form with the reason.
    let a = send(&app, form_login(TOKEN, true)).await;
    assert_eq!(a.header("location"), Some("/login?error=rate"));
    let metrics = state.metrics.encode();
    assert!(metrics.contains("quiver_dashboard_login_failures_total{reason=\"wrong_token\"} 5"), "{metrics}");
    assert!(metrics.contains("reason=\"rate_limited\""), "{metrics}");
}

#[tokio::test]
async fn rate_limits_follow_forwarded_for_only_behind_a_trusted_proxy() {
    let (app, _) = app_with_args(vec![FakeWorker::new(0, 1, Mode::Ok)], |mut a| {
        a.trust_proxy = true;
        a
    });
    let from = |ip: &str, token: &str| {
        let mut r = post_json("/login", &serde_json::json!({"token": token}));
        r.headers_mut().insert("x-forwarded-for", format!("6.6.6.6, {ip}").parse().unwrap());
        r
    };
    for _ in 0..quiver_dashboard::state::LOGIN_BURST {
        send(&app, from("10.0.0.1", "bad")).await;
    }
    assert_eq!(send(&app, from("10.0.0.1", "bad")).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        send(&app, from("10.0.0.2", TOKEN)).await.status,
        StatusCode::NO_CONTENT,
        "another client is not limited"
    );
}

#[tokio::test]
async fn logout_clears_the_cookie() {
    let app = app();
    let a = send(&app, Request::post("/logout").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/login"));
    let set = a.header("set-cookie").unwrap();
    assert!(set.starts_with("quiver_session=;") && set.contains("Max-Age=0"), "{set}");
}

#[tokio::test]
async fn a_bumped_session_epoch_revokes_existing_sessions() {
    let app = app();
    let cookie = login(&app).await;
    let (bumped, _) = app_with_args(vec![FakeWorker::new(0, 1, Mode::Ok)], |mut a| {
        a.session_epoch = 1;
        a
    });
    assert_eq!(send(&bumped, with_cookie(get("/api/config"), &cookie)).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_api_route_refuses_anonymous_calls() {
    let app = app();
    let routes = [
        (Method::GET, "/api/datasets"),
        (Method::GET, "/api/status"),
        (Method::POST, "/api/query"),
        (Method::POST, "/api/reload"),
        (Method::GET, "/api/config"),
        (Method::GET, "/api/query"),
        (Method::GET, "/api/no-such-route"),
        (Method::GET, "/api"),
    ];
    for (method, path) in routes {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let a = send(&app, req).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(a.error(), "authentication required", "{method} {path}");
    }
}

#[tokio::test]
async fn the_app_page_needs_a_session_but_assets_and_probes_do_not() {
    let app = app();
    let a = send(&app, get("/")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/login"));
    let cookie = login(&app).await;
    let a = send(&app, with_cookie(get("/"), &cookie)).await;
    if quiver_dashboard::routes::assets::file("index.html").is_some() {
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert!(a.header("content-type").unwrap().starts_with("text/html"));
    }
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
    assert_eq!(send(&app, get("/metrics")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_token_never_reaches_the_metrics() {
    let app = app();
    send(&app, post_json("/login", &serde_json::json!({"token": TOKEN}))).await;
    send(&app, bearer(get("/api/config"), TOKEN)).await;
    let m = String::from_utf8(send(&app, get("/metrics")).await.body.to_vec()).unwrap();
    assert!(!m.contains(TOKEN));
    assert!(m.contains("quiver_dashboard_http_requests_total{route=\"/login\",status=\"204\"} 1"), "{m}");
}
