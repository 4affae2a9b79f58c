//! Steady-state latency: events published at a fixed rate while the worker (default settings,
//! in this process, so COMMIT is observed exactly) keeps up; each event's time from just before
//! its XADD to just after the COMMIT that applied it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

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
}

/// Publishes `rate` events per second for `seconds` (orders' lifecycles, in order) and
/// measures XADD → COMMIT for each.
pub async fn measure(workload: &mut Workload, rate: u32, seconds: u64) -> anyhow::Result<Latency> {
    let connections = workload.connections.clone();
    let mut stream = workload.stream.clone();
    stream.consumer = Some("bench-latency".to_owned());
    let mut worker = Worker::start(WorkerConfig::new(connections, stream)).await?;
    let mut commits = worker.commits();
    let (trigger, stop) = shutdown_channel();
    let running = tokio::spawn(worker.run(stop));

    let total = (u64::from(rate) * seconds).min(workload.events());
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let events = FulfillmentStatus::LIFECYCLE
        .iter()
        .flat_map(|status| {
            workload
                .orders
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
            sent.insert(id, at);
            next += 1;
        }
    }

    let mut latencies = Vec::with_capacity(events.len());
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
            }
        }
    }
    trigger.trigger();
    running.await.context("worker task")??;
    if latencies.is_empty() {
        bail!("no event was measured");
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Latency {
        rate,
        events: latencies.len() as u64,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}
