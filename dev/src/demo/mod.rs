//! `order-worker-dev demo`: the worker at work on a laptop. Seeds orders, publishes their
//! fulfillment events exactly as Dapr's sidecar would, runs the real worker until the stream is
//! drained, and prints what happened to each order. Exits non-zero if any order is not where the
//! rules say it must be, or anything is left pending.

pub(crate) mod scenario;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::local_servers;
use crate::publisher;
use order_worker::order_history;
use order_worker::schema::orders;
use order_worker::shutdown_channel;
use order_worker::{redact_url, Connections, StreamConfig, WorkerConfig};
use order_worker::{Progress, Worker};
use scenario::{Publication, Scenario, MIN_ORDERS};

/// How long the worker may take to drain the demo's stream.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// Demo settings. Without URLs it uses the local default ports, else private servers.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoConfig {
    #[command(flatten)]
    pub servers: local_servers::ServerUrls,
    /// The database the demo (re)creates on that server.
    #[arg(long, default_value = "order_worker_demo")]
    pub database: String,
    /// The stream the demo publishes to (deleted and recreated at start).
    #[arg(long, default_value = "demo.fulfillment.status_changed")]
    pub stream: String,
    /// How many orders to seed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(MIN_ORDERS as i64..=10_000))]
    pub orders: u16,
    /// Start private servers even when local ones answer.
    #[arg(long, hide = true)]
    pub private_servers: bool,
}

/// Runs the demo end to end.
pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let mut stream = StreamConfig::for_stream(&config.stream);
    stream.consumer = Some("demo-worker".to_owned());
    let Stage {
        servers: _servers,
        database_url,
        connections,
        mut redis,
        scenario,
    } = Stage::set(
        &config.servers,
        config.private_servers,
        &config.database,
        &stream,
        usize::from(config.orders),
    )
    .await?;
    let published = publish(
        &mut redis,
        &stream.stream,
        &scenario.publications,
        chrono::Utc::now(),
    )
    .await?;
    println!(
        "Published {published} events for {} orders to {} in Dapr's formats\n",
        scenario.orders.len(),
        stream.stream
    );

    let (progress, seconds) =
        drain(WorkerConfig::new(connections, stream.clone()), published).await?;

    let mismatches = report(&database_url, &scenario).await?;
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&stream.stream)
        .arg(&stream.group)
        .query_async(&mut redis)
        .await?;
    println!(
        "\n{published} events in {seconds:.2} s ({:.0} events/s): {} applied, {} duplicate, {} stale, \
         {} ignored, {} dead-lettered; {} pending",
        published as f64 / seconds,
        progress.applied,
        progress.duplicate,
        progress.stale,
        progress.ignored,
        progress.dead_lettered,
        pending.count()
    );
    println!(
        "Inspect: redis-cli XPENDING {} {} - + 10",
        stream.stream, stream.group
    );
    if mismatches > 0 {
        bail!("{mismatches} order(s) did not reach their expected status");
    }
    if pending.count() > 0 {
        bail!("{} entries are still pending", pending.count());
    }
    Ok(())
}

/// What the demo and `order-worker-dev replicas` set up before any worker starts: the servers
/// (private ones run until this is dropped), a fresh database with the schema and the
/// scenario's orders, and the stream and its dead-letter stream emptied.
pub(crate) struct Stage {
    pub servers: local_servers::Servers,
    pub database_url: String,
    pub connections: Connections,
    pub redis: redis::aio::MultiplexedConnection,
    pub scenario: Scenario,
}

impl Stage {
    /// Finds the servers, recreates `database`, migrates it, seeds `orders` orders and deletes
    /// `stream`'s entries, printing where it all is.
    pub(crate) async fn set(
        urls: &local_servers::ServerUrls,
        private_servers: bool,
        database: &str,
        stream: &StreamConfig,
        orders: usize,
    ) -> anyhow::Result<Self> {
        let servers = urls.find(private_servers).await?;
        println!(
            "Redis:      {} ({})",
            redact_url(&servers.redis_url),
            servers.origin
        );
        let database_url = local_servers::recreate_database(&servers.admin_url, database).await?;
        println!("PostgreSQL: {}", redact_url(&database_url));
        order_worker::run_migrations(&database_url).await?;

        let connections = servers.connections(&database_url);
        let mut redis = connections
            .redis_client()?
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis")?;
        let _: () = redis::cmd("DEL")
            .arg(&stream.stream)
            .arg(stream.dead_letter_stream())
            .query_async(&mut redis)
            .await?;
        let scenario = scenario::build(orders);
        seed(&database_url, &scenario).await?;
        Ok(Self {
            servers,
            database_url,
            connections,
            redis,
            scenario,
        })
    }
}

/// Inserts the scenario's orders at `confirmed`, as the order service would have.
async fn seed(database_url: &str, scenario: &Scenario) -> anyhow::Result<()> {
    let rows: Vec<_> = scenario
        .orders
        .iter()
        .map(|(id, _)| (orders::id.eq(id), orders::status.eq("confirmed")))
        .collect();
    let mut conn = order_worker::connect_postgres(database_url.to_owned()).await?;
    diesel::insert_into(orders::table)
        .values(rows)
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// XADDs every publication as Dapr would; timestamps one second apart from `start`, in
/// publishing order. Returns how many were published.
pub(crate) async fn publish(
    redis: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    publications: &[Publication],
    start: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<u64> {
    for (n, publication) in publications.iter().enumerate() {
        let at = start + chrono::Duration::seconds(n as i64);
        let event = publisher::event(
            &publication.order_id,
            &publication.fulfillment_id,
            None,
            publication.status,
            &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let fields =
            publisher::entry_fields(stream, &event, &publication.event_id, publication.format);
        publisher::publish(redis, stream, &fields).await?;
    }
    Ok(publications.len() as u64)
}

/// Runs the real worker until it consumed `published` entries, then stops it. Returns its
/// totals and the seconds from its start to the last entry consumed.
async fn drain(config: WorkerConfig, published: u64) -> anyhow::Result<(Progress, f64)> {
    let started = Instant::now();
    let worker = Worker::start(config).await?;
    let mut progress = worker.progress();
    let (trigger, stop) = shutdown_channel();
    let task = tokio::spawn(worker.run(stop));
    let drained = tokio::time::timeout(
        DRAIN_DEADLINE,
        progress.wait_for(|p| p.consumed >= published),
    )
    .await
    .is_ok_and(|waited| waited.is_ok());
    let seconds = started.elapsed().as_secs_f64();
    trigger.trigger();
    task.await.context("worker task panicked")??;
    let last = *progress.borrow();
    if !drained {
        bail!(
            "the worker consumed {} of {published} entries within {DRAIN_DEADLINE:?}",
            last.consumed
        );
    }
    Ok((last, seconds))
}

/// Prints each order's transitions and whether it ended where expected; returns the misses.
async fn report(database_url: &str, scenario: &Scenario) -> anyhow::Result<usize> {
    let mut conn = order_worker::connect_postgres(database_url.to_owned()).await?;
    let mut mismatches = 0;
    for (order_id, expected) in &scenario.orders {
        let status: String = orders::table
            .find(order_id)
            .select(orders::status)
            .first(&mut conn)
            .await?;
        let history = order_history(&mut conn, order_id).await?;
        let mut line = <[_]>::first(&history)
            .map(|(from, _, _)| from.clone())
            .unwrap_or_else(|| status.clone());
        for (_, to, reason) in &history {
            line.push_str(&format!(" → {to} ({reason})"));
        }
        let verdict = if status == expected.as_str() {
            "ok".to_owned()
        } else {
            mismatches += 1;
            format!("EXPECTED {expected}")
        };
        println!("{order_id}: {line}  [{verdict}]");
    }
    Ok(mismatches)
}
