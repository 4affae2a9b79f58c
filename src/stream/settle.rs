//! Settling a batch after its transaction committed: dead-letter what can never apply, ack
//! everything that is done, in one MULTI/EXEC so an entry is never acked without its
//! dead-letter copy, nor copied twice.

use redis::aio::ConnectionLike;

use super::StreamEntry;
use crate::config::StreamConfig;

/// The fields [`settle`] adds to a dead letter after the entry's own: what `replay
/// --dead-letter` strips to put the original entry back. Keep in step with [`settle`].
pub const ADDED_FIELDS: [&str; 6] = [
    "error",
    "source_stream",
    "source_id",
    "group",
    "consumer",
    "delivery_count",
];

/// An entry that can never be applied, and why (the text operators read in the `error` field).
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub entry: &'a StreamEntry,
    pub error: String,
    /// How many times the entry was delivered, this time included.
    pub delivery_count: u64,
}

/// Identifies where a dead-lettered entry came from and who gave up on it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub config: &'a StreamConfig,
    pub consumer: &'a str,
}

/// XADDs each dead letter (original fields plus `error`, `source_stream`, `source_id`,
/// `group`, `consumer`, `delivery_count`) and XACKs `ack_ids` plus the dead letters' ids, atomically.
pub async fn settle<C: ConnectionLike + Send>(
    conn: &mut C,
    origin: Origin<'_>,
    ack_ids: &[&str],
    dead: &[DeadLetter<'_>],
) -> redis::RedisResult<()> {
    if ack_ids.is_empty() && dead.is_empty() {
        return Ok(());
    }
    let config = origin.config;
    let dead_letter_stream = config.dead_letter_stream();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for letter in dead {
        let cmd = pipe.cmd("XADD").arg(&dead_letter_stream).arg("*");
        for (field, value) in &letter.entry.fields {
            cmd.arg(field).arg(value);
        }
        cmd.arg("error")
            .arg(&letter.error)
            .arg("source_stream")
            .arg(&config.stream)
            .arg("source_id")
            .arg(&letter.entry.id)
            .arg("group")
            .arg(&config.group)
            .arg("consumer")
            .arg(origin.consumer)
            .arg("delivery_count")
            .arg(letter.delivery_count)
            .ignore();
    }
    let ids: Vec<&str> = ack_ids
        .iter()
        .copied()
        .chain(dead.iter().map(|letter| letter.entry.id.as_str()))
        .collect();
    pipe.cmd("XACK")
        .arg(&config.stream)
        .arg(&config.group)
        .arg(&ids)
        .ignore();
    pipe.query_async(conn).await
}
