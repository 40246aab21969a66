//! `quiver-operator`: watches DataClusters and reconciles them while holding the
//! leader Lease; serves `/healthz` and `/metrics`; stops gracefully on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use quiver_operator::activity::FlightActivity;
use quiver_operator::error::Error;
use quiver_operator::leader::{Ending, LeaseConfig, await_end, release, spawn_elector};
use quiver_operator::lifecycle::SystemClock;
use quiver_operator::metrics::Metrics;
use quiver_operator::reconcile::{Context, DEFAULT_CONCURRENCY, run};
use quiver_operator::validate::Defaults;
use quiver_worker::cli::{LogFormat, init_logging, parse_duration, shutdown_signal};
use tokio::sync::watch;

/// The Quiver operator: reconciles DataCluster resources into workers, dashboards and their policies.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "QUIVER_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Address of the resume endpoint dashboards call (every replica serves it).
    #[arg(long, env = "QUIVER_RESUME_ADDR", default_value = "0.0.0.0:8081")]
    resume_addr: String,
    /// URL dashboards reach the resume endpoint at, e.g.
    /// `http://quiver-operator-resume.quiver-system.svc:8081`; without it
    /// dashboards cannot resume a suspended cluster.
    #[arg(long, env = "QUIVER_RESUME_URL")]
    resume_url: Option<String>,
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
    /// Pod settings of every cluster's workers where its spec leaves them empty,
    /// as JSON: nodeSelector, tolerations, affinity, topologySpreadConstraints,
    /// priorityClassName, podLabels, podAnnotations.
    #[arg(long, env = "QUIVER_WORKER_POD_DEFAULTS")]
    worker_pod_defaults: Option<String>,
    /// The same for every cluster's dashboards.
    #[arg(long, env = "QUIVER_DASHBOARD_POD_DEFAULTS")]
    dashboard_pod_defaults: Option<String>,
    /// How a re-shard replaces the workers when a DataCluster's
    /// `spec.workers.rollout.strategy` is empty: `Surge` (load the new shards
    /// beside the old ones, where memory allows) or `Replace`.
    #[arg(long, env = "QUIVER_WORKER_ROLLOUT_STRATEGY", default_value = "Surge")]
    worker_rollout_strategy: String,
    /// Workers per shard when a DataCluster's `spec.workers.replicasPerShard`
    /// is empty (1 to 5; each replica holds a full copy of its shard).
    #[arg(long, env = "QUIVER_WORKER_REPLICAS_PER_SHARD", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=quiver_operator::validate::MAX_REPLICAS_PER_SHARD as i64))]
    worker_replicas_per_shard: i32,
    /// Most DataClusters reconciled at once.
    #[arg(long, env = "QUIVER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

/// Validated configuration.
#[derive(Debug)]
struct Config {
    metrics_addr: SocketAddr,
    resume_addr: SocketAddr,
    log_format: LogFormat,
    lease: Option<LeaseConfig>,
    defaults: Defaults,
    poll_interval: Duration,
    stats_timeout: Duration,
    concurrency: u16,
}

fn pod_defaults(flag: &str, json: &str) -> Result<quiver_operator::crd::PodSettings, Error> {
    serde_json::from_str(json).map_err(|e| {
        Error::Config(format!(
            "--{flag} {json:?} is not a JSON object of pod settings (nodeSelector, tolerations, \
             affinity, topologySpreadConstraints, priorityClassName, podLabels, podAnnotations): {e}"
        ))
    })
}

impl TryFrom<Cli> for Config {
    type Error = Error;

    fn try_from(cli: Cli) -> Result<Config, Error> {
        let metrics_addr = cli
            .metrics_addr
            .parse()
            .map_err(|e| Error::Config(format!("--metrics-addr {:?} is not HOST:PORT: {e}", cli.metrics_addr)))?;
        let resume_addr = cli
            .resume_addr
            .parse()
            .map_err(|e| Error::Config(format!("--resume-addr {:?} is not HOST:PORT: {e}", cli.resume_addr)))?;
        if let Some(u) = &cli.resume_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(Error::Config(format!("--resume-url {u:?} must be an http(s) URL")));
        }
        let mut defaults = Defaults {
            resume_url: cli.resume_url.clone(),
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
        if let Some(json) = &cli.worker_pod_defaults {
            defaults.worker_pod = pod_defaults("worker-pod-defaults", json)?;
        }
        if let Some(json) = &cli.dashboard_pod_defaults {
            defaults.dashboard_pod = pod_defaults("dashboard-pod-defaults", json)?;
        }
        defaults.rollout_strategy = match cli.worker_rollout_strategy.as_str() {
            "Surge" => quiver_operator::crd::RolloutStrategy::Surge,
            "Replace" => quiver_operator::crd::RolloutStrategy::Replace,
            other => {
                return Err(Error::Config(format!("--worker-rollout-strategy {other:?} must be Surge or Replace")));
            }
        };
        defaults.replicas_per_shard = cli.worker_replicas_per_shard;
        let lease_duration = parse_duration("lease-duration", &cli.lease_duration).map_err(Error::Config)?;
        if lease_duration < Duration::from_secs(3) {
            return Err(Error::Config(format!("--lease-duration {:?} must be at least 3s", cli.lease_duration)));
        }
        let identity = cli
            .identity
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("quiver-operator-{}", std::process::id()));
        Ok(Config {
            metrics_addr,
            resume_addr,
            log_format: cli.log_format,
            lease: (!cli.no_leader_election).then_some(LeaseConfig {
                name: cli.lease_name,
                namespace: cli.namespace,
                identity,
                duration: lease_duration,
            }),
            defaults,
            poll_interval: parse_duration("poll-interval", &cli.poll_interval).map_err(Error::Config)?,
            stats_timeout: parse_duration("stats-timeout", &cli.stats_timeout).map_err(Error::Config)?,
            concurrency: cli.concurrency,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    quiver_worker::tls::install_crypto_provider();
    let config = Config::try_from(Cli::parse())?;
    init_logging(config.log_format, "info,kube=warn,tower=warn,hyper=warn");
    let metrics = Arc::new(Metrics::default());
    let kube_config = kube::Config::infer().await.context("reading the Kubernetes client configuration")?;
    // TCP keepalive and a read timeout (client::build): a half-open
    // connection fails within about a minute instead of hanging a watch.
    let client = quiver_operator::client::build(kube_config.clone()).context("connecting to the Kubernetes API")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("termination requested; finishing reconciles in flight");
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding {}", config.metrics_addr))?;
    tracing::info!(addr = %config.metrics_addr, "serving /healthz and /metrics");
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(quiver_operator::http::serve(listener, metrics.clone(), async move {
        let _ = http_stop.wait_for(|s| *s).await;
    }));

    let clock = Arc::new(SystemClock);
    let resume_listener = tokio::net::TcpListener::bind(config.resume_addr)
        .await
        .with_context(|| format!("binding {}", config.resume_addr))?;
    tracing::info!(addr = %config.resume_addr, "serving the resume endpoint");
    let mut resume_stop = stop_rx.clone();
    tokio::spawn(quiver_operator::resume::serve(
        resume_listener,
        quiver_operator::resume::ResumeState { client: client.clone(), clock: clock.clone() },
        async move {
            let _ = resume_stop.wait_for(|s| *s).await;
        },
    ));
    // Without election this replica always leads; the sender lives as long as main.
    let (_always_leading, always) = watch::channel(true);
    let mut leadership = match &config.lease {
        Some(lease) => {
            tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity,
                "waiting for the leader Lease");
            // Its own client, whose reads time out: a half-open connection
            // must fail the round, not hang it. (Rounds are also cut off at the
            // renew deadline whatever the client does.)
            let mut lease_config = kube_config.clone();
            lease_config.read_timeout = Some(lease.renew_every());
            lease_config.reset_reader_on_write = true;
            let lease_client = quiver_operator::client::build(lease_config)
                .context("connecting to the Kubernetes API for the Lease")?;
            spawn_elector(lease_client, lease.clone(), clock.clone(), stop_rx.clone())
        }
        None => always,
    };

    // Wait to lead (or to be told to stop: that wins when both happen).
    let mut stop_wait = stop_rx.clone();
    tokio::select! {
        biased;
        _ = stop_wait.wait_for(|s| *s) => {
            let _ = http.await;
            return Ok(());
        }
        r = leadership.wait_for(|l| *l) => { r.context("leader election stopped")?; }
    }
    metrics.leader.set(1);
    tracing::info!("leading: reconciling DataClusters");

    let activity = Arc::new(FlightActivity::new(config.defaults.cluster_domain.clone(), config.stats_timeout));
    let mut ctx =
        Context::new(client.clone(), activity, clock, config.defaults.clone(), metrics.clone(), config.poll_interval);
    ctx.concurrency = config.concurrency;
    let ctx = Arc::new(ctx);
    let ending = await_end(leadership.clone(), stop_rx.clone());
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<Ending>();
    let controller = tokio::spawn(run(ctx, async move {
        let _ = ended_tx.send(ending.await);
    }));
    let ending = ended_rx.await.unwrap_or(Ending::Lost);
    if ending == Ending::Lost {
        // The renew deadline passed: a standby may take the Lease once it has
        // seen it unchanged for its duration. Stop writing now, without
        // waiting for reconciles in flight, and come back as a standby.
        metrics.leader.set(0);
        tracing::error!("lost the leader Lease; exiting so that no reconcile outlives it");
        std::process::exit(1);
    }
    // Stopped: reconciles in flight finish (graceful shutdown), then the Lease is released.
    let _ = controller.await;
    metrics.leader.set(0);
    if let Some(lease) = &config.lease
        && let Err(e) = release(&client, lease).await
    {
        tracing::warn!(error = %e, "could not release the leader Lease; a standby takes over when it expires");
    }
    let _ = http.await;
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
    fn the_rollout_strategy_default_is_surge_and_takes_replace() {
        let c = Config::try_from(cli(&["--identity", "op-0"])).unwrap();
        assert_eq!(c.defaults.rollout_strategy, quiver_operator::crd::RolloutStrategy::Surge);
        let c = Config::try_from(cli(&["--identity", "op-0", "--worker-rollout-strategy", "Replace"])).unwrap();
        assert_eq!(c.defaults.rollout_strategy, quiver_operator::crd::RolloutStrategy::Replace);
        assert!(Config::try_from(cli(&["--identity", "op-0", "--worker-rollout-strategy", "BlueGreen"])).is_err());
    }

    #[test]
    fn the_replicas_per_shard_default_is_one_and_bounded() {
        let c = Config::try_from(cli(&["--identity", "op-0"])).unwrap();
        assert_eq!(c.defaults.replicas_per_shard, 1);
        let c = Config::try_from(cli(&["--identity", "op-0", "--worker-replicas-per-shard", "2"])).unwrap();
        assert_eq!(c.defaults.replicas_per_shard, 2);
        for bad in ["0", "6", "two"] {
            let parsed =
                Cli::try_parse_from(["quiver-operator", "--identity", "op-0", "--worker-replicas-per-shard", bad]);
            assert!(parsed.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn defaults_make_a_valid_config() {
        let c = Config::try_from(cli(&["--identity", "op-0"])).unwrap();
        assert_eq!(c.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        let lease = c.lease.unwrap();
        assert_eq!((lease.name.as_str(), lease.identity.as_str()), ("quiver-operator", "op-0"));
        assert_eq!(lease.duration, Duration::from_secs(15));
        assert_eq!(c.poll_interval, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_quoted_in_the_error() {
        let e = Config::try_from(cli(&["--metrics-addr", "eighty"])).unwrap_err().to_string();
        assert!(e.contains("\"eighty\""), "{e}");
        let e = Config::try_from(cli(&["--poll-interval", "often"])).unwrap_err().to_string();
        assert!(e.contains("\"often\""), "{e}");
        let e = Config::try_from(cli(&["--lease-duration", "1s"])).unwrap_err().to_string();
        assert!(e.contains("at least 3s"), "{e}");
    }

    #[test]
    fn cluster_pod_defaults_are_read_from_json_and_bad_json_is_quoted() {
        let c = Config::try_from(cli(&[
            "--worker-pod-defaults",
            r#"{"nodeSelector": {"pool": "big"}, "priorityClassName": "analytics"}"#,
        ]))
        .unwrap();
        assert_eq!(c.defaults.worker_pod.node_selector["pool"], "big");
        assert_eq!(c.defaults.worker_pod.priority_class_name.as_deref(), Some("analytics"));
        let e = Config::try_from(cli(&["--dashboard-pod-defaults", "{nodeSelector"])).unwrap_err().to_string();
        assert!(e.contains("\"{nodeSelector\""), "{e}");
    }

    #[test]
    fn leader_election_can_be_turned_off_and_images_overridden() {
        let c = Config::try_from(cli(&["--no-leader-election", "--worker-image", "w:1", "--dashboard-image", "d:1"]))
            .unwrap();
        assert!(c.lease.is_none());
        assert_eq!((c.defaults.worker_image.as_str(), c.defaults.dashboard_image.as_str()), ("w:1", "d:1"));
    }
}
