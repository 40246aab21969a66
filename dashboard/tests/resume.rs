//! Resume through the operator: the dashboard holds no Kubernetes credential;
//! it asks the operator's resume endpoint (here a fake one on 127.0.0.1),
//! presenting its login token.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use common::*;
use serde_json::json;

#[derive(Default)]
struct FakeOperator {
    suspended: Mutex<bool>,
    calls: Mutex<Vec<(String, Option<String>)>>,
}

async fn fake_operator() -> (String, Arc<FakeOperator>) {
    let op = Arc::new(FakeOperator { suspended: Mutex::new(true), ..Default::default() });
    let auth = |h: &HeaderMap| h.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
    let app = Router::new()
        .route(
            "/v1/namespaces/analytics/dataclusters/demo/status",
            axum::routing::get(move |State(op): State<Arc<FakeOperator>>, h: HeaderMap| async move {
                op.calls.lock().unwrap().push(("status".into(), auth(&h)));
                let suspended = *op.suspended.lock().unwrap();
                Json(json!({"phase": if suspended { "Suspended" } else { "Ready" }, "suspended": suspended,
                            "suspendReason": suspended.then_some("Idle"), "readyWorkers": 0, "desiredWorkers": 0}))
            }),
        )
        .route(
            "/v1/namespaces/analytics/dataclusters/demo/resume",
            post(move |State(op): State<Arc<FakeOperator>>, h: HeaderMap| async move {
                op.calls.lock().unwrap().push(("resume".into(), auth(&h)));
                *op.suspended.lock().unwrap() = false;
                (StatusCode::ACCEPTED, Json(json!({"resumeRequestedAt": "2026-01-05T12:00:00Z"})))
            }),
        )
        .with_state(op.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, op)
}

#[tokio::test]
async fn a_suspended_cluster_is_reported_and_resumed_through_the_operator_with_the_login_token() {
    let (url, op) = fake_operator().await;
    let (app, _) = app_with_args(vec![FakeWorker::new(0, 1, Mode::Down)], |a| quiver_dashboard::config::ServeArgs {
        cluster: Some("demo".into()),
        namespace: Some("analytics".into()),
        operator_url: Some(url.clone()),
        ..a
    });
    let s = send(&app, bearer(get("/api/status"), TOKEN)).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.json()["suspended"], true);

    let r = send(&app, bearer(Request::post("/api/resume").body(axum::body::Body::empty()).unwrap(), TOKEN)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&r.body));
    let s = send(&app, bearer(get("/api/status"), TOKEN)).await;
    assert_eq!(s.json()["suspended"], false);

    let calls = op.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().filter(|(c, _)| c == "resume").count(), 1);
    let expected = format!("Bearer {TOKEN}");
    assert!(calls.iter().all(|(_, a)| a.as_deref() == Some(expected.as_str())), "{calls:?}");
}

#[tokio::test]
async fn resume_needs_a_session_and_an_operator() {
    let (url, op) = fake_operator().await;
    let (managed, _) =
        app_with_args(vec![FakeWorker::new(0, 1, Mode::Down)], |a| quiver_dashboard::config::ServeArgs {
            cluster: Some("demo".into()),
            namespace: Some("analytics".into()),
            operator_url: Some(url.clone()),
            ..a
        });
    let r = send(&managed, Request::post("/api/resume").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(op.calls.lock().unwrap().is_empty());

    // Outside Kubernetes (no operator): nothing to resume, and never "suspended".
    let plain = app();
    let r = send(&plain, bearer(Request::post("/api/resume").body(axum::body::Body::empty()).unwrap(), TOKEN)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&plain, bearer(get("/api/status"), TOKEN)).await.json()["suspended"], false);
}
