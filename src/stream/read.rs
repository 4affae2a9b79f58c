//! Reading the group: first this consumer's own pending entries (what a previous run of the
//! same consumer read but did not ack, e.g. it crashed between COMMIT and XACK), then new ones.
//!
//! Only as many entries as one batch are read at a time, so nothing waits in a local buffer
//! while its idle time grows in the pending list (Dapr issue #4599).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;

use super::{ensure_group, is_no_group, StreamEntry};
use crate::config::StreamConfig;

/// What one read returned.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub entries: Vec<StreamEntry>,
    /// Ids still pending for us whose entry was deleted from the stream (XDEL, trimming):
    /// nothing to process, so they are acked.
    pub deleted: Vec<String>,
}

impl ReadBatch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.deleted.is_empty()
    }

    /// Every id read, for the ack.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|entry| entry.id.as_str())
            .chain(self.deleted.iter().map(String::as_str))
    }
}

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
        redis_url: &str,
        config: StreamConfig,
        consumer: String,
        block: Duration,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(redis_url)?;
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

    /// Reads up to `count` entries: our own pending ones first, then new ones, waiting up to the
    /// BLOCK time for those. Recreates the group if Redis lost it.
    pub async fn next_batch(&mut self, count: usize) -> redis::RedisResult<ReadBatch> {
        match self.read(count).await {
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

    async fn read(&mut self, count: usize) -> redis::RedisResult<ReadBatch> {
        if let Some(after) = self.backlog_after.clone() {
            let batch = self.xreadgroup(count, &after, None).await?;
            match batch.ids().last() {
                Some(last) => {
                    self.backlog_after = Some(last.to_owned());
                    return Ok(batch);
                }
                None => self.backlog_after = None,
            }
        }
        self.xreadgroup(count, ">", Some(self.block)).await
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
        parse_reply(reply)
    }
}

/// Parses an XREADGROUP reply for one stream (RESP2 array or RESP3 map; nil on timeout).
fn parse_reply(reply: Value) -> redis::RedisResult<ReadBatch> {
    let mut batch = ReadBatch::default();
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(batch),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(unexpected("XREADGROUP reply", &other)),
    };
    for entries in streams {
        let Value::Array(entries) = entries else {
            return Err(unexpected("stream entries", &entries));
        };
        for entry in entries {
            let Value::Array(mut parts) = entry else {
                return Err(unexpected("stream entry", &entry));
            };
            if parts.len() != 2 {
                return Err(unexpected("stream entry", &Value::Array(parts)));
            }
            let fields = parts.pop().unwrap_or(Value::Nil);
            let id: String = redis::from_redis_value(parts.pop().unwrap_or(Value::Nil))?;
            match fields {
                Value::Nil => batch.deleted.push(id),
                fields => {
                    let fields: Vec<(String, Vec<u8>)> = redis::from_redis_value(fields)?;
                    batch.entries.push(StreamEntry { id, fields });
                }
            }
        }
    }
    Ok(batch)
}

fn unexpected(what: &str, value: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply shape",
        format!("{what}: {value:?}"),
    ))
}
