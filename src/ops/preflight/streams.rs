//! What preflight reads of one subscribed stream, read-only: its extent (`XLEN`, its first and
//! last entries), its groups and their consumers (`XINFO`), and, when it does not exist, whether
//! the topic's stream goes by another of the order service's names here.

use anyhow::Context;
use serde::Serialize;

use super::groups::{joining, Consumer, Group, Joining};
use crate::config::Subscription;
use crate::ops::{count_range, key_type};
use crate::stream::id::StreamId;
use crate::stream::RedisConnection;
use crate::topics::Topic;

/// One stream as preflight found it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamFacts {
    pub topic: &'static str,
    pub stream: String,
    pub exists: bool,
    pub length: u64,
    pub first: Option<EntryAge>,
    pub last: Option<EntryAge>,
    pub groups: Vec<Group>,
    /// CONSUMER_GROUP.
    pub consumer_group: String,
    /// What `run` does with it here.
    pub joining: Joining,
    /// When the stream does not exist: the topic's other names that hold a stream here.
    pub found_instead: Vec<String>,
}

/// An entry's id and how old it is by Redis's clock.
#[derive(Debug, Clone, Serialize)]
pub struct EntryAge {
    pub id: String,
    pub age_ms: u64,
}

impl StreamFacts {
    /// Dapr's group when there is no doubt which (CONSUMER_GROUP if it is Dapr's, else the only
    /// group with Dapr's signature), else every group with the signature.
    pub fn dapr_groups(&self) -> Vec<&str> {
        let dapr = (self.groups.iter()).filter(|group| group.dapr_signature);
        match dapr.clone().find(|group| group.name == self.consumer_group) {
            Some(configured) => vec![configured.name.as_str()],
            None => dapr.map(|group| group.name.as_str()).collect(),
        }
    }
}

/// Reads `subscription`'s stream; `now_ms` is Redis's clock.
pub async fn read(
    redis: &mut RedisConnection,
    subscription: &Subscription,
    now_ms: u64,
) -> anyhow::Result<StreamFacts> {
    let config = &subscription.stream;
    let key = config.stream.as_str();
    let mut facts = StreamFacts {
        topic: subscription.topic.name(),
        stream: key.to_owned(),
        exists: false,
        length: 0,
        first: None,
        last: None,
        groups: Vec::new(),
        consumer_group: config.group.clone(),
        joining: Joining::Creates { replayed: 0 },
        found_instead: Vec::new(),
    };
    match key_type(redis, key).await?.as_str() {
        "stream" => {}
        "none" => {
            for other in other_keys(subscription.topic, key) {
                if key_type(redis, &other).await? == "stream" {
                    facts.found_instead.push(other);
                }
            }
            return Ok(facts);
        }
        other => anyhow::bail!("key {key} holds a {other}, not a stream"),
    }
    facts.exists = true;
    // One `XINFO STREAM`: the length and both ends agree.
    let extent = crate::stream::extent(redis, key)
        .await
        .with_context(|| format!("reading the extent of {key} (XINFO STREAM)"))?;
    facts.length = extent.length;
    let aged = |id: StreamId| EntryAge {
        id: id.to_string(),
        age_ms: now_ms.saturating_sub(id.ms),
    };
    facts.first = extent.oldest.map(aged);
    facts.last = extent.newest.map(aged);
    facts.groups = groups(redis, key).await?;
    let replayed = replayed(redis, key, &config.group_start_id, extent.length).await?;
    facts.joining = joining(
        key,
        &config.group,
        &config.group_start_id,
        &facts.groups,
        replayed,
    );
    Ok(facts)
}

/// Where the topic's stream would be under its other names: in place of the name `key` ends
/// with, so a prefix (`staging.payment.failed`) is kept.
fn other_keys(topic: &dyn Topic, key: &str) -> Vec<String> {
    let names = || std::iter::once(topic.name()).chain(topic.other_names().iter().copied());
    let own = names()
        .filter(|name| key.ends_with(name))
        .max_by_key(|name| name.len());
    match own {
        Some(own) => {
            let prefix = &key[..key.len() - own.len()];
            (names().filter(|name| *name != own))
                .map(|name| format!("{prefix}{name}"))
                .collect()
        }
        None => names().map(str::to_owned).collect(),
    }
}

/// Every group of `key` with its consumers.
async fn groups(redis: &mut RedisConnection, key: &str) -> anyhow::Result<Vec<Group>> {
    let found = crate::stream::group::groups_with_consumers(redis, key)
        .await
        .with_context(|| format!("reading the consumer groups of {key} and their consumers"))?;
    let groups = found.into_iter().map(|(group, consumers)| {
        let consumers = (consumers.into_iter())
            .map(|consumer| Consumer {
                name: consumer.name,
                pending: consumer.pending as u64,
                idle_ms: consumer.idle as u64,
            })
            .collect();
        Group::new(
            group.name,
            consumers,
            group.pending as u64,
            group.lag.map(|lag| lag as u64),
            group.last_delivered_id,
        )
    });
    Ok(groups.collect())
}

/// How many entries a group created now at `start_id` would be delivered: all of them from
/// `0`, none from `$`, else those after the id.
async fn replayed(
    redis: &mut RedisConnection,
    key: &str,
    start_id: &str,
    length: u64,
) -> anyhow::Result<u64> {
    match start_id {
        "$" => Ok(0),
        "0" | "0-0" => Ok(length),
        id => {
            let hidden = indicatif::ProgressBar::hidden();
            count_range(redis, key, &format!("({id}"), StreamId::MAX, &hidden).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::names::{FAILED, FULFILLMENT};

    #[test]
    fn a_topic_s_other_names_take_the_place_of_the_one_the_key_ends_with() {
        let failed = crate::topics::by_name(FAILED).expect("topic");
        assert_eq!(other_keys(failed, FAILED), ["payments.payment.failed"]);
        assert_eq!(other_keys(failed, "payments.payment.failed"), [FAILED]);
        assert_eq!(
            other_keys(failed, "staging.payment.failed"),
            ["staging.payments.payment.failed"]
        );
        assert_eq!(
            other_keys(failed, "pf-failed"),
            [FAILED, "payments.payment.failed"]
        );
        let fulfillment = crate::topics::by_name(FULFILLMENT).expect("topic");
        assert_eq!(
            other_keys(fulfillment, FULFILLMENT),
            ["fulfillments.fulfillment.status_changed"]
        );
    }
}
