//! Quiver dashboard: a stateless web app in front of the workers.
//!
//! ```text
//! browser ──cookie/Bearer──▶ routes (auth guard, validation against the catalogue)
//!   ──▶ fanout: one replica per shard in parallel over Flight (deadline, one
//!       retry; another replica on failure, hedged after the shard's p95)
//!   ──▶ merge: sum one consistent sharding, report missing / mixed shards
//!   ──▶ shade: mix category colours, equalise alpha, spread, PNG
//!   ──▶ JSON (histograms, counts, data: URL image, shard report, timings)
//! ```
//! Sessions live in HMAC-signed cookies derived from the token, so replicas
//! share nothing; workers come from a static list or a headless Service's DNS.
#![warn(missing_docs)]

pub mod auth;
pub mod catalog;
pub mod config;
pub mod conn;
pub mod discovery;
pub mod error;
pub mod fanout;
pub mod flight;
pub mod merge;
pub mod metrics;
pub mod operator;
pub mod query;
pub mod replicas;
pub mod resolve;
pub mod routes;
pub mod secret;
pub mod shade;
pub mod state;
pub mod tools;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::{Error, Result};
pub use state::AppState;

/// The dashboard's router over a state.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `app` on `listener` with the default [`conn::Limits`] until `shutdown`
/// resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with(listener, app, conn::Limits::default(), shutdown).await
}

/// Serves `app` on `listener` within `limits` (header and body read times,
/// open connections) until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: conn::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    conn::serve(listener, app, limits, shutdown).await?;
    Ok(())
}

/// Runs the dashboard for a configuration on `listener` until `shutdown` resolves.
pub async fn run(
    config: config::Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let discovery =
        discovery::Discovery::start(config.workers.clone(), resolve::NameResolver::new(config.dns_server), stop_rx)
            .await;
    tracing::info!(
        addr = %listener.local_addr()?, workers = %discovery.describe(), found = discovery.endpoints().len(),
        cookie_secure = config.cookie_secure, "dashboard listening"
    );
    match routes::assets::basemap_detail() {
        Ok(()) => tracing::info!(tiles = ?config.tile_url, "map: detailed offline basemap embedded"),
        Err(why) => tracing::warn!(
            tiles = ?config.tile_url,
            "map: the detailed offline basemap is not in this build ({why}); offline the map draws coarse country \
             outlines. Build it with `npm ci --prefix dashboard/basemap && node dashboard/basemap/build.mjs`, then rebuild"
        ),
    }
    let connector =
        Arc::new(flight::FlightConnector::new(config.worker_token.as_ref().map(|t| t.expose().to_string())));
    let state = AppState::new(&config, discovery, connector);
    let result = serve_with(listener, app(state), config.limits, shutdown).await;
    let _ = stop_tx.send(true);
    tracing::info!("dashboard stopped");
    result
}
