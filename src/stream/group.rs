//! The consumer group: created on start (and again if Redis lost it), never deleted here;
//! and what `XINFO GROUPS` says of it.

use redis::aio::ConnectionLike;
use redis::streams::{StreamInfoGroup, StreamInfoGroupsReply};

use crate::config::StreamConfig;

/// `XGROUP CREATE <stream> <group> <start> MKSTREAM`; an existing group (`BUSYGROUP`) is left
/// as it is, so replicas starting together and restarts are harmless.
pub async fn ensure_group<C: ConnectionLike + Send>(
    conn: &mut C,
    config: &StreamConfig,
) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&config.stream)
        .arg(&config.group)
        .arg(&config.group_start_id)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(()) => {
            tracing::info!(
                stream = %config.stream,
                group = %config.group,
                start_id = %config.group_start_id,
                "created consumer group"
            );
            Ok(())
        }
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        Err(error) => Err(error),
    }
}

/// Every consumer group of `stream` (`XINFO GROUPS`); an error if the stream does not exist.
pub async fn groups<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
) -> redis::RedisResult<Vec<StreamInfoGroup>> {
    let reply: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    Ok(reply.groups)
}

/// The group named `group` of `stream`, if it exists.
pub async fn group_info<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> redis::RedisResult<Option<StreamInfoGroup>> {
    let groups = groups(conn, stream).await?;
    Ok(groups.into_iter().find(|info| info.name == group))
}
