//! `quiver-dashboard`: serve, demo, bench, load. The command line lives here, with the
//! binary; the library holds the server (`serve`'s flags in `config`) and the tools.

use anyhow::Context;
use clap::{Parser, Subcommand};
use quiver_dashboard::config::{Config, ServeArgs};
use quiver_dashboard::tools;
use quiver_worker::cli::{LogFormat, init_logging, shutdown_signal};

/// `quiver-dashboard`: the Quiver web dashboard.
#[derive(Parser, Debug)]
#[command(name = "quiver-dashboard", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "QUIVER_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
enum Command {
    /// Serve the dashboard in front of running workers.
    Serve(ServeArgs),
    /// Generate demo data if absent, start workers in-process, and serve on 127.0.0.1.
    Demo(tools::demo::DemoArgs),
    /// Measure end-to-end latency of `/api/query` for typical interactions.
    Bench(tools::bench::BenchArgs),
    /// Bounded load (loopback only) from simulated users replaying a mix of interactions; checks every answer.
    Load(tools::load::LoadArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    quiver_worker::tls::install_crypto_provider();
    let cli = Cli::parse();
    // The demo and the benchmark talk to a person on the terminal: only warnings
    // interrupt them (RUST_LOG overrides).
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    init_logging(cli.log_format, default_level);
    match cli.command {
        Command::Serve(args) => {
            let config = Config::try_from(args)?;
            let listener = tokio::net::TcpListener::bind(config.addr)
                .await
                .with_context(|| format!("cannot listen on {}", config.addr))?;
            quiver_dashboard::run(config, listener, shutdown_signal()).await?;
        }
        Command::Demo(args) => tools::demo::run(args, shutdown_signal()).await?,
        Command::Bench(args) => tools::bench::run(args).await?,
        Command::Load(args) => tools::load::run(args).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_reads_flags_and_environment() {
        let cli = Cli::try_parse_from([
            "quiver-dashboard",
            "serve",
            "--workers",
            "http://a:8815,http://b:8815",
            "--token",
            "t",
            "--cookie-secure",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else { panic!("expected serve") };
        assert_eq!(a.workers, vec!["http://a:8815", "http://b:8815"]);
        assert!(a.cookie_secure);
        assert_eq!(a.addr, "0.0.0.0:8050");
    }
}
