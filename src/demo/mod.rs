//! `order-worker demo` (placeholder until the demo lands).

/// Demo settings.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoConfig {}

/// Runs the demo.
pub async fn run(_config: DemoConfig) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not written yet")
}
