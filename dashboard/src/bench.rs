//! `quiver-dashboard bench` (being written).
use clap::Args;
/// Flags of `bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {}
/// Runs the benchmark.
pub async fn run(_a: BenchArgs) -> crate::Result<()> {
    Err(crate::Error::Config("bench is not built yet".into()))
}
