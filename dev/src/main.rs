//! `order-worker-dev`: the demo, the benchmark and the replicas run (see [`order_worker_dev::cli`]).

use std::process::ExitCode;

use clap::Parser;
use order_worker::LogFormat;

use order_worker_dev::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every command prints for a person: only warnings are logged, as text.
    let format = cli.log_format.unwrap_or(LogFormat::Text);
    let _telemetry = match order_worker::init_telemetry(format, "warn") {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("order-worker-dev: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match cli::run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
