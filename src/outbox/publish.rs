//! The relay's Redis side: taking over the stream (the fence, then reading back what is already
//! there) and publishing a round, fenced, in one script call.

use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;

use super::cloud_event;
use crate::config::OrderEvents;

/// The stream the events go to, and the fence that keeps a relay that lost its lead out of it.
pub struct Stream {
    pub key: String,
    /// `{<key>}.relay`: in a Redis Cluster, in the stream's slot, so one script touches both.
    fence: String,
    maxlen: Option<u64>,
}

/// A relay's right to publish: the fence's value when it took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(u64);

impl Stream {
    pub fn new(settings: &OrderEvents) -> Self {
        Self {
            key: settings.order_events_topic.clone(),
            fence: settings.fence_key(),
            maxlen: settings.order_events_maxlen,
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
        data: &[String],
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

/// Whether Redis refused a write for a reason of its own (memory, permissions, a slot moving,
/// a failover, a lost lead), which waiting out fixes, rather than for the entry's content.
pub fn refused_for_now(error: &redis::RedisError) -> bool {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_cluster_error()
    {
        return true;
    }
    matches!(
        error.code(),
        Some(
            "OOM"
                | "NOPERM"
                | "MOVED"
                | "ASK"
                | "TRYAGAIN"
                | "CLUSTERDOWN"
                | "LOADING"
                | "READONLY"
                | "MASTERDOWN"
                | "BUSY"
                | "MISCONF"
                | "NOREPLICAS"
                | "FENCED"
        )
    ) || error.code().is_none()
}
