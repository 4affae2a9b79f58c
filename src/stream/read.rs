//! Reading the group on every subscribed stream in one XREADGROUP: first this consumer's own
//! pending entries (what a previous run of the same consumer read but did not ack, e.g. it
//! crashed between COMMIT and XACK), then new ones.
//!
//! Only as many entries as one batch are read at a time, so nothing waits in a local buffer
//! while its idle time grows in the pending list (Dapr issue #4599).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;

use super::reply::parse_read_reply;
use super::target::RedisTarget;
use super::{ensure_group, is_no_group, ReadBatch};
use crate::config::StreamConfig;

/// The consumer's reading connection and its position in each stream.
pub struct Reader {
    target: RedisTarget,
    /// `None` after an error that says the server is gone or no longer the master: the next
    /// read connects again, to the master of now (with Sentinel, asked again).
    conn: Option<ConnectionManager>,
    streams: Vec<StreamConfig>,
    consumer: String,
    block: Duration,
    /// Per stream: `Some(id)` while walking our own pending entries after `id`; `None` once
    /// caught up, then reads ask for new entries (`>`).
    backlog_after: Vec<Option<String>>,
}

impl Reader {
    /// Connects the reading connection for `streams` (one group each, of the same name). Its
    /// response timeout exceeds the BLOCK time: redis-rs otherwise gives up on a reply after
    /// 500 ms, failing every idle XREADGROUP.
    pub async fn connect(
        target: RedisTarget,
        streams: Vec<StreamConfig>,
        consumer: String,
        block: Duration,
    ) -> redis::RedisResult<Self> {
        let backlog_after = vec![Some("0".to_owned()); streams.len()];
        let mut reader = Self {
            target,
            conn: None,
            streams,
            consumer,
            block,
            backlog_after,
        };
        reader.conn().await?;
        Ok(reader)
    }

    /// The reading connection, connected again if an error dropped it.
    async fn conn(&mut self) -> redis::RedisResult<&mut ConnectionManager> {
        if self.conn.is_none() {
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(self.block + Duration::from_secs(5)));
            let client = self.target.client().await?;
            let conn = client
                .get_connection_manager_with_config(manager_config)
                .await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Reads up to `count` entries per stream: our own pending ones first, then new ones, waiting up to `block` (at most the configured BLOCK time) for
    /// those. Recreates the groups if Redis lost them.
    pub async fn next_batch(
        &mut self,
        count: usize,
        block: Duration,
    ) -> redis::RedisResult<ReadBatch> {
        match self.read(count, block).await {
            Err(error) if is_no_group(&error) => {
                let streams = self.streams.clone();
                let conn = self.conn().await?;
                for config in &streams {
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
            Err(error) => {
                if server_changed(&error) {
                    self.conn = None;
                }
                Err(error)
            }
            other => other,
        }
    }

    async fn read(&mut self, count: usize, block: Duration) -> redis::RedisResult<ReadBatch> {
        let behind: Vec<(usize, String)> = self
            .backlog_after
            .iter()
            .enumerate()
            .filter_map(|(source, after)| Some((source, after.clone()?)))
            .collect();
        if !behind.is_empty() {
            let mut batch = self.xreadgroup(count, &behind, None).await?;
            batch.redelivered = true;
            for (source, _) in behind {
                let last = batch.ids().filter(|(s, _)| *s == source).last();
                self.backlog_after[source] = last.map(|(_, id)| id.to_owned());
            }
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
        // BLOCK 0 would wait forever: never ask for less than a millisecond.
        let block = block.clamp(Duration::from_millis(1), self.block);
        let all: Vec<(usize, String)> = (0..self.streams.len())
            .map(|s| (s, ">".to_owned()))
            .collect();
        self.xreadgroup(count, &all, Some(block)).await
    }

    /// One XREADGROUP over the `(source, id)` streams, all in the same group.
    async fn xreadgroup(
        &mut self,
        count: usize,
        from: &[(usize, String)],
        block: Option<Duration>,
    ) -> redis::RedisResult<ReadBatch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.streams[0].group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS");
        for (source, _) in from {
            cmd.arg(&self.streams[*source].stream);
        }
        for (_, id) in from {
            cmd.arg(id);
        }
        let reply: Value = cmd.query_async(self.conn().await?).await?;
        let streams = &self.streams;
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
