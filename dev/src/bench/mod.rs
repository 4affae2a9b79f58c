//! `order-worker-dev bench`: how fast the worker drains a backlog, against the per-event pattern
//! Dapr's component uses and PostgreSQL's ceiling for one transaction per event, all measured in
//! the same run on the same servers; plus steady-state latency, peak RSS and start-up time, and
//! a mixed drain (payments and fulfillments on three streams), and what publishing status changes
//! costs (ORDER_EVENTS on against off; COMMIT → published). Every phase starts from the same
//! state and must end in the exact expected one.

mod drain;
mod grown;
mod late;
mod latency;
mod per_event;
mod publishing;
mod traced;
mod workload;

use std::path::Path;

use anyhow::Context;

use crate::local_servers;
use order_worker::{redact_url, StreamConfig, DEFAULT_BATCH_SIZE};
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
    /// Orders; each publishes its whole lifecycle (9 events).
    #[arg(long, default_value_t = 3_000)]
    pub orders: usize,
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
    /// Also write the results as JSON to this file, for comparing commits.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub orders: usize,
    pub events: u64,
    pub drain: drain::Drain,
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
    let mut workload = Workload::new(
        (0..config.orders)
            .map(|i| format!("bench-order-{i:06}"))
            .collect(),
        connections,
        StreamConfig::for_stream(&stream),
        redis,
    );
    eprintln!(
        "order-worker-dev bench: {} orders, {} events; Redis {}, PostgreSQL {} ({})",
        config.orders,
        workload.events(),
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
    let report = measured?;
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

/// Every phase on `workload`, in turn.
async fn measure(
    config: &BenchConfig,
    workload: &mut Workload,
    order_worker: &Path,
) -> anyhow::Result<Report> {
    workload.seed().await?;

    // One replica or several, the end state must be what in-order processing writes.
    let drain = drain::phase(
        workload,
        Backlog::Fulfillment,
        "drain",
        order_worker,
        usize::from(config.replicas),
        config.batch_size,
    )
    .await?;
    let mut report = Report {
        orders: config.orders,
        events: workload.events(),
        drain,
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
    };
    if !config.drain_only {
        workload.reset(Backlog::Fulfillment).await?;
        workload.publish_backlog().await?;
        let per_event = per_event::dapr_shape(workload).await?;
        let rows = workload.verify("per-event pattern", false).await?;
        report.per_event_transitions_lost = Some(3 * config.orders as i64 - rows);
        report.per_event_events_per_second = Some(per_event);
        report.speedup = Some(report.drain.events_per_second / per_event);

        workload.reset(Backlog::Fulfillment).await?;
        report.postgres_ceiling_events_per_second =
            Some(per_event::postgres_ceiling(workload).await?);
        workload.verify("PostgreSQL ceiling", true).await?;

        workload.reset(Backlog::Fulfillment).await?;
        report.latency =
            Some(latency::measure(workload, config.rate, config.latency_seconds).await?);

        // Last, so every phase before it runs as it did before there was one. One replica: its
        // exact end state needs each order's payments applied before its fulfillment events.
        report.mixed = Some(
            drain::phase(
                workload,
                Backlog::Mixed,
                "mixed drain",
                order_worker,
                1,
                config.batch_size,
            )
            .await?,
        );
        report.late = Some(late::phase(workload, order_worker, config.batch_size).await?);
        report.traced = Some(traced::phase(workload, order_worker, config.batch_size).await?);
        let replicas = usize::from(config.replicas);
        report.publishing =
            Some(publishing::phase(workload, order_worker, replicas, config.batch_size).await?);
    }
    if config.grown_rows > 0 {
        let grown = grown::phase(workload, order_worker, config.batch_size, config.grown_rows);
        report.grown = Some(grown.await?);
    }
    Ok(report)
}

/// The table `run` prints: one line per measurement.
pub fn render(report: &Report) -> String {
    let drain_row = |what: &str, drain: &drain::Drain| {
        (
            format!(
                "{what}, worker defaults ({} replica(s), batch {})",
                drain.replicas, drain.batch_size
            ),
            format!(
                "{:>10.0} events/s  ({:.2} s)",
                drain.events_per_second, drain.seconds
            ),
        )
    };
    let drain = &report.drain;
    let mut rows = vec![drain_row("drain", drain)];
    if let Some(mixed) = &report.mixed {
        rows.push(drain_row(
            "mixed, 3 streams (payments + fulfillments)",
            mixed,
        ));
    }
    if let Some(late) = &report.late {
        rows.push((
            format!(
                "1 event in {} late (its order recomputed), 1 replica",
                late::LATE_EVERY
            ),
            format!(
                "{:>10.0} events/s  ({:.2} s; the late ones alone {:.0} events/s)",
                late.events_per_second, late.seconds, late.late_events_per_second
            ),
        ));
    }
    if let Some(traced) = &report.traced {
        rows.push((
            "spans exported over OTLP: sampling 100 % / 1 % / export off, 1 replica".to_owned(),
            format!(
                "{:>6.0} / {:.0} / {:.0} events/s",
                traced.sampled_all_events_per_second,
                traced.sampled_1_percent_events_per_second,
                traced.off_events_per_second
            ),
        ));
    }
    if let Some(publishing) = &report.publishing {
        rows.push((
            format!(
                "publishing status changes (ORDER_EVENTS), {} replica(s) (medians of {})",
                publishing.replicas,
                publishing.on_events_per_second.len()
            ),
            format!(
                "on {:.0} events/s vs off {:.0} events/s ({:.1} % of off; target ≥ {:.0} %){}",
                publishing.on_median_events_per_second,
                publishing.off_median_events_per_second,
                publishing.on_percent_of_off,
                publishing.target_percent_of_off,
                match publishing.orders_with_steps_skipped() {
                    0 => String::new(),
                    n => format!("; {n} order(s) published skipping a status (applied late)"),
                }
            ),
        ));
    }
    if let Some(grown) = &report.grown {
        rows.push((
            format!(
                "inbox and history empty / holding {} rows each, 1 replica, shared_buffers {} \
                 (medians of {})",
                grown.rows,
                grown.shared_buffers,
                grown.empty_events_per_second.len()
            ),
            format!(
                "{:>6.0} / {:.0} events/s  ({:+.1} %; loaded in {:.0} s)",
                grown::median(&grown.empty_events_per_second),
                grown::median(&grown.grown_events_per_second),
                grown.change_percent,
                grown.load_seconds
            ),
        ));
    }
    if let (Some(per_event), Some(speedup)) = (report.per_event_events_per_second, report.speedup) {
        rows.push((
            format!(
                "per-event pattern (Dapr's shape: {} handlers, 1 tx + 1 XACK per event)",
                per_event::HANDLERS
            ),
            format!("{per_event:>10.0} events/s"),
        ));
        rows.push((
            "worker / per-event".to_owned(),
            format!("{speedup:>10.1} ×"),
        ));
    }
    if let Some(ceiling) = report.postgres_ceiling_events_per_second {
        rows.push((
            format!(
                "PostgreSQL ceiling, 1 transaction per event ({} connections)",
                per_event::HANDLERS
            ),
            format!("{ceiling:>10.0} events/s"),
        ));
    }
    if let Some(latency) = &report.latency {
        rows.push((
            format!(
                "XADD → COMMIT at {} events/s ({} events)",
                latency.rate, latency.events
            ),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                latency.p50_ms, latency.p99_ms, latency.max_ms
            ),
        ));
        rows.push(match &latency.commit_to_published {
            Some(published) => (
                format!(
                    "COMMIT → status change on the order events stream ({} changes, at {:.0}/s)",
                    published.changes, published.changes_per_second
                ),
                format!(
                    "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 ≤ {:.0} ms)",
                    published.p50_ms, published.p99_ms, published.max_ms, published.target_p99_ms
                ),
            ),
            None => (
                "COMMIT → status change on the order events stream".to_owned(),
                "none measured: no probe event moved a status (fewer events than orders)"
                    .to_owned(),
            ),
        });
    }
    rows.push((
        "peak RSS of a worker process".to_owned(),
        format!("{:>10.1} MB", drain.peak_rss_mb),
    ));
    rows.push((
        "ready (spawn → first read)".to_owned(),
        format!("{:>10.0} ms", drain.ready_ms),
    ));
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(name, value)| format!("{name:<width$}  {value}\n"))
        .collect()
}
