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

/// What to do on one stream: ack these, dead-letter those (to its dead-letter stream).
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub stream: &'a StreamConfig,
    pub ack_ids: Vec<&'a str>,
    pub dead: Vec<DeadLetter<'a>>,
}

/// XADDs each dead letter to the stream's dead-letter stream (original fields plus `error`,
/// `source_stream`, `source_id`, `group`, `consumer`, `delivery_count`) and XACKs the acked ids
/// plus the dead letters' ids: in one MULTI, so an entry is never acked without its copy nor
/// copied twice. One stream at a time: in a cluster, a MULTI may only touch keys of one slot,
/// which a stream and its dead-letter stream share (`{<stream>}.deadletter`).
pub async fn settle<C: ConnectionLike + Send>(
    conn: &mut C,
    consumer: &str,
    settlement: &Settlement<'_>,
) -> redis::RedisResult<()> {
    let Settlement {
        stream: config,
        ack_ids,
        dead,
    } = settlement;
    if ack_ids.is_empty() && dead.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    let dead_letter_stream = config.dead_letter_stream();
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
            .arg(consumer)
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
