//! `quiver-worker`: serve datasets over Arrow Flight, generate synthetic data, benchmark.

use anyhow::Context;
use clap::{Parser, Subcommand};
use quiver_worker::cli::{LogFormat, init_logging, shutdown_signal};
use quiver_worker::config::ServeArgs;
use quiver_worker::server::WorkerConfig;

#[derive(Parser, Debug)]
#[command(name = "quiver-worker", version, about = "Quiver worker: in-memory crossfilter over Arrow Flight")]
struct Cli {
    /// Log format.
    #[arg(long, env = "QUIVER_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
enum Command {
    /// Load this worker's shards and serve them over Arrow Flight.
    Serve(ServeArgs),
    /// Write realistic synthetic data in the published schemas.
    Gen(GenCommand),
    /// Benchmark generation, loading and the kernels (use a release build).
    Bench(quiver_worker::bench::BenchArgs),
}

#[derive(clap::Args, Debug)]
struct GenCommand {
    #[command(flatten)]
    args: quiver_worker::synth::GenArgs,
    #[command(flatten)]
    s3: quiver_worker::config::S3Args,
}

fn main() -> anyhow::Result<()> {
    quiver_worker::tls::install_crypto_provider();
    let cli = Cli::parse();
    init_logging(cli.log_format, "info");
    if matches!(cli.command, Command::Serve(_)) {
        quiver_worker::source::return_large_buffers_at_once();
    }
    let threads = if let Command::Serve(a) = &cli.command { a.threads } else { None };
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().context("configuring threads")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let (flight, http) = (args.flight_addr, args.http_addr);
                let cfg = WorkerConfig::try_from(args)?;
                let fl = tokio::net::TcpListener::bind(flight).await.with_context(|| format!("binding {flight}"))?;
                let hl = tokio::net::TcpListener::bind(http).await.with_context(|| format!("binding {http}"))?;
                quiver_worker::server::serve(cfg, fl, hl, shutdown_signal()).await?;
            }
            Command::Gen(cmd) => {
                let opts = cmd.args.options(cmd.s3.defaults())?;
                let summary = quiver_worker::synth::generate(&opts, !cmd.args.no_progress).await?;
                println!(
                    "wrote {} rows in {} files ({:.1} MB) in {:.1} s: {:.2} M rows/s",
                    summary.rows,
                    summary.files.len(),
                    summary.bytes as f64 / 1e6,
                    summary.seconds,
                    summary.rows as f64 / summary.seconds.max(1e-9) / 1e6
                );
            }
            Command::Bench(args) => quiver_worker::bench::run(args).await?,
        }
        Ok(())
    })
}
