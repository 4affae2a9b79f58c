//! Redis Streams: the consumer group, reading entries, and settling them (ack or dead-letter).

pub mod group;
pub mod read;
pub mod settle;

use bb8_redis::RedisConnectionManager;

pub use group::ensure_group;
pub use read::Reader;
pub use settle::{settle, DeadLetter};

/// A pool for short commands (XACK, XADD to the dead-letter stream, XGROUP). The blocking
/// XREADGROUP has a connection of its own ([`Reader`]) so it never holds up an ack.
pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// One stream entry as read: its id and its field/value pairs (values are bytes, because
/// nothing guarantees a publisher wrote UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(String, Vec<u8>)>,
}

/// Builds the pool without connecting; commands retry until Redis answers.
pub fn pool(redis_url: &str) -> anyhow::Result<RedisPool> {
    let manager = RedisConnectionManager::new(redis_url).map_err(|error| {
        anyhow::anyhow!(
            "invalid REDIS_URL {}: {error}",
            crate::config::redact_url(redis_url)
        )
    })?;
    Ok(bb8::Pool::builder()
        .max_size(4)
        .connection_timeout(std::time::Duration::from_secs(5))
        .build_unchecked(manager))
}

/// Whether Redis answered that the group (or its stream) does not exist, e.g. after it lost
/// its data: the group is then created again rather than the worker giving up.
pub fn is_no_group(error: &redis::RedisError) -> bool {
    error.code() == Some("NOGROUP")
}
