//! The dashboard on a real socket: peer addresses reach the rate limiter, and
//! shutdown is graceful.

use crate::common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request on a fresh connection; returns the status code.
async fn status_of(addr: std::net::SocketAddr, raw: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn login_request(token: &str) -> String {
    let body = format!("{{\"token\":\"{token}\"}}");
    format!(
        "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_served_dashboard_limits_by_peer_address_and_stops_gracefully() {
    let (app, state) = app_with(vec![FakeWorker::new(0, 1, Mode::Ok)]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quiver_dashboard::serve(listener, app, async move {
        let _ = rx.await;
    }));
    assert_eq!(status_of(addr, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await, 200);
    assert_eq!(status_of(addr, &login_request(TOKEN)).await, 204);
    for _ in 0..quiver_dashboard::state::LOGIN_BURST {
        assert_eq!(status_of(addr, &login_request("wrong")).await, 401);
    }
    assert_eq!(status_of(addr, &login_request("wrong")).await, 429, "127.0.0.1 is limited");
    let now = tokio::time::Instant::now();
    assert!(state.limiter.check("127.0.0.1".parse().unwrap(), now).is_err(), "keyed by the peer address");
    assert!(state.limiter.check("0.0.0.0".parse().unwrap(), now).is_ok(), "not by the fallback");
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("the server stops").unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed");
}
