//! Feeding the stream while the replicas work: the demo's publications, XADDed in Dapr's
//! formats at a steady rate, so an operator watching the pending table sees work arrive and
//! get shared out, and a rolling restart happens with entries in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use order_worker::RedisConnection;

use crate::demo::{publish, scenario::Publication};

/// How often a chunk is published: often enough to look continuous, seldom enough to keep
/// the XADDs in chunks.
const TICK: Duration = Duration::from_millis(100);

/// How far the feed got, shared with whoever waits on it (the rolling restart, the watcher).
#[derive(Debug, Default)]
pub struct FeedProgress {
    /// Entries XADDed so far.
    pub published: AtomicU64,
    /// Set once every entry is published: only then can "drained" mean done.
    pub done: AtomicBool,
}

/// Publishes `publications` to `stream` at about `rate` entries per second (0: all at once),
/// counting in `progress` as it goes.
pub async fn feed(
    mut redis: RedisConnection,
    stream: &str,
    publications: &[Publication],
    rate: u32,
    progress: &FeedProgress,
) -> anyhow::Result<()> {
    let start = chrono::Utc::now();
    let per_tick = match rate {
        0 => publications.len().max(1),
        rate => (rate as usize / 10).max(1),
    };
    let mut ticker = tokio::time::interval(TICK);
    for (n, chunk) in publications.chunks(per_tick).enumerate() {
        ticker.tick().await;
        // Event times keep advancing one second per entry across chunks, as in the demo.
        let offset = chrono::Duration::seconds((n * per_tick) as i64);
        let published = publish(&mut redis, stream, chunk, start + offset).await?;
        progress.published.fetch_add(published, Ordering::Relaxed);
    }
    progress.done.store(true, Ordering::Relaxed);
    Ok(())
}
