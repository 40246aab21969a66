//! The operator's resume endpoint over real HTTP, against the mocked API
//! server: the dashboard's login token opens it, and the only write it makes
//! is the resume annotation.

use crate::common;

use std::sync::Arc;

use common::apiserver::FakeApi;
use k8s_openapi::jiff::Timestamp;
use quiver_operator::lifecycle::Clock;
use quiver_operator::resume::{ResumeState, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DC: &str = "/apis/quiver.dev/v1alpha1/namespaces/analytics/dataclusters/demo";

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        "2026-01-05T12:00:00Z".parse().unwrap()
    }
}

async fn start() -> (std::net::SocketAddr, FakeApi) {
    let (client, api) = FakeApi::start();
    let mut dc = serde_json::to_value(common::fixture()).unwrap();
    dc["status"] = json!({"phase": "Suspended", "suspendReason": "Idle", "desiredWorkers": 0, "readyWorkers": 0});
    api.insert(DC, dc);
    api.insert(
        "/api/v1/namespaces/analytics/secrets/demo-dashboard-token",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "demo-dashboard-token", "namespace": "analytics"},
               "data": {"token": "ZGFzaGJvYXJkLWxvZ2luLXRva2Vu"}}), // "dashboard-login-token"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ResumeState { client, clock: Arc::new(FixedClock) };
    tokio::spawn(serve(listener, state, std::future::pending()));
    (addr, api)
}

/// One HTTP/1.1 request; returns the status code and the JSON body.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: operator\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

const RESUME: &str = "/v1/namespaces/analytics/dataclusters/demo/resume";
const STATUS: &str = "/v1/namespaces/analytics/dataclusters/demo/status";

#[tokio::test]
async fn the_dashboard_token_resumes_its_cluster_by_setting_only_the_annotation() {
    let (addr, api) = start().await;
    let (code, body) = call(addr, "GET", STATUS, Some("dashboard-login-token")).await;
    assert_eq!(code, 200);
    assert_eq!(body["suspended"], true);
    assert_eq!(body["suspendReason"], "Idle");

    let (code, body) = call(addr, "POST", RESUME, Some("dashboard-login-token")).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["resumeRequestedAt"], "2026-01-05T12:00:00Z");
    let writes = api.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(writes[0].path, DC);
    assert_eq!(
        writes[0].body,
        Some(json!({"metadata": {"annotations": {"quiver.dev/resumeRequestedAt": "2026-01-05T12:00:00Z"}}})),
        "nothing but the annotation"
    );
}

#[tokio::test]
async fn anything_but_that_token_is_refused_and_writes_nothing() {
    let (addr, api) = start().await;
    for token in [None, Some("wrong"), Some("dashboard-login-toke"), Some("")] {
        let (code, _) = call(addr, "POST", RESUME, token).await;
        assert_eq!(code, 401, "{token:?}");
        let (code, _) = call(addr, "GET", STATUS, token).await;
        assert_eq!(code, 401, "{token:?}");
    }
    // Another cluster's name with this token: unknown here.
    let (code, _) =
        call(addr, "POST", "/v1/namespaces/analytics/dataclusters/other/resume", Some("dashboard-login-token")).await;
    assert_eq!(code, 404);
    assert!(api.writes().is_empty());
}
