//! The operator's Kubernetes API client: kube's usual stack (TLS from the
//! kubeconfig, base URI, authentication) over a connector that turns TCP
//! keepalive on, so a connection whose peer vanished (a node or load balancer
//! dropped it without a FIN) fails within about a minute instead of hanging a
//! watch or a call until the kernel gives up hours later; and with a read
//! timeout, so a server that accepts a request and never answers fails it.
//! kube's own `Client::try_from(Config)` offers no keepalive setting.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::{Client, Config};
use tower::ServiceBuilder;

use crate::error::{Error, Result};

/// Idle time before the first keepalive probe.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection is dropped (so a dead peer is
/// noticed 30 s + 3 × 10 s after the last byte).
pub const KEEPALIVE_PROBES: u32 = 3;
/// Default read timeout of the operator's client: the longest a response may
/// stay silent. Above the API server's watch bookmark period (about a
/// minute), so open watches are not cut.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A client for `config` with TCP keepalive. `config.read_timeout`, when
/// unset, becomes [`READ_TIMEOUT`] (counted from each request written:
/// `reset_reader_on_write`), and `config.connect_timeout` 10 s.
pub fn build(mut config: Config) -> Result<Client> {
    // The TLS connector below needs a process-wide rustls provider.
    quiver_worker::tls::install_crypto_provider();
    config.read_timeout.get_or_insert(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    config.connect_timeout.get_or_insert(Duration::from_secs(10));

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(KEEPALIVE_IDLE));
    http.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
    http.set_keepalive_retries(Some(KEEPALIVE_PROBES));
    let tls = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| Error::Config(format!("the Kubernetes client's TLS settings: {e}")))?;
    let mut connector = hyper_timeout::TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build::<_, kube::client::Body>(connector);
    let auth = config.auth_layer().map_err(|e| Error::Config(format!("the Kubernetes client's credentials: {e}")))?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(auth)
        // One error type under every authentication layer.
        .map_err(|e: hyper_util::client::legacy::Error| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::os::fd::BorrowedFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// SO_KEEPALIVE of this process's socket connected from `local` to `peer`.
    fn keepalive_of(local: SocketAddr, peer: SocketAddr) -> Option<bool> {
        for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
            if !is_socket {
                continue;
            }
            // SAFETY: the descriptor was open a moment ago and is only
            // borrowed for getsockname / getpeername / getsockopt; one closed
            // meanwhile makes them fail, and is skipped.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&fd);
            let (Ok(l), Ok(p)) = (sock.local_addr(), sock.peer_addr()) else {
                continue;
            };
            if l.as_socket() == Some(local) && p.as_socket() == Some(peer) {
                return sock.keepalive().ok();
            }
        }
        None
    }

    /// Serves one connection: reads a request, answers `/version`, then holds
    /// the connection open; returns the client's address.
    async fn serve_once(listener: tokio::net::TcpListener) -> SocketAddr {
        let (mut s, from) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = r#"{"major":"1","minor":"35","gitVersion":"v1.35.0"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        from
    }

    fn config_for(addr: SocketAddr) -> Config {
        Config::new(format!("http://{addr}").parse().unwrap())
    }

    #[tokio::test]
    async fn the_api_connection_has_tcp_keepalive_and_timeouts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let accepted = tokio::spawn(serve_once(listener));
        let client = build(config_for(server)).unwrap();
        let version = client.apiserver_version().await.unwrap();
        assert_eq!(version.git_version, "v1.35.0");
        let from = accepted.await.unwrap();
        assert_eq!(
            keepalive_of(from, server),
            Some(true),
            "the client's connection to the API server has SO_KEEPALIVE"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_the_call_at_the_read_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        // Accepts, reads the request, never answers.
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let mut config = config_for(server);
        config.read_timeout = Some(Duration::from_millis(300));
        let client = build(config).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
            .await
            .expect("the read timeout ends the call, not the test's deadline");
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
