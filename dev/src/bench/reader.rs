//! A reader blocked on one stream (XREAD BLOCK from its start: the phases using it begin with
//! it deleted), noting when each entry arrived, until told to stop. The entries are decoded by
//! the caller after, so that it takes as little as it can from the worker it measures.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use redis::streams::{StreamId, StreamReadReply};

/// Shared with the task running [`Reader::run`]: what it received so far, and when to stop.
#[derive(Clone, Default)]
pub struct Reader {
    received: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    /// Every entry of `key` read until [`Reader::stop`] is set, with when it arrived.
    pub async fn run(
        self,
        mut redis: order_worker::RedisConnection,
        key: String,
    ) -> anyhow::Result<Vec<(StreamId, Instant)>> {
        let mut arrivals: Vec<(StreamId, Instant)> = Vec::new();
        let mut last = "0-0".to_owned();
        while !self.stop.load(Ordering::Relaxed) {
            // Blocks 50 ms at most, so a stop is seen soon after it is asked for.
            let reply: Option<StreamReadReply> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1_000)
                .arg("BLOCK")
                .arg(50)
                .arg("STREAMS")
                .arg(&key)
                .arg(&last)
                .query_async(&mut redis)
                .await
                .with_context(|| format!("reading {key}"))?;
            let arrived = Instant::now();
            for stream in reply.into_iter().flat_map(|reply| reply.keys) {
                for entry in stream.ids {
                    last.clone_from(&entry.id);
                    arrivals.push((entry, arrived));
                }
            }
            self.received.store(arrivals.len(), Ordering::Relaxed);
        }
        Ok(arrivals)
    }

    /// Entries received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Ends [`Reader::run`] after its current read.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the reader when dropped: a phase failing half-way leaves no task reading.
    pub fn stop_on_drop(&self) -> StopOnDrop {
        StopOnDrop(self.clone())
    }
}

/// See [`Reader::stop_on_drop`].
pub struct StopOnDrop(Reader);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}
