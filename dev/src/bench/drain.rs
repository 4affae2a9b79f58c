//! The worker as operators run it: `order-worker run` processes (one or several replicas in one
//! group) draining the backlog, subscribed to the topics it holds, with their default logging
//! (info, JSON) written straight to a file. Measures how soon each is ready, the drain rate, and
//! peak RSS. With publishing on (`ORDER_EVENTS`, the default), a
//! drain ends once every status change it made is published too.

use std::path::Path;
use std::time::{Duration, Instant};

use super::profile;
use super::publishing::{self, Published};
use super::workload::{Backlog, Workload};
use crate::worker_process::{worker_env, LogTo, WorkerChild};

/// What one drain measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drain {
    pub replicas: usize,
    pub batch_size: u32,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Slowest replica, from spawn to its first read.
    pub ready_ms: f64,
    /// Largest peak resident set of the replicas (VmHWM).
    pub peak_rss_mb: f64,
    /// Whether the workers published status changes (`ORDER_EVENTS`); if so, the drain ended
    /// once the outbox was empty.
    pub publishing: bool,
    /// What the drain published, as [`phase`] checked it.
    pub published: Option<Published>,
    /// Where its time went (`--profile`).
    pub profile: Option<profile::Cost>,
}

/// One drain phase: resets the workload to `backlog`, publishes it, drains it as [`drain`] does
/// and checks the end state exactly: whatever the number of replicas, the tables are what
/// in-order processing writes (docs/reliability.md, "Deterministic"), and the order events stream holds each
/// order's status changes, chained (see [`publishing::verify`]).
pub async fn phase(
    workload: &mut Workload,
    backlog: Backlog,
    name: &str,
    order_worker: &Path,
    replicas: usize,
    batch_size: u32,
) -> anyhow::Result<Drain> {
    workload.reset(backlog).await?;
    workload.publish_backlog().await?;
    let mut drain = drain(workload, order_worker, replicas, batch_size, &[]).await?;
    workload.verify(name, true).await?;
    drain.published = Some(publishing::verify(workload, name, replicas).await?);
    Ok(drain)
}

/// The settings that subscribe a worker to the backlog's topics, after [`worker_env`]'s (which
/// subscribe it to the fulfillment topic alone): later entries win.
fn topics_env(workload: &Workload) -> Vec<(String, String)> {
    let settings = match workload.backlog {
        Backlog::Fulfillment => vec![],
        Backlog::Mixed => vec![
            (
                "TOPICS",
                "fulfillment.status_changed,payment.confirmed,payment.failed",
            ),
            (
                "PAYMENT_CONFIRMED_STREAM",
                workload.payment_confirmed.stream.as_str(),
            ),
            ("PAYMENT_FAILED_STREAM", &workload.payment_failed.stream),
        ],
    };
    settings
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// Drains the published backlog with `replicas` worker processes (`order_worker run`) at
/// `batch_size`, their environment extended by `settings`, then stops them with SIGTERM. Unless
/// `settings` turn publishing off (`ORDER_EVENTS=off`), the drain lasts until the outbox is
/// empty too.
pub async fn drain(
    workload: &mut Workload,
    order_worker: &Path,
    replicas: usize,
    batch_size: u32,
    settings: &[(String, String)],
) -> anyhow::Result<Drain> {
    let mut profiling = match &workload.profile {
        Some(dir) => Some(profile::start(workload, dir).await?),
        None => None,
    };
    let mut workers = Vec::new();
    let mut ready = Duration::ZERO;
    for n in 0..replicas {
        let name = format!("bench-{n}");
        let mut env = worker_env(&workload.connections, &workload.stream, &name);
        env.extend(topics_env(workload));
        env.push(("BATCH_SIZE".to_owned(), batch_size.to_string()));
        env.extend_from_slice(settings);
        let log = workload.log(&name);
        let (child, took) =
            WorkerChild::spawn(order_worker, &name, &env, LogTo::File(&log)).await?;
        ready = ready.max(took);
        workers.push(child);
    }
    if let (Some(profiling), Some(pid)) = (profiling.as_mut(), workers[0].pid()) {
        profiling.attach(pid)?;
    }
    let publishing = !settings.iter().any(|(key, value)| {
        key == "ORDER_EVENTS" && matches!(value.as_str(), "off" | "false" | "0")
    });
    // Opened before the clock starts: the bench's own connection is no part of the drain.
    let mut outbox = match publishing {
        true => Some(workload.db().await?),
        false => None,
    };
    // Every replica is reading once the last one subscribed; the clock starts there.
    let started = Instant::now();
    let drained = workload.wait_drained(outbox.as_mut()).await?;
    let seconds = drained.duration_since(started).as_secs_f64();
    let profile = match profiling {
        Some(profiling) => Some(profiling.finish(workload, seconds).await?),
        None => None,
    };
    let mut peak_rss_kb = 0;
    for worker in &mut workers {
        peak_rss_kb = peak_rss_kb.max(worker.peak_rss_kb()?);
        worker.stop().await?;
    }
    Ok(Drain {
        replicas,
        batch_size,
        events: workload.events(),
        seconds,
        events_per_second: workload.events() as f64 / seconds,
        ready_ms: ready.as_secs_f64() * 1_000.0,
        peak_rss_mb: peak_rss_kb as f64 / 1024.0,
        publishing,
        published: None,
        profile,
    })
}
