//! `quiver-dashboard`: serve, demo, bench.

use anyhow::Context;
use clap::Parser;
use quiver_dashboard::config::{Cli, Command, Config, LogFormat};

fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    quiver_worker::tls::install_crypto_provider();
    let cli = Cli::parse();
    // The demo and the benchmark talk to a person on the terminal: only warnings
    // interrupt them (RUST_LOG overrides).
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    init_tracing(cli.log_format, default_level);
    match cli.command {
        Command::Serve(args) => {
            let config = Config::try_from(args)?;
            let listener = tokio::net::TcpListener::bind(config.addr)
                .await
                .with_context(|| format!("cannot listen on {}", config.addr))?;
            quiver_dashboard::run(config, listener, quiver_worker::server::shutdown_signal()).await?;
        }
        Command::Demo(args) => quiver_dashboard::demo::run(args, quiver_worker::server::shutdown_signal()).await?,
        Command::Bench(args) => quiver_dashboard::bench::run(args).await?,
        Command::Load(args) => quiver_dashboard::load::run(args).await?,
    }
    Ok(())
}
