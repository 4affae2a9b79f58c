//! Steady-state latency: events published at a fixed rate while the worker (default settings,
//! in this process, so COMMIT is observed exactly) keeps up; each event's time from just before
//! its XADD to just after the COMMIT that applied it. And, for each event that moved its order's
//! status, from that COMMIT to the moment the status change's `orders.order.status_changed`
//! event reached a reader blocked on the order events stream (the outbox relay's XADD).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::publishing::{check_chains, Step};
use super::reader::Reader;
use super::workload::Workload;
use order_worker::shutdown_channel;
use order_worker::FulfillmentStatus;
use order_worker::Worker;
use order_worker::WorkerConfig;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub rate: u32,
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// COMMIT → the status change's event on the order events stream, for the events that
    /// moved a status; `None` if none did (too few events for the orders to leave `pending`).
    pub commit_to_published: Option<Published>,
}

/// COMMIT → published, in milliseconds, over `changes` status changes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    /// Status changes measured: every one the probe's events made.
    pub changes: u64,
    /// The rate their causing events were published at: from the first's XADD to the last's.
    /// Not every event moves a status (an order's first fulfillment event after `pending`
    /// does, then `shipped` and `completed`); the probe publishes orders interleaved step by
    /// step, so the changes come in stretches at the full rate.
    pub changes_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The target for p99.
    pub target_p99_ms: f64,
}

/// The target: p99 COMMIT → published at 2,000 changes/s.
pub const TARGET_P99_MS: f64 = 20.0;

/// How long the status changes may take to reach the stream after the last COMMIT.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);

/// The order status a single fulfillment at `status` calls for, for an order past payment
/// (docs/architecture.md, "Status rules"): none while `pending`, `processing` from `planning` on, then
/// `shipped`, then `delivered`. So of an order's lifecycle, `planning`, `shipped` and
/// `completed` move it (its three history rows); the others find it there already.
fn order_status_for(status: FulfillmentStatus) -> Option<&'static str> {
    match status {
        FulfillmentStatus::Pending => None,
        FulfillmentStatus::Shipped => Some("shipped"),
        FulfillmentStatus::Completed => Some("delivered"),
        FulfillmentStatus::Cancelled => Some("cancelled"),
        _ => Some("processing"),
    }
}

/// Publishes `rate` events per second for `seconds` (orders' lifecycles, in order) and
/// measures XADD → COMMIT for each, and COMMIT → published for each status change.
pub async fn measure(workload: &mut Workload, rate: u32, seconds: u64) -> anyhow::Result<Latency> {
    let connections = workload.connections.clone();
    let mut stream = workload.stream.clone();
    stream.consumer = Some("bench-latency".to_owned());
    let config = WorkerConfig::new(connections.clone(), stream);
    // The worker's defaults publish beside the stream, where the workload's drains do.
    let order_events = workload.order_events().order_events_topic;
    if config.order_events.order_events_topic != order_events {
        bail!(
            "the worker publishes to {}, not {order_events}",
            config.order_events.order_events_topic
        );
    }
    // A connection of its own: a blocked XREAD holds up whatever else is sent on one.
    let reader_redis =
        crate::local_servers::connect_redis(&connections.redis_tls, &connections.redis_url).await?;
    let reader = Reader::default();
    let reading = tokio::spawn(reader.clone().run(reader_redis, order_events));
    let mut worker = Worker::start(config).await?;
    let mut commits = worker.commits();
    let (trigger, stop) = shutdown_channel();
    let running = tokio::spawn(worker.run(stop));

    let total = (u64::from(rate) * seconds).min(workload.events());
    let mut sent: HashMap<String, Instant> = HashMap::new();
    // The entry each status change should come from: an order's first event that calls for
    // the status (each order's lifecycle is published once, in order).
    let mut causes: HashMap<(String, String), (String, Instant)> = HashMap::new();
    // As many orders as the events take through their whole lifecycle: spread over every order
    // of a large workload, the events would all be first ones (`pending`), which move nothing.
    let orders = (total as usize)
        .div_ceil(FulfillmentStatus::LIFECYCLE.len())
        .clamp(1, workload.orders.len());
    let events = FulfillmentStatus::LIFECYCLE
        .iter()
        .flat_map(|status| {
            workload.orders[..orders]
                .iter()
                .map(move |order| (order.clone(), *status))
        })
        .take(total as usize)
        .collect::<Vec<_>>();
    // One tick per millisecond, sending what the rate owes by then: smooth, not bursty.
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let started = Instant::now();
    let mut next = 0usize;
    while next < events.len() {
        ticker.tick().await;
        let owed = ((started.elapsed().as_secs_f64() * f64::from(rate)) as usize).min(events.len());
        while next < owed {
            let (order, status) = &events[next];
            let fields = workload.entry(order, *status);
            let at = Instant::now();
            let id =
                crate::publisher::publish(&mut workload.redis, &workload.stream.stream, &fields)
                    .await?;
            if let Some(target) = order_status_for(*status) {
                causes
                    .entry((order.clone(), target.to_owned()))
                    .or_insert_with(|| (id.clone(), at));
            }
            sent.insert(id, at);
            next += 1;
        }
    }

    let mut latencies = Vec::with_capacity(events.len());
    let mut committed_at: HashMap<String, Instant> = HashMap::with_capacity(events.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.len() < events.len() {
        let wait = deadline.saturating_duration_since(Instant::now());
        let committed = tokio::time::timeout(wait, commits.recv())
            .await
            .context("the worker fell behind: not every event committed within 30 s")?
            .context("the worker stopped")?;
        for id in committed.entry_ids {
            if let Some(at) = sent.get(&id) {
                latencies.push(committed.at.duration_since(*at).as_secs_f64() * 1_000.0);
                committed_at.insert(id, committed.at);
            }
        }
    }
    // Every change is committed; the relay publishes the last ones within milliseconds.
    let changed = history_rows(workload).await?;
    let deadline = Instant::now() + PUBLISH_DEADLINE;
    while reader.received() < changed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reader.stop();
    let arrivals = reading.await.context("reader task")??;
    // Decoded once reading is over: meanwhile the reader took as little as it could from the
    // worker sharing this process.
    let arrivals = (arrivals.iter())
        .map(|(entry, arrived)| Ok((Step::read(entry)?, *arrived)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    trigger.trigger();
    running.await.context("worker task")??;
    if latencies.is_empty() {
        bail!("no event was measured");
    }
    let commit_to_published = published_latency(&arrivals, &causes, &committed_at, changed)?;
    let (p50_ms, p99_ms, max_ms) = percentiles(&mut latencies);
    Ok(Latency {
        rate,
        events: latencies.len() as u64,
        p50_ms,
        p99_ms,
        max_ms,
        commit_to_published,
    })
}

/// Events a second over `times`: the gaps between them over the span from the first to the
/// last (0 for fewer than two, or all at once).
pub(super) fn rate_of(times: &[Instant]) -> f64 {
    match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) if last > first => {
            (times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// p50, p99 and max of `values`.
pub(super) fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99), at(1.0))
}

/// Matches each published status change with the COMMIT of the entry that caused it. Every
/// change the probe made (`changed` history rows) must be there exactly once, each order's
/// chained from `confirmed`, and each must come from an entry the probe published.
fn published_latency(
    arrivals: &[(Step, Instant)],
    causes: &HashMap<(String, String), (String, Instant)>,
    committed_at: &HashMap<String, Instant>,
    changed: usize,
) -> anyhow::Result<Option<Published>> {
    if arrivals.len() != changed {
        bail!(
            "latency probe: {} status change(s) published within {PUBLISH_DEADLINE:?} of the \
             last COMMIT, for {changed} history rows",
            arrivals.len()
        );
    }
    let steps: Vec<Step> = arrivals.iter().map(|(step, _)| step.clone()).collect();
    // Where each order ends depends on how far the probe got: its chain is checked, not its end.
    for (order, chain) in by_order(&steps) {
        let last = chain.last().map_or("", |step| step.new_status.as_str());
        check_chains(&chain, "confirmed", last)
            .with_context(|| format!("latency probe: the events published for {order}"))?;
    }
    let mut millis = Vec::with_capacity(arrivals.len());
    let mut caused_at = Vec::with_capacity(arrivals.len());
    let mut matched = HashSet::new();
    for (step, arrived) in arrivals {
        let key = (step.order_id.clone(), step.new_status.clone());
        let Some((entry_id, sent_at)) = causes.get(&key) else {
            bail!(
                "latency probe: {} → {} published for {}, which no probe event calls for",
                step.old_status,
                step.new_status,
                step.order_id
            );
        };
        // Each probe event moves its order one step at most, to each status at most once.
        if !matched.insert(key) {
            bail!(
                "latency probe: {} moved to {} twice",
                step.order_id,
                step.new_status
            );
        }
        let committed = committed_at
            .get(entry_id)
            .with_context(|| format!("latency probe: entry {entry_id} was never committed"))?;
        millis.push(arrived.saturating_duration_since(*committed).as_secs_f64() * 1_000.0);
        caused_at.push(*sent_at);
    }
    if millis.is_empty() {
        return Ok(None);
    }
    let changes = millis.len() as u64;
    let (p50_ms, p99_ms, max_ms) = percentiles(&mut millis);
    Ok(Some(Published {
        changes,
        changes_per_second: rate_of(&caused_at),
        p50_ms,
        p99_ms,
        max_ms,
        target_p99_ms: TARGET_P99_MS,
    }))
}

/// `steps` per order, each order's in stream order.
fn by_order(steps: &[Step]) -> HashMap<&str, Vec<Step>> {
    let mut orders: HashMap<&str, Vec<Step>> = HashMap::new();
    for step in steps {
        orders.entry(&step.order_id).or_default().push(step.clone());
    }
    orders
}

/// History rows of the probe: one per status change it made.
async fn history_rows(workload: &Workload) -> anyhow::Result<usize> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use order_worker::schema::order_status_history;
    let rows: i64 = order_status_history::table
        .count()
        .get_result(&mut workload.db().await?)
        .await?;
    Ok(rows as usize)
}
