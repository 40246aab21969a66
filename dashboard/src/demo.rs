//! `quiver-dashboard demo` (being written).
use clap::Args;
/// Flags of `demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {}
/// Runs the demo.
pub async fn run(_a: DemoArgs, _s: impl std::future::Future<Output = ()>) -> crate::Result<()> {
    Err(crate::Error::Config("demo is not built yet".into()))
}
