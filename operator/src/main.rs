//! `quiver-operator`: watches DataClusters and reconciles them while holding the
//! leader Lease; serves `/healthz` and `/metrics`; stops gracefully on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use quiver_operator::activity::FlightActivity;
use quiver_operator::error::Error;
use quiver_operator::leader::{LeaseConfig, release, spawn_elector};
use quiver_operator::lifecycle::SystemClock;
use quiver_operator::metrics::Metrics;
use quiver_operator::reconcile::{Context, DEFAULT_CONCURRENCY, run};
use quiver_operator::validate::Defaults;
use tokio::sync::watch;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The Quiver operator: reconciles DataCluster resources into workers, dashboards and their policies.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "QUIVER_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Log format.
    #[arg(long, env = "QUIVER_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The operator's own namespace: where the leader Lease lives, and the only
    /// namespace whose operator pods the workers' NetworkPolicy admits.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    namespace: String,
    /// This replica's identity in the Lease; defaults to the host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, env = "QUIVER_LEASE_NAME", default_value = "quiver-operator")]
    lease_name: String,
    /// How long the Lease stays valid without renewal (renewed every third of it).
    #[arg(long, env = "QUIVER_LEASE_DURATION", default_value = "15s")]
    lease_duration: String,
    /// Reconcile without a Lease (a single replica, e.g. for local runs).
    #[arg(long, env = "QUIVER_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Worker image when a DataCluster names none.
    #[arg(long, env = "QUIVER_WORKER_IMAGE")]
    worker_image: Option<String>,
    /// Dashboard image when a DataCluster names none.
    #[arg(long, env = "QUIVER_DASHBOARD_IMAGE")]
    dashboard_image: Option<String>,
    /// The cluster's DNS domain.
    #[arg(long, env = "QUIVER_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// How often running clusters are re-examined (worker loads, query activity).
    #[arg(long, env = "QUIVER_POLL_INTERVAL", default_value = "30s")]
    poll_interval: String,
    /// Timeout of each worker `stats` call.
    #[arg(long, env = "QUIVER_STATS_TIMEOUT", default_value = "3s")]
    stats_timeout: String,
    /// Most DataClusters reconciled at once.
    #[arg(long, env = "QUIVER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

/// Validated configuration.
#[derive(Debug)]
struct Config {
    metrics_addr: SocketAddr,
    log_format: LogFormat,
    lease: Option<LeaseConfig>,
    defaults: Defaults,
    poll_interval: Duration,
    stats_timeout: Duration,
    concurrency: u16,
}

fn duration(flag: &str, value: &str) -> Result<Duration, Error> {
    let d = humantime::parse_duration(value).map_err(|e| {
        Error::Config(format!(
            "--{flag} {value:?} is not a duration (e.g. 30s, 2m): {e}"
        ))
    })?;
    if d.is_zero() {
        return Err(Error::Config(format!(
            "--{flag} {value:?} must be positive"
        )));
    }
    Ok(d)
}

impl TryFrom<Cli> for Config {
    type Error = Error;

    fn try_from(cli: Cli) -> Result<Config, Error> {
        let metrics_addr = cli.metrics_addr.parse().map_err(|e| {
            Error::Config(format!(
                "--metrics-addr {:?} is not HOST:PORT: {e}",
                cli.metrics_addr
            ))
        })?;
        let mut defaults = Defaults {
            cluster_domain: cli.cluster_domain,
            operator_namespace: cli.namespace.clone(),
            ..Defaults::default()
        };
        if let Some(i) = cli.worker_image {
            defaults.worker_image = i;
        }
        if let Some(i) = cli.dashboard_image {
            defaults.dashboard_image = i;
        }
        let lease_duration = duration("lease-duration", &cli.lease_duration)?;
        if lease_duration < Duration::from_secs(3) {
            return Err(Error::Config(format!(
                "--lease-duration {:?} must be at least 3s",
                cli.lease_duration
            )));
        }
        let identity = cli
            .identity
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("quiver-operator-{}", std::process::id()));
        Ok(Config {
            metrics_addr,
            log_format: cli.log_format,
            lease: (!cli.no_leader_election).then_some(LeaseConfig {
                name: cli.lease_name,
                namespace: cli.namespace,
                identity,
                duration: lease_duration,
            }),
            defaults,
            poll_interval: duration("poll-interval", &cli.poll_interval)?,
            stats_timeout: duration("stats-timeout", &cli.stats_timeout)?,
            concurrency: cli.concurrency,
        })
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::try_from(Cli::parse())?;
    init_logging(config.log_format);
    let metrics = Arc::new(Metrics::default());
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        termination().await;
        tracing::info!("termination requested; finishing reconciles in flight");
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding {}", config.metrics_addr))?;
    tracing::info!(addr = %config.metrics_addr, "serving /healthz and /metrics");
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(quiver_operator::http::serve(
        listener,
        metrics.clone(),
        async move {
            let _ = http_stop.wait_for(|s| *s).await;
        },
    ));

    let clock = Arc::new(SystemClock);
    let mut leadership = match &config.lease {
        Some(lease) => {
            tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity,
                "waiting for the leader Lease");
            spawn_elector(
                client.clone(),
                lease.clone(),
                clock.clone(),
                stop_rx.clone(),
            )
        }
        None => watch::channel(true).1,
    };

    // Wait to lead (or to be told to stop).
    let mut stop_wait = stop_rx.clone();
    tokio::select! {
        r = leadership.wait_for(|l| *l) => { r.context("leader election stopped")?; }
        _ = stop_wait.wait_for(|s| *s) => {
            let _ = http.await;
            return Ok(());
        }
    }
    metrics.leader.set(1);
    tracing::info!("leading: reconciling DataClusters");

    let activity = Arc::new(FlightActivity::new(
        client.clone(),
        config.defaults.cluster_domain.clone(),
        config.stats_timeout,
    ));
    let mut ctx = Context::new(
        client.clone(),
        activity,
        clock,
        config.defaults.clone(),
        metrics.clone(),
        config.poll_interval,
    );
    ctx.concurrency = config.concurrency;
    let ctx = Arc::new(ctx);
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<bool>();
    let mut watch_leadership = leadership.clone();
    let mut watch_stop = stop_rx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = watch_leadership.wait_for(|l| !*l) => { let _ = lost_tx.send(true); }
            _ = watch_stop.wait_for(|s| *s) => { let _ = lost_tx.send(false); }
        }
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    run(ctx, async move {
        let lost = lost_rx.await.unwrap_or(false);
        let _ = done_tx.send(lost);
    })
    .await;
    metrics.leader.set(0);
    let lost = done_rx.await.unwrap_or(false);

    if let Some(lease) = &config.lease
        && !lost
        && let Err(e) = release(&client, lease).await
    {
        tracing::warn!(error = %e, "could not release the leader Lease; a standby takes over when it expires");
    }
    let _ = http.await;
    if lost {
        // Another replica may lead now: exit so Kubernetes restarts this one as a standby.
        anyhow::bail!("lost the leader Lease; exiting");
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("quiver-operator").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_make_a_valid_config() {
        let c = Config::try_from(cli(&["--identity", "op-0"])).unwrap();
        assert_eq!(c.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        let lease = c.lease.unwrap();
        assert_eq!(
            (lease.name.as_str(), lease.identity.as_str()),
            ("quiver-operator", "op-0")
        );
        assert_eq!(lease.duration, Duration::from_secs(15));
        assert_eq!(c.poll_interval, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_quoted_in_the_error() {
        let e = Config::try_from(cli(&["--metrics-addr", "eighty"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"eighty\""), "{e}");
        let e = Config::try_from(cli(&["--poll-interval", "often"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"often\""), "{e}");
        let e = Config::try_from(cli(&["--lease-duration", "1s"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 3s"), "{e}");
    }

    #[test]
    fn leader_election_can_be_turned_off_and_images_overridden() {
        let c = Config::try_from(cli(&[
            "--no-leader-election",
            "--worker-image",
            "w:1",
            "--dashboard-image",
            "d:1",
        ]))
        .unwrap();
        assert!(c.lease.is_none());
        assert_eq!(
            (
                c.defaults.worker_image.as_str(),
                c.defaults.dashboard_image.as_str()
            ),
            ("w:1", "d:1")
        );
    }
}
