//! The consumer group: created on start (and again if Redis lost it), never deleted here;
//! and what `XINFO GROUPS` says of it.

use redis::aio::ConnectionLike;
use redis::streams::{
    StreamInfoConsumer, StreamInfoConsumersReply, StreamInfoGroup, StreamInfoGroupsReply,
};

use crate::config::{StreamConfig, Subscription};

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
            warn_if_dapr_reads(conn, config).await;
            Ok(())
        }
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        Err(error) => Err(error),
    }
}

/// Whether a group with these consumers is Dapr's: its `pubsub.redis` reads as one consumer
/// named after its `consumerID`, in the group of that name, from every replica. This worker
/// never names a consumer after its group (its consumers are pod names).
pub fn has_dapr_signature<'a>(group: &str, mut consumers: impl Iterator<Item = &'a str>) -> bool {
    consumers.any(|consumer| consumer == group)
}

/// Every group of `stream` (`XINFO GROUPS`) with its consumers (`XINFO CONSUMERS`).
pub async fn groups_with_consumers<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
) -> redis::RedisResult<Vec<(StreamInfoGroup, Vec<StreamInfoConsumer>)>> {
    let mut found = Vec::new();
    for group in groups(conn, stream).await? {
        let reply: StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(&group.name)
            .query_async(conn)
            .await?;
        found.push((group, reply.consumers));
    }
    Ok(found)
}

/// The groups of `stream` carrying Dapr's signature.
pub async fn dapr_groups<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
) -> redis::RedisResult<Vec<String>> {
    let found = groups_with_consumers(conn, stream).await?;
    Ok((found.into_iter())
        .filter(|(group, consumers)| {
            let names = consumers.iter().map(|consumer| consumer.name.as_str());
            has_dapr_signature(&group.name, names)
        })
        .map(|(group, _)| group.name)
        .collect())
}

/// A group just created on a stream Dapr reads in another group: if this worker replaces that
/// subscription, CONSUMER_GROUP is wrong. Said once, when the group is created; start-up goes
/// on, since a stream may rightly have other apps' Dapr groups.
async fn warn_if_dapr_reads<C: ConnectionLike + Send>(conn: &mut C, config: &StreamConfig) {
    let dapr = match dapr_groups(conn, &config.stream).await {
        Ok(dapr) => dapr,
        Err(error) => {
            tracing::debug!(stream = %config.stream, "could not look for Dapr's groups: {error}");
            return;
        }
    };
    if dapr.is_empty() {
        return;
    }
    tracing::warn!(
        stream = %config.stream,
        group = %config.group,
        dapr_groups = %dapr.join(","),
        "created consumer group {} on stream {}, which Dapr reads in group {}: if this worker \
         takes over that subscription, set CONSUMER_GROUP={} (else the stream is read again from \
         GROUP_START_ID={} and Dapr's pending entries are never taken over; `order-worker \
         preflight` tells)",
        config.group,
        config.stream,
        dapr.join(", "),
        dapr[0],
        config.group_start_id
    );
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

/// One subscription and how far its group is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubscriptionStatus {
    pub topic: String,
    pub stream: String,
    pub group: String,
    pub dead_letter_stream: String,
    /// Whether the group exists yet (a worker creates it when it starts).
    pub group_exists: bool,
    /// Entries not delivered to the group yet (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Delivered and not acknowledged yet.
    pub pending: u64,
}

/// Each subscription with its group's lag and pending count, read now.
pub async fn subscription_statuses<C: ConnectionLike + Send>(
    conn: &mut C,
    subscriptions: &[Subscription],
) -> redis::RedisResult<Vec<SubscriptionStatus>> {
    let mut statuses = Vec::with_capacity(subscriptions.len());
    for Subscription { topic, stream } in subscriptions {
        // No stream yet: nothing was published, and no worker created the group.
        let exists: bool = redis::cmd("EXISTS")
            .arg(&stream.stream)
            .query_async(conn)
            .await?;
        let group = match exists {
            true => group_info(conn, &stream.stream, &stream.group).await?,
            false => None,
        };
        statuses.push(SubscriptionStatus {
            topic: topic.name().to_owned(),
            stream: stream.stream.clone(),
            group: stream.group.clone(),
            dead_letter_stream: stream.dead_letter_stream(),
            group_exists: group.is_some(),
            lag: group.as_ref().and_then(|g| g.lag).map(|lag| lag as u64),
            pending: group.map_or(0, |g| g.pending as u64),
        });
    }
    Ok(statuses)
}
