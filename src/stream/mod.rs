//! Redis Streams: the consumer group, reading entries, and settling them (ack or dead-letter).

pub mod client;
pub mod connect;
pub mod extent;
pub mod group;
pub mod id;
pub mod pending;
pub mod position;
pub mod read;
pub(crate) mod reply;
pub mod settle;

pub use connect::RedisConnection;
pub use extent::extent;
pub use group::{ensure_group, group_info, groups};
pub use pending::{autoclaim, claim_held, delivery_counts, keep_alive};
use position::Position;
pub use read::Reader;
pub use settle::{settle, DeadLetter, Settlement};

/// A pool for short commands (XACK, XADD to the dead-letter stream, XGROUP). The blocking
/// XREADGROUP has a connection of its own ([`Reader`]) so it never holds up an ack.
pub type RedisPool = bb8::Pool<connect::RedisTarget>;

/// One stream entry as read: which of the streams read it came from (an index into them), its
/// id and its field/value pairs (values are bytes: nothing guarantees a publisher wrote UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub source: usize,
    pub id: String,
    pub fields: Vec<(String, Vec<u8>)>,
}

/// Builds the pool without connecting; commands retry until Redis answers.
pub fn pool(target: connect::RedisTarget) -> RedisPool {
    // bb8 tests each connection on checkout (a PING, or with Sentinel a ROLE): a multiplexed
    // connection does not reconnect by itself, so this is how one cut by the network, or left
    // on a demoted master, gets replaced.
    bb8::Pool::builder()
        .max_size(4)
        .connection_timeout(std::time::Duration::from_secs(5))
        .build_unchecked(target)
}

/// Whether Redis answered that the group (or its stream) does not exist, e.g. after it lost
/// its data: the group is then created again rather than the worker giving up.
pub fn is_no_group(error: &redis::RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

/// What one read returned.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub entries: Vec<StreamEntry>,
    /// (source, id) still pending for us whose entry was deleted from the stream (XDEL,
    /// trimming): nothing to process, so they are acked.
    pub deleted: Vec<(usize, String)>,
    /// Read from a pending list (our own after a restart, or claimed), so entries may have
    /// been delivered before: their delivery counts must be looked up.
    pub redelivered: bool,
}

impl ReadBatch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.deleted.is_empty()
    }

    /// Adds `other`'s entries (read from other streams) to these.
    pub fn merge(&mut self, other: ReadBatch) {
        self.entries.extend(other.entries);
        self.deleted.extend(other.deleted);
        self.redelivered |= other.redelivered;
    }

    /// Every (source, id) read.
    pub fn ids(&self) -> impl Iterator<Item = (usize, &str)> {
        self.entries
            .iter()
            .map(|entry| (entry.source, entry.id.as_str()))
            .chain(
                self.deleted
                    .iter()
                    .map(|(source, id)| (*source, id.as_str())),
            )
    }

    /// Puts entries read from several streams in the order one worker would apply them
    /// ([`Position`]): the server's clock, so one order's events apply in the order they were
    /// published, whatever their stream; `stage` of their source breaks a same-millisecond tie.
    pub fn sort_by_position(&mut self, stage: impl Fn(usize) -> u8) {
        self.entries
            .sort_by_key(|entry| Position::new(&entry.id, stage(entry.source)));
    }
}
