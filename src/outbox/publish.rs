//! The relay's Redis side: taking over the stream (the fence, then reading back what is already
//! there) and publishing a round, fenced, in one script call.

use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;

use super::cloud_event;
use super::Source;

/// The stream the events go to, and the fence that keeps a relay that lost its lead out of it.
pub struct Stream {
    pub key: String,
    /// `{<key>}.relay` (and the table, for the order service's): in a Redis Cluster, in the
    /// stream's slot, so one script touches both.
    fence: String,
    maxlen: Option<u64>,
}

/// A relay's right to publish: the fence's value when it took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(u64);

impl Stream {
    /// Stream `key` as `source` publishes to it.
    pub fn new(key: &str, source: &Source) -> Self {
        Self {
            key: key.to_owned(),
            fence: source.fence(key),
            maxlen: source.maxlen,
        }
    }

    /// Takes the stream over: moves the fence on (a relay still publishing under the last
    /// value is refused from now on), then reads the newest `readback` entries' CloudEvent ids
    /// (what an earlier relay may have published without deleting its rows).
    pub async fn take_over<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        readback: usize,
    ) -> redis::RedisResult<(Lease, Vec<String>)> {
        let lease: u64 = redis::cmd("INCR")
            .arg(&self.fence)
            .query_async(conn)
            .await?;
        let newest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(readback)
            .query_async(conn)
            .await?;
        let ids = newest
            .ids
            .iter()
            .filter_map(|entry| match entry.map.get("data") {
                Some(redis::Value::BulkString(data)) => cloud_event::event_id(data),
                _ => None,
            })
            .collect();
        Ok((Lease(lease), ids))
    }

    /// XADDs each of `data` (the entries' `data` fields, in order) as long as `lease` holds;
    /// returns their entry ids. Fails with `FENCED` once another relay has taken over.
    pub async fn publish<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        lease: Lease,
        data: &[&str],
    ) -> redis::RedisResult<Vec<String>> {
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| redis::Script::new(include_str!("publish.lua")));
        let maxlen = self.maxlen.map(|n| n.to_string()).unwrap_or_default();
        script
            .key(&self.key)
            .key(&self.fence)
            .arg(lease.0)
            .arg(maxlen)
            .arg(data)
            .invoke_async(conn)
            .await
    }
}

/// Whether Redis refused a write for the entry's own sake (its size: Redis's
/// `proto-max-bulk-len`), so that waiting never helps. Anything else (memory, permissions, a slot
/// moving, a failover, a key of the wrong type, a lost lead, the connection) is Redis's or the
/// set-up's, and waiting it out (with an alert) is right: the rows must not be held for it.
pub fn refused_for_the_entry(error: &redis::RedisError) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    error.code() == Some("ERR")
        && [
            "bulk length",
            "maximum allowed size",
            "too large",
            "too big",
        ]
        .iter()
        .any(|what| text.contains(what))
}

#[cfg(test)]
mod tests {
    use super::refused_for_the_entry;

    #[test]
    fn only_a_refusal_of_the_entry_s_size_holds_it() {
        let parsed = |code: &str, text: &str| {
            let reply = format!("-{code} {text}\r\n");
            match redis::parse_redis_value(reply.as_bytes()) {
                Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e),
                other => panic!("{other:?}"),
            }
        };
        assert!(refused_for_the_entry(&parsed(
            "ERR",
            "Protocol error: invalid bulk length"
        )));
        assert!(refused_for_the_entry(&parsed(
            "ERR",
            "string exceeds maximum allowed size (proto-max-bulk-len)"
        )));
        for (code, text) in [
            ("OOM", "command not allowed when used memory > 'maxmemory'."),
            (
                "NOPERM",
                "this user has no permissions to access the 'x' key",
            ),
            (
                "WRONGTYPE",
                "Operation against a key holding the wrong kind of value",
            ),
            ("MOVED", "3999 127.0.0.1:6381"),
            ("READONLY", "You can't write against a read only replica."),
            (
                "FENCED",
                "another relay took over: this one stops publishing",
            ),
            ("ERR", "unknown command"),
        ] {
            assert!(!refused_for_the_entry(&parsed(code, text)), "{code} {text}");
        }
    }
}
