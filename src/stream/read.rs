//! Reading the group: first this consumer's own pending entries (what a previous run of the
//! same consumer read but did not ack, e.g. it crashed between COMMIT and XACK), then new ones.
//!
//! Only as many entries as one batch are read at a time, so nothing waits in a local buffer
//! while its idle time grows in the pending list (Dapr issue #4599).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;

use super::reply::parse_read_reply;
use super::{ensure_group, is_no_group, ReadBatch};
use crate::config::StreamConfig;

/// The consumer's reading connection and its position.
pub struct Reader {
    conn: ConnectionManager,
    config: StreamConfig,
    consumer: String,
    block: Duration,
    /// `Some(id)` while walking our own pending entries after `id`; `None` once caught up,
    /// then reads ask for new entries (`>`).
    backlog_after: Option<String>,
}

impl Reader {
    /// Connects the reading connection. Its response timeout exceeds the BLOCK time: redis-rs
    /// otherwise gives up on a reply after 500 ms, failing every idle XREADGROUP.
    pub async fn connect(
        client: redis::Client,
        config: StreamConfig,
        consumer: String,
        block: Duration,
    ) -> redis::RedisResult<Self> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(block + Duration::from_secs(5)));
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await?;
        Ok(Self {
            conn,
            config,
            consumer,
            block,
            backlog_after: Some("0".to_owned()),
        })
    }

    /// Reads up to `count` entries: our own pending ones first, then new ones, waiting up to
    /// `block` (at most the configured BLOCK time) for those. Recreates the group if Redis lost
    /// it.
    pub async fn next_batch(
        &mut self,
        count: usize,
        block: Duration,
    ) -> redis::RedisResult<ReadBatch> {
        match self.read(count, block).await {
            Err(error) if is_no_group(&error) => {
                tracing::warn!(
                    stream = %self.config.stream,
                    group = %self.config.group,
                    "consumer group is gone (did Redis lose its data?): creating it again"
                );
                ensure_group(&mut self.conn, &self.config).await?;
                self.backlog_after = Some("0".to_owned());
                Ok(ReadBatch::default())
            }
            other => other,
        }
    }

    async fn read(&mut self, count: usize, block: Duration) -> redis::RedisResult<ReadBatch> {
        if let Some(after) = self.backlog_after.clone() {
            let mut batch = self.xreadgroup(count, &after, None).await?;
            batch.redelivered = true;
            match batch.ids().last() {
                Some(last) => {
                    self.backlog_after = Some(last.to_owned());
                    return Ok(batch);
                }
                None => self.backlog_after = None,
            }
        }
        // BLOCK 0 would wait forever: never ask for less than a millisecond.
        let block = block.clamp(Duration::from_millis(1), self.block);
        self.xreadgroup(count, ">", Some(block)).await
    }

    async fn xreadgroup(
        &mut self,
        count: usize,
        id: &str,
        block: Option<Duration>,
    ) -> redis::RedisResult<ReadBatch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.config.stream).arg(id);
        let reply: Value = cmd.query_async(&mut self.conn).await?;
        parse_read_reply(reply)
    }
}
