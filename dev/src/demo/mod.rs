//! `order-worker-dev demo`: the worker at work on a laptop. Seeds orders `pending`, publishes
//! their payments and then their fulfillment events, each topic on its own stream, exactly as
//! Dapr's sidecar would, runs the real worker on all three topics until the streams are drained,
//! and prints each order's path. Exits non-zero if any order is not where the rules say it must
//! be, or anything is left pending.

mod published;
pub(crate) mod scenario;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::local_servers;
use crate::publisher;
use order_worker::order_history;
use order_worker::schema::orders;
use order_worker::shutdown_channel;
use order_worker::{redact_url, Connections, Keyspace, StreamConfig, Topics, WorkerConfig};
use order_worker::{Progress, Worker};
use scenario::{PaymentPublication, Publication, Scenario, MIN_PAID_ORDERS};

/// How long the worker may take to drain the demo's streams.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// Demo settings. Without URLs it uses the local default ports, else private servers.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoConfig {
    #[command(flatten)]
    pub servers: local_servers::ServerUrls,
    /// The database the demo (re)creates on that server.
    #[arg(long, default_value = "order_worker_demo")]
    pub database: String,
    /// The stream the demo publishes fulfillment events to; payments go to
    /// `<stream>.payment.confirmed` and `<stream>.payment.failed` (all deleted and recreated at
    /// start).
    #[arg(long, default_value = "demo.fulfillment.status_changed")]
    pub stream: String,
    /// How many orders to seed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(MIN_PAID_ORDERS as i64..=10_000))]
    pub orders: u16,
    /// Start private servers even when local ones answer.
    #[arg(long, hide = true)]
    pub private_servers: bool,
}

/// Runs the demo end to end.
pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let mut stream = StreamConfig::for_stream(&config.stream);
    stream.consumer = Some("demo-worker".to_owned());
    let topics = topics(&stream.stream);
    let streams: Vec<StreamConfig> = topics
        .subscriptions(&stream, Keyspace::Single)?
        .into_iter()
        .map(|subscription| subscription.stream)
        .collect();
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
        &streams,
        scenario::with_payments(usize::from(config.orders)),
    )
    .await?;
    // Payments first: each order is confirmed before its fulfillment starts.
    let start = chrono::Utc::now();
    let paid = publish_payments(
        &mut redis,
        (&topics, &stream.stream),
        &scenario.payments,
        start,
    )
    .await?;
    let after_payments = start + chrono::Duration::seconds(paid as i64);
    let fulfilled = publish(
        &mut redis,
        &stream.stream,
        &scenario.publications,
        after_payments,
    )
    .await?;
    let published = paid + fulfilled;
    println!(
        "Published {paid} payment events to {} and {}, then {fulfilled} fulfillment events to {}, \
         for {} orders seeded {}, in Dapr's formats\n",
        topics.stream_key("payment.confirmed", &stream.stream),
        topics.stream_key("payment.failed", &stream.stream),
        stream.stream,
        scenario.orders.len(),
        scenario.seeded
    );

    let mut worker = WorkerConfig::new(connections, stream.clone());
    worker.topics = topics;
    let events_key = worker.order_events.order_events_topic.clone();
    let (progress, seconds) = drain(worker, published).await?;

    let announced = published::by_order(&mut redis, &events_key).await?;
    let mismatches = report(&database_url, &scenario, &announced).await?;
    let mut pending = 0;
    for stream in &streams {
        let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(&stream.stream)
            .arg(&stream.group)
            .query_async(&mut redis)
            .await?;
        pending += reply.count();
    }
    println!(
        "\n{published} events in {seconds:.2} s ({:.0} events/s): {} applied, {} duplicate, {} stale, \
         {} ignored, {} dead-lettered; {} pending",
        published as f64 / seconds,
        progress.applied,
        progress.duplicate,
        progress.stale,
        progress.ignored,
        progress.dead_lettered,
        pending
    );
    let names: Vec<&str> = streams.iter().map(|s| s.stream.as_str()).collect();
    println!(
        "Inspect: redis-cli XPENDING <stream> {} - + 10, for each of {}",
        stream.group,
        names.join(", ")
    );
    let steps: usize = announced.values().map(Vec::len).sum();
    println!("Published: {steps} status changes, as the order service does: redis-cli XRANGE {events_key} - +");
    if mismatches > 0 {
        bail!("{mismatches} order(s) did not reach their expected status");
    }
    if pending > 0 {
        bail!("{pending} entries are still pending");
    }
    Ok(())
}

/// The worker's topics in the demo: all three, the payment streams named after the demo's
/// fulfillment stream (as the worker's tests name theirs), so that no other run shares them.
fn topics(stream: &str) -> Topics {
    let mut topics = Topics::stream_only(stream);
    topics.names = vec![
        "fulfillment.status_changed".into(),
        "payment.confirmed".into(),
        "payment.failed".into(),
    ];
    topics
}

/// What the demo and `order-worker-dev replicas` set up before any worker starts: the servers
/// (private ones run until this is dropped), a fresh database with the schema and the
/// scenario's orders, and the streams and their dead-letter streams emptied.
pub(crate) struct Stage {
    pub servers: local_servers::Servers,
    pub database_url: String,
    pub connections: Connections,
    pub redis: order_worker::RedisConnection,
    pub scenario: Scenario,
}

impl Stage {
    /// Finds the servers, recreates `database`, migrates it, seeds `scenario`'s orders and
    /// deletes `streams` and their dead-letter streams, printing where it all is.
    pub(crate) async fn set(
        urls: &local_servers::ServerUrls,
        private_servers: bool,
        database: &str,
        streams: &[StreamConfig],
        scenario: Scenario,
    ) -> anyhow::Result<Self> {
        let servers = urls.find(private_servers).await?;
        println!(
            "Redis:      {} ({})",
            redact_url(&servers.redis_url),
            servers.origin
        );
        let database_url = local_servers::recreate_database(&servers.admin_url, database).await?;
        println!("PostgreSQL: {}", redact_url(&database_url));
        order_worker::run_migrations(&database_url, &order_worker::TableName::default()).await?;

        let connections = servers.connections(&database_url);
        let mut redis =
            local_servers::connect_redis(&connections.redis_tls, &connections.redis_url).await?;
        let mut del = redis::cmd("DEL");
        for stream in streams {
            del.arg(&stream.stream).arg(stream.dead_letter_stream());
        }
        // What the workers publish, beside the fulfillment stream.
        let events = order_worker::OrderEvents::beside(&streams[0].stream);
        del.arg(events.fence_key()).arg(events.order_events_topic);
        let _: () = del.query_async(&mut redis).await?;
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

/// Inserts the scenario's orders at its seeded status, as the order service would have.
async fn seed(database_url: &str, scenario: &Scenario) -> anyhow::Result<()> {
    let rows: Vec<_> = scenario
        .orders
        .iter()
        .map(|(id, _)| {
            (
                orders::id.eq(id),
                orders::status.eq(scenario.seeded.as_str()),
            )
        })
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
    redis: &mut order_worker::RedisConnection,
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

/// XADDs every payment verdict to its topic's stream in `topics` (beside `base`), as Dapr
/// would; timestamps one second apart from `start`, in publishing order. Returns how many were
/// published.
async fn publish_payments(
    redis: &mut order_worker::RedisConnection,
    (topics, base): (&Topics, &str),
    payments: &[PaymentPublication],
    start: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<u64> {
    // Published in the order they happen; within one millisecond (the entry ids' resolution)
    // the worker takes a declined card before an accepted one, and payments before fulfillments.
    for (n, payment) in payments.iter().enumerate() {
        let at = start + chrono::Duration::seconds(n as i64);
        let event = publisher::payment_event(
            payment.verdict.as_str(),
            &payment.order_id,
            &payment.payment_id,
            Some(&payment.amount),
            payment.reason,
            &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let stream = topics.stream_key(payment.topic(), base);
        let fields =
            publisher::entry_fields(payment.topic(), &event, &payment.event_id, payment.format);
        publisher::publish(redis, &stream, &fields).await?;
    }
    Ok(payments.len() as u64)
}

/// Runs the real worker until it consumed `published` entries and its relay published every
/// status change, then stops it. Returns its totals and the seconds from its start to the last
/// entry consumed.
async fn drain(config: WorkerConfig, published: u64) -> anyhow::Result<(Progress, f64)> {
    let mut db = order_worker::connect_postgres(config.connections.database_url.clone()).await?;
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
    let relayed = published::wait_for_relay(&mut db, DRAIN_DEADLINE).await;
    trigger.trigger();
    task.await.context("worker task panicked")??;
    let last = *progress.borrow();
    if !drained {
        bail!(
            "the worker consumed {} of {published} entries within {DRAIN_DEADLINE:?}",
            last.consumed
        );
    }
    relayed?;
    Ok((last, seconds))
}

/// Prints each order's transitions and the status changes it published, and whether it ended
/// where expected, having told subscribers every step; returns the misses.
async fn report(
    database_url: &str,
    scenario: &Scenario,
    announced: &BTreeMap<String, Vec<(String, String)>>,
) -> anyhow::Result<usize> {
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
        // What subscribers saw: the same steps, each from where the previous one left it.
        let steps = announced
            .get(order_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let told: Vec<(String, String)> = history
            .iter()
            .map(|(from, to, _)| (from.clone(), to.clone()))
            .collect();
        let verdict = if status != expected.as_str() {
            mismatches += 1;
            format!("EXPECTED {expected}")
        } else if steps != told.as_slice() {
            mismatches += 1;
            format!("PUBLISHED {steps:?}")
        } else {
            "ok".to_owned()
        };
        println!("{order_id}: {line}  [{verdict}]");
        if !steps.is_empty() {
            let events: Vec<String> = steps.iter().map(|(_, to)| format!("→ {to}")).collect();
            println!("    published: {}", events.join(", "));
        }
    }
    Ok(mismatches)
}
