//! `order-worker-dev bench`: how fast the worker drains a backlog at each size, against
//! PostgreSQL alone applying the worker's batches (the ceiling that matters), the per-event
//! pattern Dapr's component uses and PostgreSQL's ceiling for one transaction per event, all
//! measured in the same run on the same servers; plus, at the first size, steady-state latency,
//! peak RSS and start-up time, a mixed drain (payments and fulfillments on three streams), and
//! what publishing status changes costs (ORDER_EVENTS on against off; COMMIT → published), and
//! COMMIT → XADD of the order service's own outbox relayed (RELAY_TABLE). Every phase starts
//! from the same state and must end in the exact expected one.

mod ceiling;
mod drain;
mod drained;
mod grown;
mod late;
mod latency;
mod per_event;
mod profile;
mod publishing;
mod reader;
mod relay_table;
mod render;
mod sizes;
mod traced;
mod workload;

use std::path::Path;

use anyhow::Context;

use crate::local_servers;
use order_worker::{redact_url, StreamConfig, DEFAULT_BATCH_SIZE};
pub use render::render;
use workload::{Backlog, Workload};

/// Benchmark settings.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchConfig {
    #[command(flatten)]
    pub servers: local_servers::ServerUrls,
    /// The database the benchmark (re)creates and keeps. Without it, one of the run's own
    /// (`order_worker_bench_<pid>_<time>`), dropped at the end: two runs on one server never
    /// share one.
    #[arg(long)]
    pub database: Option<String>,
    /// The stream it publishes fulfillment events to (deleted before each phase); the mixed
    /// phase's payments go to `<stream>.payment.confirmed` and `<stream>.payment.failed`.
    /// Without it, streams of the run's own (`bench.<pid>_<time>.fulfillment.status_changed`,
    /// …), deleted at the end.
    #[arg(long)]
    pub stream: Option<String>,
    /// Orders; each publishes its whole lifecycle (9 events). Several (`--orders 3000,10000` or
    /// `--orders 3000 --orders 10000`): the drain runs at each, the other phases at the
    /// smallest.
    #[arg(long, value_delimiter = ',', default_values_t = [3_000, 10_000, 100_000])]
    pub orders: Vec<usize>,
    /// The worker's BATCH_SIZE for the drain.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: u32,
    /// Worker processes draining together, in one group.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub replicas: u16,
    /// Events per second for the latency measurement.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u32,
    /// How long to publish at that rate.
    #[arg(long, default_value_t = 5)]
    pub latency_seconds: u64,
    /// Only the fulfillment drain (for sweeps over batch size, orders and replicas).
    #[arg(long)]
    pub drain_only: bool,
    /// Also drain the backlog into an inbox and a history pre-filled with this many rows each
    /// (e.g. 10000000, a week at ~17 events/s; the load takes minutes), against empty tables
    /// in the same run. 0: skip.
    #[arg(long, default_value_t = 0)]
    pub grown_rows: u64,
    #[command(flatten)]
    pub topology: crate::topology::Topology,
    /// Profile the drain at each size into this directory: cost per 1,000 events by part
    /// (PostgreSQL per statement from pg_stat_statements, which the server must preload; Redis
    /// per command; the first worker's CPU sampled with Linux `perf`, shared out by part and
    /// drawn as a flame graph with `inferno`: `cargo install inferno`). Sampling slows the
    /// worker: compare drains without it.
    #[arg(long)]
    pub profile: Option<std::path::PathBuf>,
    /// Also write the results as JSON to this file, for comparing commits.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

impl BenchConfig {
    /// The sizes to drain at, smallest first, each once.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = self.orders.clone();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }
}

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The smallest size, which every phase but the drains at the other sizes runs at.
    pub orders: usize,
    pub events: u64,
    /// The drain at the smallest size (as in `sizes`).
    pub drain: drain::Drain,
    /// The drain at each size beside PostgreSQL alone running its batches, smallest first.
    pub sizes: Vec<sizes::AtSize>,
    /// The mixed drain: payments and fulfillments on three streams, one replica.
    pub mixed: Option<drain::Drain>,
    /// The fulfillment drain with one event in ten late, one replica.
    pub late: Option<late::LateDrain>,
    /// The fulfillment drain with spans exported (100 % and 1 % sampled) and not, one replica.
    pub traced: Option<traced::TracedDrain>,
    /// The fulfillment drain into empty tables and into grown ones, one replica.
    pub grown: Option<grown::GrownDrain>,
    /// The fulfillment drain with status changes published (ORDER_EVENTS on) and not.
    pub publishing: Option<publishing::PublishingDrain>,
    pub per_event_events_per_second: Option<f64>,
    /// Order transitions the per-event pattern never recorded: its concurrent handlers applied
    /// some orders' events out of order, skipping statuses (Dapr issue #2204).
    pub per_event_transitions_lost: Option<i64>,
    pub speedup: Option<f64>,
    pub postgres_ceiling_events_per_second: Option<f64>,
    pub latency: Option<latency::Latency>,
    /// The order service's outbox table relayed (`RELAY_TABLE`): COMMIT → XADD, with the
    /// notify trigger and without.
    pub relay_table: Option<relay_table::RelayedTable>,
}

/// Runs the benchmark with `order_worker` (the binary the drain starts as worker processes),
/// prints its table and returns what it measured.
pub async fn run(config: BenchConfig, order_worker: &Path) -> anyhow::Result<Report> {
    let mut urls = config.servers.clone();
    let _topology = config.topology.start(&mut urls).await?;
    let servers = urls.find(false).await?;
    let run = run_id();
    let database = (config.database.clone()).unwrap_or_else(|| format!("order_worker_bench_{run}"));
    let stream = (config.stream.clone())
        .unwrap_or_else(|| format!("bench.{run}.fulfillment.status_changed"));
    let database_url = local_servers::recreate_database(&servers.admin_url, &database).await?;
    order_worker::run_migrations(&database_url, &order_worker::TableName::default()).await?;
    let connections = servers.connections(&database_url);
    let redis =
        local_servers::connect_redis(&connections.redis_tls, &connections.redis_url).await?;
    // The workers' logs, written as a user's `2> file` writes them; kept if the run fails.
    let logs = tempfile::Builder::new()
        .prefix("order-worker-bench-")
        .tempdir()
        .context("creating a directory for the workers' logs")?;
    let stream = StreamConfig::for_stream(&stream);
    let sizes = config.sizes();
    let mut workload = Workload::new(sizes[0], connections, stream, redis, logs.path().into());
    let each: Vec<String> = sizes.iter().map(|&n| render::grouped(n as f64)).collect();
    eprintln!(
        "order-worker-dev bench: drains at {} orders; every other phase at the first ({} \
         events); Redis {}, PostgreSQL {} ({})",
        each.join(", "),
        render::grouped(workload.events() as f64),
        redact_url(&workload.connections.redis_url),
        redact_url(&workload.connections.database_url),
        servers.origin
    );
    let measured = measure(&config, &mut workload, order_worker).await;
    // The run's own names go, whatever happened; names given are kept for inspection.
    if config.stream.is_none() {
        workload.delete_streams().await?;
    }
    if config.database.is_none() {
        local_servers::drop_database(&servers.admin_url, &database).await?;
    }
    let report =
        measured.with_context(|| format!("the workers' logs are in {}", logs.keep().display()))?;
    print!("{}", render(&report));
    if let Some(path) = &config.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// This run among others on the same servers: its process id and start second.
fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{}_{secs}", std::process::id())
}

/// Every phase on `workload`, in turn: the drains at every size one after the other (so they
/// share what the machine does meanwhile), then the others at the smallest.
async fn measure(
    config: &BenchConfig,
    workload: &mut Workload,
    order_worker: &Path,
) -> anyhow::Result<Report> {
    let sizes = config.sizes();
    let replicas = usize::from(config.replicas);
    let mut drains = Vec::new();
    workload.profile = config.profile.clone();
    for &orders in &sizes {
        workload.reseed(orders).await?;
        // One replica or several, the end state must be what in-order processing writes.
        let drain = sizes::phase(workload, order_worker, replicas, config.batch_size);
        drains.push(drain.await?);
    }
    workload.profile = None;
    workload.reseed(sizes[0]).await?;
    let mut report = Report {
        orders: sizes[0],
        events: workload.events(),
        drain: drains[0].drain.clone(),
        sizes: drains,
        mixed: None,
        late: None,
        traced: None,
        grown: None,
        publishing: None,
        per_event_events_per_second: None,
        per_event_transitions_lost: None,
        speedup: None,
        postgres_ceiling_events_per_second: None,
        latency: None,
        relay_table: None,
    };
    if !config.drain_only {
        others(config, workload, order_worker, &mut report).await?;
    }
    if config.grown_rows > 0 {
        let grown = grown::phase(workload, order_worker, config.batch_size, config.grown_rows);
        report.grown = Some(grown.await?);
    }
    Ok(report)
}

/// The phases beside the drain (not with `--drain-only`), into `report`.
async fn others(
    config: &BenchConfig,
    workload: &mut Workload,
    order_worker: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    workload.reset(Backlog::Fulfillment).await?;
    workload.publish_backlog().await?;
    let per_event = per_event::dapr_shape(workload).await?;
    let rows = workload.verify("per-event pattern", false).await?;
    report.per_event_transitions_lost = Some(3 * workload.orders.len() as i64 - rows);
    report.per_event_events_per_second = Some(per_event);
    report.speedup = Some(report.drain.events_per_second / per_event);

    workload.reset(Backlog::Fulfillment).await?;
    let ceiling = ceiling::measure(workload, per_event::HANDLERS, 1).await?;
    report.postgres_ceiling_events_per_second = Some(ceiling.events_per_second);
    workload.verify("PostgreSQL ceiling", true).await?;

    workload.reset(Backlog::Fulfillment).await?;
    report.latency = Some(latency::measure(workload, config.rate, config.latency_seconds).await?);

    // Last, so every phase before it runs as it did before there was one. One replica: its
    // exact end state needs each order's payments applied before its fulfillment events.
    let mixed = drain::phase(
        workload,
        Backlog::Mixed,
        "mixed drain",
        order_worker,
        1,
        config.batch_size,
    );
    report.mixed = Some(mixed.await?);
    report.late = Some(late::phase(workload, order_worker, config.batch_size).await?);
    report.traced = Some(traced::phase(workload, order_worker, config.batch_size).await?);
    let replicas = usize::from(config.replicas);
    report.publishing =
        Some(publishing::phase(workload, order_worker, replicas, config.batch_size).await?);
    let relayed = relay_table::phase(workload, order_worker, config.rate, config.latency_seconds);
    report.relay_table = Some(relayed.await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn sizes(args: &[&str]) -> Vec<usize> {
        let cli = Cli::try_parse_from(["order-worker-dev", "bench"].iter().chain(args))
            .expect("the command line parses");
        let Command::Bench(config) = cli.command else {
            unreachable!("parsed as bench")
        };
        config.sizes()
    }

    #[test]
    fn the_drain_runs_at_three_sizes_unless_told_which() {
        assert_eq!(sizes(&[]), [3_000, 10_000, 100_000]);
        assert_eq!(sizes(&["--orders", "10000"]), [10_000]);
        assert_eq!(sizes(&["--orders", "10000,3000"]), [3_000, 10_000]);
        let repeated = ["--orders", "500", "--orders", "40", "--orders", "500"];
        assert_eq!(sizes(&repeated), [40, 500]);
    }
}
