//! What the worker tells the rest of the system: `orders.order.status_changed`, published from
//! the outbox as a Dapr publisher would (DESIGN §2c).

use std::time::Duration;

/// The topic the order service publishes status changes on.
pub const DEFAULT_ORDER_EVENTS_TOPIC: &str = "orders.order.status_changed";
/// The CloudEvent `source`: the order worker's Dapr app-id.
pub const DEFAULT_APP_ID: &str = "order-worker";
/// The Dapr pub/sub component the order service publishes through.
pub const DEFAULT_PUBSUB_NAME: &str = "pubsub-redis";
/// Rows per publishing round (one script call, one DELETE).
pub const DEFAULT_RELAY_BATCH: u32 = 200;

/// Publishing status changes.
#[derive(Clone, Debug, clap::Args)]
pub struct OrderEvents {
    /// `on`: every status change the worker makes is published as `orders.order.status_changed`
    /// (through the outbox, in the transaction that makes it). `off`: none is written to the
    /// outbox nor relayed; only for a deployment whose changes must not be announced (a shadow
    /// on a copy of the database), never the one serving production: fulfillment would never
    /// hear that an order was confirmed (docs/order-events.md).
    #[arg(long, env = "ORDER_EVENTS", default_value = "on", value_parser = parse_on_off)]
    pub order_events: bool,
    /// Write the status changes into the order service's own outbox table instead of the
    /// worker's `order_events_outbox`, so that it holds every status change, whoever made it.
    /// It must be RELAY_TABLE, whose relay publishes them [default: the worker's own outbox].
    #[arg(long, env = "ORDER_EVENTS_TABLE")]
    pub order_events_table: Option<super::TableName>,
    /// The stream key the events go to (Dapr: the topic name).
    #[arg(long, env = "ORDER_EVENTS_TOPIC", default_value = DEFAULT_ORDER_EVENTS_TOPIC)]
    pub order_events_topic: String,
    /// `XADD … MAXLEN ~ <n>`: trims the stream to about this many entries as it grows
    /// (Dapr component: maxLenApprox) [default: no trimming].
    #[arg(long, env = "ORDER_EVENTS_MAXLEN")]
    pub order_events_maxlen: Option<u64>,
    /// The CloudEvent `source`: the app-id subscribers know the publisher by.
    #[arg(long, env = "APP_ID", default_value = DEFAULT_APP_ID)]
    pub app_id: String,
    /// The CloudEvent `pubsubname`: the Dapr component subscribers read it through.
    #[arg(long, env = "PUBSUB_NAME", default_value = DEFAULT_PUBSUB_NAME)]
    pub pubsub_name: String,
    /// Rows the relay publishes per round. A relay that dies between publishing a round and
    /// deleting its rows leaves at most this many published rows behind; the next one finds
    /// them among the stream's newest entries.
    #[arg(long, env = "RELAY_BATCH", default_value_t = DEFAULT_RELAY_BATCH, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub relay_batch: u32,
    /// How often a replica that does not relay tries to take over (the relay's leader lock is
    /// freed the moment its holder's PostgreSQL session ends).
    #[arg(long, env = "RELAY_TAKEOVER_INTERVAL", default_value = "1s", value_parser = super::parse_duration)]
    pub relay_takeover_interval: Duration,
}

impl Default for OrderEvents {
    fn default() -> Self {
        Self {
            order_events: true,
            order_events_table: None,
            order_events_topic: DEFAULT_ORDER_EVENTS_TOPIC.to_owned(),
            order_events_maxlen: None,
            app_id: DEFAULT_APP_ID.to_owned(),
            pubsub_name: DEFAULT_PUBSUB_NAME.to_owned(),
            relay_batch: DEFAULT_RELAY_BATCH,
            relay_takeover_interval: Duration::from_secs(1),
        }
    }
}

impl OrderEvents {
    /// Publishing beside `stream` (`<stream>.orders.order.status_changed`, as
    /// `Topics::stream_only` names the other topics' streams): what tests and the demo use, so
    /// that they never share the real topic's key.
    pub fn beside(stream: &str) -> Self {
        Self {
            order_events_topic: format!("{stream}.{DEFAULT_ORDER_EVENTS_TOPIC}"),
            ..Self::default()
        }
    }

    /// The key of the relay's fence on the order events stream: [`fence_of`] its topic.
    pub fn fence_key(&self) -> String {
        fence_of(&self.order_events_topic)
    }

    /// How many of the stream's newest entries a relay taking over reads back: those a dead
    /// relay may have published without deleting their rows (one round), with room for
    /// entries others added since. Exact while fewer than `readback - relay_batch` entries
    /// reach the stream from other publishers between the dead relay's last XADD and the
    /// takeover (docs/order-events.md).
    pub fn readback(&self) -> usize {
        (self.relay_batch as usize * 10).max(2_000)
    }
}

/// The key of a relay's fence on stream `topic`, in the stream's Redis Cluster slot (one
/// script touches both): `{<topic>}.relay`, or `<topic>.relay` when the topic has a hash tag of
/// its own.
pub fn fence_of(topic: &str) -> String {
    let tagged = topic
        .find('{')
        .and_then(|open| topic[open + 1..].find('}'))
        .is_some_and(|length| length > 0);
    if tagged {
        format!("{topic}.relay")
    } else {
        format!("{{{topic}}}.relay")
    }
}

fn parse_on_off(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("{other:?}: write on or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::OrderEvents;

    #[test]
    fn the_fence_shares_the_stream_s_cluster_slot() {
        let fence = |topic: &str| {
            OrderEvents {
                order_events_topic: topic.to_owned(),
                ..OrderEvents::default()
            }
            .fence_key()
        };
        let cases = [
            (
                "orders.order.status_changed",
                "{orders.order.status_changed}.relay",
            ),
            ("{orders}.status_changed", "{orders}.status_changed.relay"),
        ];
        for (topic, want) in cases {
            assert_eq!(fence(topic), want, "{topic}");
        }
    }
}
