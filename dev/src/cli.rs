//! The `order-worker-dev` command line: `demo`, `bench`, `replicas`, `soak` and `dapr-consumer`.

use clap::{Parser, Subcommand};
use order_worker::LogFormat;

use crate::worker_process::order_worker_binary;
use crate::{bench, dapr_consumer, demo, replicas, soak};

/// Development tooling for order-worker: the demo, the benchmark and the replicas run. `bench`
/// and `replicas` start the `order-worker` binary (ORDER_WORKER_BIN, else the one next to this
/// executable).
///
/// Every flag can also be set by the environment variable shown next to it.
#[derive(Parser)]
#[command(name = "order-worker-dev", version, propagate_version = true)]
pub struct Cli {
    /// Log format: `json` for log collectors, `text` for people [default: text]. Level:
    /// RUST_LOG (default warn).
    #[arg(long, env = "LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the worker on a laptop: seed orders, publish their fulfillment events in Dapr's
    /// format, drain the stream and print each order's transitions.
    Demo(demo::DemoConfig),
    /// Measure: drain rate at 3,000, 10,000 and 100,000 orders, each against PostgreSQL alone
    /// running the worker's batches on the same data; the per-event pattern and its ceiling,
    /// latency, peak RSS and start-up time; all in one run on the same servers.
    Bench(bench::BenchConfig),
    /// Several replicas for real, on one machine: N `order-worker run` processes with pod-like
    /// names in one group, fed a stream, their pending entries printed while they work,
    /// optionally rolled one at a time; checks that nothing was lost, duplicated or left behind.
    Replicas(replicas::ReplicasConfig),
    /// The first hours of a deployment, before deploying: replicas consuming all three topics
    /// at a steady rate through rolling restarts and a PostgreSQL and a Redis outage, sampled
    /// every few seconds (memory, descriptors, lag, pending, latency); checks exactly-once in
    /// effect, flat resources, p99 < 500 ms and no ERROR line outside the outages; writes a
    /// JSON of the samples and an SVG chart.
    Soak(soak::SoakConfig),
    /// Dapr's `pubsub.redis` subscriber with the order service's old worker behind it (one
    /// group per topic named by --consumer-id, every replica that same consumer, reads of
    /// --queue-depth, --concurrency handlers, XACK after the handler, XPENDING/XCLAIM reclaim),
    /// each event applied in its own transaction: the other side of a cut-over rehearsal.
    DaprConsumer(dapr_consumer::DaprConsumerConfig),
}

/// Runs `command`; `bench` and `replicas` first find the `order-worker` binary they start.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(config) => demo::run(config).await,
        Command::Bench(config) => bench::run(config, &order_worker_binary()?).await.map(drop),
        Command::Replicas(config) => replicas::run(config, &order_worker_binary()?)
            .await
            .map(drop),
        Command::Soak(config) => soak::run(config, &order_worker_binary()?).await,
        Command::DaprConsumer(config) => dapr_consumer::run(config).await,
    }
}
