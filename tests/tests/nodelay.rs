//! Every server of Quiver turns Nagle's algorithm off on the sockets it
//! accepts: with it on, a small answer waits for the client's delayed ACK
//! (about 40 ms on Linux) before it leaves. The option is read back from the
//! server's own accepted socket, found among this process's descriptors.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// TCP_NODELAY of the socket this process accepted on `server` from `client`,
/// or `None` when no such socket is open.
fn accepted_nodelay(server: SocketAddr, client: SocketAddr) -> Option<bool> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor was open a moment ago and is only borrowed for
        // two getsockname/getpeername calls and one getsockopt; a descriptor
        // closed meanwhile makes them fail, which is skipped.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let (Ok(local), Ok(peer)) = (sock.local_addr(), sock.peer_addr()) else { continue };
        if local.as_socket() == Some(server) && peer.as_socket() == Some(client) {
            return sock.tcp_nodelay().ok();
        }
    }
    None
}

/// Connects to `server`, sends the opening bytes of a request (so the server
/// has accepted and is serving the connection, and keeps it open) and reads
/// the option back.
async fn nodelay_of(server: SocketAddr, request: &[u8]) -> bool {
    let mut client = TcpStream::connect(server).await.expect("connect");
    client.write_all(request).await.expect("write");
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), client.read(&mut first))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    let local = client.local_addr().expect("local addr");
    accepted_nodelay(server, local).expect("the server's accepted socket is among this process's descriptors")
}

const GET_HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
/// The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server
/// answers with its own SETTINGS and keeps the connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn the_lookup_tells_nagle_on_from_nagle_off() {
    // The check itself: a plain accepted socket has Nagle on, until it is turned off.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let local = client.local_addr().unwrap();
        assert_eq!(accepted_nodelay(server, local), Some(false));
        accepted.set_nodelay(true).unwrap();
        assert_eq!(accepted_nodelay(server, local), Some(true));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_flight_and_http_sockets_have_nodelay() {
    let cfg = quiver_worker::server::WorkerConfig {
        datasets: vec![],
        shard: quiver_worker::source::ShardId { index: 0, count: 1 },
        token: None,
        load: Default::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    };
    let worker = quiver_worker::server::spawn(cfg).await.expect("worker");
    let http: SocketAddr = worker.http_url().trim_start_matches("http://").parse().unwrap();
    assert!(nodelay_of(http, GET_HEALTH).await, "worker HTTP socket has Nagle on");
    assert!(nodelay_of(worker.flight_addr(), H2_PREFACE).await, "worker Flight socket has Nagle on");
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_sockets_have_nodelay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quiver_dashboard::serve(listener, app, async move {
        let _ = rx.await;
    }));
    assert!(nodelay_of(addr, GET_HEALTH).await, "dashboard socket has Nagle on");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_metrics_sockets_have_nodelay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = std::sync::Arc::new(quiver_operator::metrics::Metrics::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quiver_operator::http::serve(listener, metrics, async move {
        let _ = rx.await;
    }));
    assert!(nodelay_of(addr, GET_HEALTH).await, "operator metrics socket has Nagle on");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
