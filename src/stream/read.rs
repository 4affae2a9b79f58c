//! Reading the group on every subscribed stream: first this consumer's own pending entries
//! (what a previous run of the same consumer read but did not ack, e.g. it crashed between
//! COMMIT and XACK), then new ones.
//!
//! One XREADGROUP names every stream, except in a cluster, where it may only name keys of one
//! slot: there the streams are split by slot into parts, each with a connection and a read of
//! its own, waiting at once; the first to return is the batch, the others go on waiting and
//! their entries join a later batch. Nothing read is ever dropped.
//!
//! Only as many entries as one batch are read at a time, so nothing waits in a local buffer
//! while its idle time grows in the pending list (Dapr issue #4599).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use redis::cluster_routing::Slot;
use redis::{RedisResult, Value};
use tokio::task::JoinHandle;

use super::connect::{RedisConnection, RedisTarget, Timeouts};
use super::reply::parse_read_reply;
use super::{ensure_group, is_no_group, ReadBatch};
use crate::config::StreamConfig;

/// The consumer's reading connections and its position in each stream.
pub struct Reader {
    shared: Arc<Shared>,
    parts: Vec<Lane>,
    /// Entries read while another part failed: returned by the next call, after the error.
    ready: ReadBatch,
}

/// What every part's read needs.
struct Shared {
    target: RedisTarget,
    streams: Vec<StreamConfig>,
    consumer: String,
    block: Duration,
}

/// One part of the streams: idle, or its read running on a task of its own.
struct Lane {
    sources: Vec<usize>,
    idle: Option<Part>,
    reading: Option<JoinHandle<(Part, RedisResult<ReadBatch>)>>,
}

/// Streams one XREADGROUP can name together, and where their reading stands.
struct Part {
    /// Indices into the streams.
    sources: Vec<usize>,
    /// `None` after an error that says the server is gone or no longer the master: the next
    /// read connects again, to the master of now (with Sentinel, asked again).
    conn: Option<RedisConnection>,
    /// Per source: `Some(id)` while walking our own pending entries after `id`; `None` once
    /// caught up, then reads ask for new entries (`>`).
    backlog_after: Vec<Option<String>>,
}

impl Reader {
    /// Connects the reading connections for `streams` (one group each, of the same name).
    pub async fn connect(
        target: RedisTarget,
        streams: Vec<StreamConfig>,
        consumer: String,
        block: Duration,
    ) -> RedisResult<Self> {
        let mut parts: Vec<Part> = Vec::new();
        for (source, stream) in streams.iter().enumerate() {
            let slot = Slot::for_key(&stream.stream);
            let together = |part: &&mut Part| {
                !target.is_cluster() || Slot::for_key(&streams[part.sources[0]].stream) == slot
            };
            match parts.iter_mut().find(together) {
                Some(part) => part.sources.push(source),
                None => parts.push(Part::new(vec![source])),
            }
        }
        let shared = Arc::new(Shared {
            target,
            streams,
            consumer,
            block,
        });
        for part in &mut parts {
            part.conn(&shared).await?;
        }
        let parts = parts
            .into_iter()
            .map(|part| Lane {
                sources: part.sources.clone(),
                idle: Some(part),
                reading: None,
            })
            .collect();
        Ok(Self {
            shared,
            parts,
            ready: ReadBatch::default(),
        })
    }

    /// Reads up to `count` entries per stream: our own pending ones first, then new ones,
    /// waiting up to `block` (at most the configured BLOCK time) for those. Recreates the
    /// groups if Redis lost them.
    pub async fn next_batch(&mut self, count: usize, block: Duration) -> RedisResult<ReadBatch> {
        if !self.ready.is_empty() {
            return Ok(std::mem::take(&mut self.ready));
        }
        for lane in &mut self.parts {
            if let Some(part) = lane.idle.take() {
                let read = part.read(self.shared.clone(), count, block);
                lane.reading = Some(tokio::spawn(read));
            }
        }
        // Wait for the first read to return, then take every other one returned by now.
        let reads = self.parts.iter_mut().enumerate().filter_map(|(at, lane)| {
            let reading = lane.reading.as_mut()?;
            Some(Box::pin(async move { (at, reading.await) }))
        });
        let ((first, joined), ..) = select_all(reads).await;
        let mut returned = vec![(first, joined)];
        for (at, lane) in self.parts.iter_mut().enumerate() {
            if at != first && lane.reading.as_ref().is_some_and(|h| h.is_finished()) {
                let handle = lane.reading.take().expect("finished");
                returned.push((at, handle.await));
            }
        }
        let mut error = None;
        for (at, joined) in returned {
            let lane = &mut self.parts[at];
            lane.reading = None;
            let (part, read) = joined.unwrap_or_else(|panicked| {
                let error = redis::RedisError::from(std::io::Error::other(panicked));
                (Part::new(lane.sources.clone()), Err(error))
            });
            lane.idle = Some(part);
            match read {
                Ok(batch) => self.ready.merge(batch),
                Err(read_error) => error = Some(read_error),
            }
        }
        match error {
            Some(error) => Err(error),
            None => Ok(std::mem::take(&mut self.ready)),
        }
    }
}

impl Drop for Reader {
    /// Reads still waiting stop with the reader: their connections close, and Redis delivers
    /// nothing to a client that is gone.
    fn drop(&mut self) {
        for handle in self.parts.iter().filter_map(|lane| lane.reading.as_ref()) {
            handle.abort();
        }
    }
}

impl Part {
    fn new(sources: Vec<usize>) -> Self {
        let backlog_after = vec![Some("0".to_owned()); sources.len()];
        Self {
            sources,
            conn: None,
            backlog_after,
        }
    }

    /// The reading connection, connected again if an error dropped it. Its response timeout
    /// exceeds the BLOCK time: redis-rs otherwise gives up on a reply after 500 ms, failing
    /// every idle XREADGROUP.
    async fn conn(&mut self, shared: &Shared) -> RedisResult<&mut RedisConnection> {
        if self.conn.is_none() {
            let timeouts = Timeouts {
                connect: Some(Duration::from_secs(5)),
                response: Some(shared.block + Duration::from_secs(5)),
            };
            self.conn = Some(shared.target.connect(timeouts).await?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    async fn read(
        mut self,
        shared: Arc<Shared>,
        count: usize,
        block: Duration,
    ) -> (Self, RedisResult<ReadBatch>) {
        let read = match self.try_read(&shared, count, block).await {
            Err(error) if is_no_group(&error) => self.recreate_groups(&shared).await,
            Err(error) => {
                if server_changed(&error) {
                    self.conn = None;
                    // A read whose reply was lost may have delivered entries all the same: they
                    // are pending to us now, and the next read walks them at once rather than
                    // leave them to be claimed after CLAIM_MIN_IDLE_MS.
                    self.backlog_after.fill(Some("0".to_owned()));
                }
                Err(error)
            }
            read => read,
        };
        (self, read)
    }

    async fn recreate_groups(&mut self, shared: &Shared) -> RedisResult<ReadBatch> {
        let sources = self.sources.clone();
        let conn = self.conn(shared).await?;
        for source in &sources {
            let config = &shared.streams[*source];
            tracing::warn!(
                stream = %config.stream,
                group = %config.group,
                "consumer group is gone (did Redis lose its data?): creating it again"
            );
            ensure_group(conn, config).await?;
        }
        self.backlog_after.fill(Some("0".to_owned()));
        Ok(ReadBatch::default())
    }

    async fn try_read(
        &mut self,
        shared: &Shared,
        count: usize,
        block: Duration,
    ) -> RedisResult<ReadBatch> {
        let behind: Vec<(usize, String)> = self
            .sources
            .iter()
            .zip(&self.backlog_after)
            .filter_map(|(source, after)| Some((*source, after.clone()?)))
            .collect();
        if !behind.is_empty() {
            let mut batch = self.xreadgroup(shared, count, &behind, None).await?;
            batch.redelivered = true;
            for (source, after) in self.sources.iter().zip(&mut self.backlog_after) {
                if behind.iter().any(|(s, _)| s == source) {
                    let last = batch.ids().filter(|(s, _)| s == source).last();
                    *after = last.map(|(_, id)| id.to_owned());
                }
            }
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
        // BLOCK 0 would wait forever: never ask for less than a millisecond.
        let block = block.clamp(Duration::from_millis(1), shared.block);
        let all: Vec<(usize, String)> = self.sources.iter().map(|s| (*s, ">".to_owned())).collect();
        self.xreadgroup(shared, count, &all, Some(block)).await
    }

    /// One XREADGROUP over the `(source, id)` streams, all in the same group.
    async fn xreadgroup(
        &mut self,
        shared: &Shared,
        count: usize,
        from: &[(usize, String)],
        block: Option<Duration>,
    ) -> RedisResult<ReadBatch> {
        let streams = &shared.streams;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&streams[from[0].0].group)
            .arg(&shared.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS");
        for (source, _) in from {
            cmd.arg(&streams[*source].stream);
        }
        for (_, id) in from {
            cmd.arg(id);
        }
        let reply: Value = cmd.query_async(self.conn(shared).await?).await?;
        parse_read_reply(reply, |key| streams.iter().position(|s| s.stream == key))
    }
}

/// Whether `error` says the connection's server is gone or no longer the master (a failover
/// demoted it: it refuses writes, or unblocked our read when it changed role).
fn server_changed(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.code(),
            Some("READONLY" | "MASTERDOWN" | "UNBLOCKED" | "LOADING")
        )
}
