//! `order-worker-dev replicas`: several replicas for real, on one machine. Starts N
//! `order-worker run` processes with pod-like names in one consumer group, feeds the stream with the demo's
//! Dapr-format lifecycles, prints the group's pending entries per consumer while they work,
//! optionally replaces them one at a time (a rolling restart), and checks the end state: every
//! order final, nothing pending, no stopped replica holding anything.

mod check;
mod feed;
mod fleet;
mod names;
mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::demo::scenario::{self, Scenario, MIN_ORDERS};
use crate::demo::Stage;
use crate::local_servers;
use feed::FeedProgress;
pub use fleet::{Fleet, FleetSettings, ReplicaCounts};
pub use names::ReplicaSet;
use order_worker::ops::inspect::Inspection;
use order_worker::ops::OpsConfig;
use order_worker::{Connections, Keyspace, StreamConfig, DEFAULT_REDIS_URL};

/// How long the replicas may take to drain after the feed ended.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

/// `order-worker-dev replicas` settings. Without URLs it uses the local default ports, else
/// private servers, like the demo.
#[derive(Clone, Debug, clap::Args)]
pub struct ReplicasConfig {
    #[command(flatten)]
    pub servers: local_servers::ServerUrls,
    /// How many replicas (worker processes) to run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub count: u8,
    /// How many orders to seed; each gets its whole lifecycle published (about 9 events).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u16).range(MIN_ORDERS as i64..=20_000))]
    pub orders: u16,
    /// Events published per second, so the sharing can be watched (0: all at once).
    #[arg(long, default_value_t = 2_000)]
    pub rate: u32,
    /// BATCH_SIZE of every replica: small, so the replicas share the stream visibly.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Once a quarter of the events is published, SIGTERM the replicas one at a time and start
    /// each one's replacement under a new pod-like name, as `kubectl rollout restart` would.
    #[arg(long)]
    pub rolling_restart: bool,
    #[command(flatten)]
    pub topology: crate::topology::Topology,
    /// The database it (re)creates on that server.
    #[arg(long, default_value = "order_worker_replicas")]
    pub database: String,
    /// The stream it publishes to (deleted and recreated at start).
    #[arg(long, default_value = "replicas.fulfillment.status_changed")]
    pub stream: String,
    /// Start private servers even when local ones answer.
    #[arg(long, hide = true)]
    pub private_servers: bool,
}

/// What a replicas run did, once everything checked out.
#[derive(Debug, Clone)]
pub struct ReplicasSummary {
    /// Every replica started during the run, in starting order (all stopped by now).
    pub replicas: Vec<ReplicaCounts>,
    /// Orders seeded, each found where the rules put it.
    pub orders: usize,
    /// Status changes the replicas wrote, each once.
    pub transitions: u64,
}

/// Runs the replicas end to end, each `order_worker run` (the `order-worker` binary); fails,
/// saying what is off, unless everything checks out.
pub async fn run(config: ReplicasConfig, order_worker: &Path) -> anyhow::Result<ReplicasSummary> {
    let mut urls = config.servers.clone();
    // Kept until the run ends: dropping it stops the set-up.
    let _topology = config.topology.start(&mut urls).await?;
    // Its dead-letter stream where the worker puts it (in a cluster, in the stream's slot).
    let keyspace = Keyspace::of(urls.redis_url.as_deref().unwrap_or(DEFAULT_REDIS_URL))?;
    let stream = keyspace.place(StreamConfig::for_stream(&config.stream))?;
    let Stage {
        servers: _servers,
        database_url,
        connections,
        redis,
        scenario,
    } = Stage::set(
        &urls,
        config.private_servers,
        &config.database,
        std::slice::from_ref(&stream),
        scenario::build(usize::from(config.orders)),
    )
    .await?;

    let log_dir = tempfile::Builder::new()
        .prefix("order-worker-replicas-")
        .tempdir()
        .context("creating a directory for the replicas' logs")?
        .keep();
    println!("Replica logs: {}/<name>.log\n", log_dir.display());
    let mut fleet = Fleet::new(FleetSettings {
        order_worker: order_worker.to_owned(),
        connections: connections.clone(),
        streams: vec![stream.clone()],
        batch_size: config.batch_size,
        extra_env: Vec::new(),
        log_dir,
    });
    let first = ReplicaSet::new();
    for _ in 0..config.count {
        fleet.start(&first).await?;
    }
    println!(
        "\nPublishing {} events for {} orders to {} (group {}) at {}",
        scenario.publications.len(),
        scenario.orders.len(),
        stream.stream,
        stream.group,
        match config.rate {
            0 => "once".to_owned(),
            rate => format!("{rate} events/s"),
        }
    );

    let drained = work(
        &config,
        &scenario,
        &mut fleet,
        &connections,
        redis.clone(),
        &stream,
    )
    .await;
    // Whatever happened, the children are stopped, and both failures are told: the run's
    // first, as the likelier cause.
    let stopped = fleet.stop_all(&mut redis.clone()).await;
    let last = match (drained, stopped) {
        (Ok(last), Ok(())) => last,
        (Err(run), Err(stop)) => bail!("{run:#}; stopping the replicas failed too: {stop:#}"),
        (Err(error), Ok(())) | (Ok(_), Err(error)) => return Err(error),
    };
    if last.dead_letter_length > 0 {
        bail!(
            "{} entries were dead-lettered to {} (the demo's events all apply)",
            last.dead_letter_length,
            last.dead_letter_stream
        );
    }

    let (table, transitions) = fleet.report();
    print!("\nWho did what (from each replica's log):\n{table}");
    let idle = fleet.idle();
    if !idle.is_empty() {
        println!(
            "(no events for {}: the stream ran dry before they got any)",
            idle.join(", ")
        );
    }
    check::end_state(&database_url, &scenario, transitions).await?;
    Ok(ReplicasSummary {
        replicas: fleet.counts(),
        orders: scenario.orders.len(),
        transitions,
    })
}

/// Feeds the stream, rolls the replicas if asked, and watches until drained; returns the
/// group's last snapshot.
async fn work(
    config: &ReplicasConfig,
    scenario: &Scenario,
    fleet: &mut Fleet,
    connections: &Connections,
    redis: order_worker::RedisConnection,
    stream: &StreamConfig,
) -> anyhow::Result<Inspection> {
    let progress = FeedProgress::default();
    let rolled = AtomicBool::new(!config.rolling_restart);
    let ops = OpsConfig::for_connections(connections, stream);
    let total = scenario.publications.len() as u64;
    let feeding = feed::feed(
        redis.clone(),
        &stream.stream,
        &scenario.publications,
        config.rate,
        &progress,
    );
    let restarting = async {
        if config.rolling_restart {
            while progress.published.load(Ordering::Relaxed) < total / 4 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("\nRolling restart: one replica at a time");
            fleet.rolling_restart(&mut redis.clone()).await?;
            rolled.store(true, Ordering::Relaxed);
        }
        anyhow::Ok(())
    };
    let feed_seconds = total.checked_div(u64::from(config.rate)).unwrap_or(0);
    let deadline = DRAIN_DEADLINE + Duration::from_secs(feed_seconds);
    let watching = watch::until_drained(
        redis.clone(),
        &ops,
        &progress,
        || rolled.load(Ordering::Relaxed),
        deadline,
    );
    let ((), (), last) = tokio::try_join!(feeding, restarting, watching)?;
    Ok(last)
}
