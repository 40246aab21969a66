//! Running a worker: the Flight and HTTP listeners over the shared
//! [`WorkerState`] (in [`crate::state`]).
//!
//! [`serve`] takes bound listeners and a shutdown future, so tests and the
//! demo run workers in-process on 127.0.0.1:0; [`spawn`] does that for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::flight::auth::BearerAuth;
use crate::flight::service::Service;
pub use crate::state::{WorkerConfig, WorkerState};

/// Serves Flight and HTTP on the given listeners until `shutdown` resolves.
/// Starts loading every dataset at once.
pub async fn serve(
    cfg: WorkerConfig,
    flight: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    cfg.validate()?;
    let state = Arc::new(WorkerState::new(&cfg));
    state.load_all();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    tracing::info!(
        flight = %flight.local_addr()?, http = %http.local_addr()?,
        shard = cfg.shard.index, shards = cfg.shard.count, datasets = cfg.datasets.len(),
        auth = cfg.token.is_some(), "worker listening"
    );
    let svc = FlightServiceServer::new(Service::new(state.clone()))
        .max_decoding_message_size(1 << 20)
        .max_encoding_message_size(256 << 20);
    let grpc = tonic::service::interceptor::InterceptedService::new(svc, BearerAuth::new(cfg.token.clone()));
    let flight_task = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        // A connection that never completes the HTTP/2 preface has no other time limit:
        // every connection is asked to go away after 10 minutes (clients reconnect) and
        // cut 30 s later, so idle or half-open sockets cannot pile up.
        .max_connection_age(std::time::Duration::from_secs(600))
        .max_connection_age_grace(std::time::Duration::from_secs(30))
        .add_service(grpc)
        // `Server::tcp_nodelay` applies only to listeners tonic binds itself:
        // accepted sockets get TCP_NODELAY here, or every answer waits on
        // Nagle's algorithm and the client's delayed ACK (about 40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(flight)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60))),
            wait(rx.clone()),
        );
    let http = axum::serve::ListenerExt::tap_io(http, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let http_task = axum::serve(http, crate::health::router(state.clone())).with_graceful_shutdown(wait(rx.clone()));
    let (f, h) = tokio::join!(flight_task, http_task);
    f.map_err(|e| Error::Io(std::io::Error::other(format!("flight server: {e}"))))?;
    h?;
    tracing::info!("worker stopped");
    Ok(())
}

/// A worker running in this process.
#[derive(Debug)]
pub struct RunningWorker {
    flight: SocketAddr,
    http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningWorker {
    /// `http://127.0.0.1:PORT` of the Flight endpoint.
    pub fn flight_url(&self) -> String {
        format!("http://{}", self.flight)
    }
    /// `http://127.0.0.1:PORT` of the HTTP side port.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }
    /// Flight socket address.
    pub fn flight_addr(&self) -> SocketAddr {
        self.flight
    }
    /// Stops the worker and waits for it.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
    }
    /// Stops accepting connections at once, without a graceful shutdown.
    /// Connections already open keep being served by their own tasks (tonic
    /// spawns them); to cut those too, put a proxy in front, as the
    /// dashboard's fault tests do, or run the worker as a process and kill it.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Starts a worker on 127.0.0.1 with ephemeral ports.
pub async fn spawn(cfg: WorkerConfig) -> Result<RunningWorker> {
    spawn_on(cfg, "127.0.0.1:0".parse().expect("addr"), "127.0.0.1:0".parse().expect("addr")).await
}

/// Starts a worker on the given addresses (port 0 picks one).
pub async fn spawn_on(cfg: WorkerConfig, flight: SocketAddr, http: SocketAddr) -> Result<RunningWorker> {
    cfg.validate()?;
    let fl = TcpListener::bind(flight).await?;
    let hl = TcpListener::bind(http).await?;
    let (flight, http) = (fl.local_addr()?, hl.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(cfg, fl, hl, async move {
        let _ = rx.await;
    }));
    Ok(RunningWorker { flight, http, stop: Some(tx), task })
}
