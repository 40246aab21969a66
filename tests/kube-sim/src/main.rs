//! `quiver-kube-sim`: serves the simulated control plane and writes a kubeconfig.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A simulated Kubernetes control plane on 127.0.0.1 for kubectl, helm and kube-rs.
#[derive(Debug, Parser)]
#[command(name = "quiver-kube-sim", version)]
struct Cli {
    /// Address to serve the API on (use port 0 for any free port).
    #[arg(long, env = "QUIVER_SIM_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write the kubeconfig pointing at the server.
    #[arg(long, env = "QUIVER_SIM_KUBECONFIG", default_value = "kube-sim.kubeconfig")]
    kubeconfig: PathBuf,
    /// Seconds between watch bookmarks.
    #[arg(long, env = "QUIVER_SIM_BOOKMARK_SECONDS", default_value_t = 15)]
    bookmark_seconds: u64,
    /// Changes kept for watches to resume from; older resourceVersions get 410 Gone.
    #[arg(long, env = "QUIVER_SIM_HISTORY", default_value_t = 10_000)]
    history: usize,
    /// What happens to pods: `instant` (Running and Ready at once, with a
    /// loopback IP; no process runs), `process` (containers run as local
    /// processes, see --image-binary) or `none` (they stay Pending).
    #[arg(long, env = "QUIVER_SIM_PODS", value_enum, default_value = "instant")]
    pods: quiver_kube_sim::kubelet::PodMode,
    /// Do not run the Deployment / ReplicaSet / StatefulSet controllers.
    #[arg(long, env = "QUIVER_SIM_NO_CONTROLLERS")]
    no_controllers: bool,
    /// With `--pods process`: the binary an image runs, as IMAGE=PATH where
    /// IMAGE is the image name without registry or tag (repeatable).
    #[arg(long = "image-binary", env = "QUIVER_SIM_IMAGE_BINARIES", value_delimiter = ',')]
    image_binaries: Vec<String>,
    /// Extra env for an image's containers, as IMAGE=VAR=VALUE; VALUE may
    /// use $(POD_IP) (repeatable).
    #[arg(long = "image-env", env = "QUIVER_SIM_IMAGE_ENV", value_delimiter = ',')]
    image_env: Vec<String>,
    /// UDP port of the cluster DNS server on 127.0.0.1 (0: any free port).
    #[arg(long, env = "QUIVER_SIM_DNS_PORT", default_value_t = 0)]
    dns_port: u16,
    /// Where pod directories (volumes, logs, kubeconfigs) go.
    #[arg(long, env = "QUIVER_SIM_POD_ROOT")]
    pod_root: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if !cli.listen.ip().is_loopback() {
        anyhow::bail!("--listen must be a loopback address, got {}", cli.listen);
    }
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    let mut runtime = quiver_kube_sim::Config::default().runtime;
    for m in &cli.image_binaries {
        let (image, path) =
            m.split_once('=').ok_or_else(|| anyhow::anyhow!("--image-binary wants IMAGE=PATH, got {m:?}"))?;
        runtime.images.insert(image.to_string(), PathBuf::from(path));
    }
    for m in &cli.image_env {
        let (image, kv) =
            m.split_once('=').ok_or_else(|| anyhow::anyhow!("--image-env wants IMAGE=VAR=VALUE, got {m:?}"))?;
        let (k, v) =
            kv.split_once('=').ok_or_else(|| anyhow::anyhow!("--image-env wants IMAGE=VAR=VALUE, got {m:?}"))?;
        runtime.image_env.entry(image.to_string()).or_default().push((k.to_string(), v.to_string()));
    }
    if let Some(root) = &cli.pod_root {
        runtime.root = root.clone();
    }
    let config = quiver_kube_sim::Config {
        runtime,
        bookmark_interval: Duration::from_secs(cli.bookmark_seconds.max(1)),
        history: cli.history.max(1),
        pods: cli.pods,
        controllers: !cli.no_controllers,
        dns_port: cli.dns_port,
        ..Default::default()
    };
    let handle = quiver_kube_sim::start(listener, config).await?;
    handle.write_kubeconfig(&cli.kubeconfig)?;
    let dns = handle.sim.dns_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(url = %handle.url(), kubeconfig = %cli.kubeconfig.display(), %dns, "ready");
    println!("QUIVER_SIM_DNS={dns}");
    println!("KUBECONFIG={}", cli.kubeconfig.display());
    // On SIGINT or SIGTERM, return from main: dropping the runtime drops the
    // pods' supervisors, whose processes are killed with them.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    handle.stop().await;
    Ok(())
}
