//! One connection type for every topology, so the code that sends commands never asks which:
//! a multiplexed connection to one server (alone, or the master Sentinel names), or a cluster
//! connection, which routes each command to the master of its key's slot and follows
//! MOVED/ASK redirections (a resharding) by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

/// A connection to Redis, whatever its topology. Cheap to clone: clones share the connection,
/// and commands sent through them at once are pipelined.
#[derive(Clone)]
pub enum RedisConnection {
    Server(MultiplexedConnection),
    Cluster(ClusterLink),
}

/// A cluster connection, and whether its map of slots is known to be out of date.
#[derive(Clone)]
pub struct ClusterLink {
    conn: ClusterConnection,
    stale: Arc<AtomicBool>,
}

impl RedisConnection {
    pub(super) fn cluster(conn: ClusterConnection) -> Self {
        Self::Cluster(ClusterLink {
            conn,
            stale: Arc::default(),
        })
    }

    /// Whether a MULTI came back aborted by a redirection: redis-rs follows `MOVED` and `ASK`
    /// for single commands (learning the new slot map) but not inside a transaction, so this
    /// connection would send the next MULTI to the old master again. The pool replaces it.
    pub fn is_stale(&self) -> bool {
        match self {
            Self::Server(_) => false,
            Self::Cluster(link) => link.stale.load(Ordering::Relaxed),
        }
    }
}

/// A transaction aborted because a key's slot is (being) moved elsewhere.
fn redirected(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort)
        && error.clone().into_server_errors().is_some_and(|errors| {
            errors.iter().any(|(_, e)| {
                matches!(
                    e.kind(),
                    Some(ServerErrorKind::Moved | ServerErrorKind::Ask)
                )
            })
        })
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(conn) => conn.req_packed_command(cmd),
            Self::Cluster(link) => link.conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(link) => Box::pin(async move {
                let reply = link.conn.req_packed_commands(pipeline, offset, count).await;
                if reply.as_ref().is_err_and(redirected) {
                    link.stale.store(true, Ordering::Relaxed);
                }
                reply
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(conn) => conn.get_db(),
            Self::Cluster(link) => link.conn.get_db(),
        }
    }
}
