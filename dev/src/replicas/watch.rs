//! Watching the group while the replicas work: its pending entries per consumer every second,
//! as `order-worker pending` shows them, until everything published was delivered and acked.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use order_worker::RedisConnection;

use super::feed::FeedProgress;
use order_worker::ops::inspect::{inspect, render_consumers, Inspection, PendingArgs};
use order_worker::ops::OpsConfig;

/// How often the pending table is printed.
const PERIOD: Duration = Duration::from_secs(1);

/// The group's state now, read as `order-worker pending` reads it.
pub async fn snapshot(redis: &mut RedisConnection, ops: &OpsConfig) -> anyhow::Result<Inspection> {
    let args = PendingArgs {
        config: ops.clone(),
        count: 1,
        min_idle_ms: None,
        json: false,
    };
    inspect(redis, &args).await
}

/// Prints the group's lag and pending per consumer every [`PERIOD`] until the feed is done,
/// `settled()` says nothing else is going on (a rolling restart, say), every entry was
/// delivered and none is pending; fails after `deadline`. Returns the last snapshot.
pub async fn until_drained(
    mut redis: RedisConnection,
    ops: &OpsConfig,
    feed: &FeedProgress,
    settled: impl Fn() -> bool,
    deadline: Duration,
) -> anyhow::Result<Inspection> {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(PERIOD);
    loop {
        ticker.tick().await;
        let fed = feed.done.load(Ordering::Relaxed);
        let inspection = snapshot(&mut redis, ops).await?;
        let group = &inspection.group;
        let lag = group.lag.map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!(
            "\n[{:>4.1} s] published {}, lag {lag}, pending {}",
            started.elapsed().as_secs_f64(),
            feed.published.load(Ordering::Relaxed),
            group.pending
        );
        print!("{}", render_consumers(&inspection));
        if fed && settled() && group.lag == Some(0) && group.pending == 0 {
            return Ok(inspection);
        }
        if started.elapsed() > deadline {
            bail!(
                "not drained within {deadline:?}: lag {lag}, {} pending",
                group.pending
            );
        }
    }
}
