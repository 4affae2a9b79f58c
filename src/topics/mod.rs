//! The topics the worker subscribes to. The pipeline (read → decode → apply → verdict →
//! settle) is one and knows no topic: a topic contributes how its payload decodes into an event,
//! what that event does to its order (pure rules, table-tested), the setting that names its
//! stream and, if its events keep rows of their own, their table as data.
//!
//! Adding a topic: a module here implementing [`Topic`] (with its stream-key setting) and
//! [`Change`], and a line in [`ALL`]. If its events keep rows of their own, the module also
//! declares their [`Table`] (listed in [`TABLES`] and [`Rows`]) and a migration creates it:
//! `store` runs every declared table and names none. A topic defined outside the crate is served
//! through a [`Catalogue`] (`Topics::serve`, `Tables::serving`).

mod fulfillment;
mod order;
mod payment;
mod rows;

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::envelope::{self, DecodeError, OrderIds, Payload, TraceContext};
pub use fulfillment::{FulfillmentEvent, FulfillmentStatus, PROCESSING_EVENT};
pub use order::{OrderStatus, UnknownStatus};
#[cfg(test)]
pub use payment::Payment;
pub use payment::PaymentStatus;
pub use rows::{Columns, Row, Rows, Table, TABLES};

/// Every topic the worker serves, in the order `TOPICS` defaults to.
pub const ALL: [&dyn Topic; 3] = [
    &fulfillment::STATUS_CHANGED,
    &payment::CONFIRMED,
    &payment::FAILED,
];

/// The topic whose stream key is the base `STREAM` setting (the worker served it alone first):
/// `STREAM`'s default, and the topic the seed's unlabelled metric names count.
pub const BASE: &str = fulfillment::NAME;

/// The crate's topics' names, for its tests outside this module (which spell no topic).
#[cfg(test)]
pub mod names {
    pub const FULFILLMENT: &str = super::fulfillment::NAME;
    pub const CONFIRMED: &str = super::payment::CONFIRMED_NAME;
    pub const FAILED: &str = super::payment::FAILED_NAME;
}

/// The topic named `name`, if the worker serves it.
pub fn by_name(name: &str) -> Option<&'static dyn Topic> {
    ALL.into_iter().find(|topic| topic.name() == name)
}

/// The topics a worker can be subscribed to, by name: the crate's own (`ALL`) and any added
/// (a topic defined outside the crate, as the tests do).
#[derive(Clone, Debug)]
pub struct Catalogue(Vec<&'static dyn Topic>);

impl Default for Catalogue {
    fn default() -> Self {
        Self(ALL.to_vec())
    }
}

impl Catalogue {
    /// This catalogue and `topic`; one of the same name is replaced.
    pub fn with(mut self, topic: &'static dyn Topic) -> Self {
        self.0.retain(|known| known.name() != topic.name());
        self.0.push(topic);
        self
    }

    /// The topic named `name`, if catalogued.
    pub fn by_name(&self, name: &str) -> Option<&'static dyn Topic> {
        self.0.iter().copied().find(|topic| topic.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static dyn Topic> + '_ {
        self.0.iter().copied()
    }
}

/// Where a topic's stream key is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKey {
    /// The base `STREAM` setting (`BASE`'s).
    Base,
    /// A setting of its own, defaulting to the topic's name: its environment variable and its
    /// long flag (`PAYMENT_FAILED_STREAM`, `payment-failed-stream`).
    Own {
        env: &'static str,
        flag: &'static str,
    },
}

/// One entry of `topic`'s stream, decoded: the envelope (Dapr's format) opened, then its payload
/// read by the topic, its order id as the orders table holds them (`order_ids`).
pub fn decode(
    topic: &'static dyn Topic,
    fields: &[(String, Vec<u8>)],
    max_bytes: usize,
    order_ids: OrderIds,
) -> Result<Event, Undecodable> {
    let opened = envelope::open(fields, max_bytes).map_err(|error| Undecodable {
        error,
        trace: TraceContext::default(),
    })?;
    let change = match topic.decode(opened.payload.expecting(order_ids)) {
        Ok(change) => change,
        Err(error) => {
            let trace = opened.trace;
            return Err(Undecodable { error, trace });
        }
    };
    let event_id = opened
        .id
        .unwrap_or_else(|| raw_event_id(&change.identity()));
    Ok(Event {
        event_id,
        topic,
        trace: opened.trace,
        change,
    })
}

/// An entry that did not decode: why, and the trace its envelope named if it opened (the
/// entry's span still joins its publisher's trace).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Undecodable {
    pub error: DecodeError,
    pub trace: TraceContext,
}

impl From<Undecodable> for DecodeError {
    fn from(undecodable: Undecodable) -> Self {
        undecodable.error
    }
}

/// An event the worker recorded (`processed_events`), decoded again from what it said: the
/// same rules then fold it as when it first arrived.
pub fn recorded(
    topic: &'static dyn Topic,
    event_id: String,
    order_id: &str,
    mut said: Map<String, Value>,
) -> Result<Event, DecodeError> {
    said.insert("order_id".to_owned(), order_id.into());
    Ok(Event {
        event_id,
        topic,
        trace: TraceContext::default(),
        change: topic.decode(Payload::recorded(said))?,
    })
}

/// A raw payload has no id, so the key is derived from what identifies the change: the same
/// event published twice gets the same key, in any process and across restarts (hence SHA-256,
/// not std's randomly seeded hasher). NUL separates the parts: ids cannot contain it.
fn raw_event_id(parts: &[&str]) -> String {
    format!("raw-{:x}", Sha256::digest(parts.join("\0").as_bytes()))
}

/// A decoded entry, whatever its topic.
#[derive(Debug)]
pub struct Event {
    /// The idempotency key recorded in the inbox: the CloudEvent `id`, or for a raw payload
    /// `raw-` + a SHA-256 of what identifies the change.
    pub event_id: String,
    pub topic: &'static dyn Topic,
    pub trace: TraceContext,
    pub change: Box<dyn Change>,
}

impl fmt::Debug for dyn Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A topic: its name, and how its payload decodes.
pub trait Topic: Send + Sync {
    /// Dapr's topic name: the default stream key, and the `event_type` of its events.
    fn name(&self) -> &'static str;
    /// The setting that names its stream.
    fn stream_key(&self) -> StreamKey;
    /// Where its events come in an order's life. The worker applies a batch in the order of
    /// entry ids, across streams; ids of two streams in the same millisecond (the ids'
    /// resolution) say nothing of which came first, and the earlier stage goes first.
    fn stage(&self) -> u8;
    /// The event in `payload` (the publisher's JSON object). Checks `event_type` against
    /// [`Topic::name`] when present, and every field the rules need.
    fn decode(&self, payload: Payload) -> Result<Box<dyn Change>, DecodeError>;
    /// Every payload field [`Topic::decode`] reads: `preflight` counts the others as ignored.
    fn fields(&self) -> &'static [&'static str];
    /// The names some of the order service's environments give this topic (its stream key):
    /// `preflight` looks for them when the configured stream is missing.
    fn other_names(&self) -> &'static [&'static str];
}

/// What one decoded event does, whatever its topic.
pub trait Change: fmt::Debug + Send + Sync {
    fn order_id(&self) -> &str;
    /// The row of its own the event moves (loaded with the order's, to check its owner), if
    /// its events keep any.
    fn row(&self) -> Option<Row<'_>>;
    /// What identifies the change when the publisher sent a raw payload (no CloudEvent id): the
    /// same change published twice yields the same parts.
    fn identity(&self) -> Vec<&str>;
    /// The log line for the event, in the words the order service's operators know.
    fn describe(&self) -> String;
    /// What the event said, as its topic decodes it again (`processed_events.said`): the fields
    /// its rules read but the order id (a column of its own), so a late event's order can be
    /// recomputed from its recorded events.
    fn said(&self) -> Map<String, Value>;
    /// The publisher's `metadata` (any JSON, null read as none), kept in the history row of the
    /// move the event causes: operators see where it happened (the warehouse). Part of
    /// [`Change::said`], so a recompute's history rows keep it too.
    fn metadata(&self) -> Option<&Value>;
    /// Folds the event into `state`, given its order's current status (the order exists).
    /// Returns its outcome and, if the order moves, where to and why (the history `reason`).
    fn apply(&self, order: OrderStatus, state: &mut State) -> (Outcome, Option<Move>);
    /// For tests, which compare a decoded event with the one expected.
    #[cfg(test)]
    fn as_any(&self) -> &dyn std::any::Any;
}

/// An order status change an event calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub to: OrderStatus,
    pub reason: String,
}

/// What happened to one event. Every event of a batch gets exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its entity moved (a fulfillment, a payment), and the order with it if the rules say so.
    Applied,
    /// The event id was already processed: nothing written.
    Duplicate,
    /// Older than what is recorded (out of order, or after a terminal status).
    Stale,
    /// Valid, but nothing moves (already at that status, or the order is past caring).
    Ignored,
    /// Valid, but contradicts the order's state in a way a person must resolve (money taken
    /// for a closed order): nothing moves, a warning is logged and counted.
    Conflict,
    /// The order does not exist (yet): left pending, so it is retried.
    UnknownOrder,
    /// Can never apply (its entity belongs to another order): dead-lettered with this reason.
    Rejected(String),
}

impl Outcome {
    /// The name used in logs, the inbox, metrics and summaries.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Conflict => "conflict",
            Self::UnknownOrder => "unknown_order",
            Self::Rejected(_) => "rejected",
        }
    }

    /// Whether the event is recorded in the inbox. Unknown-order and rejected events are not,
    /// so a later delivery (once the order exists, or a requeue after a fix) is applied, not
    /// reported as a duplicate.
    pub fn is_recorded(&self) -> bool {
        matches!(
            self,
            Self::Applied | Self::Stale | Self::Ignored | Self::Conflict
        )
    }
}

/// The batch's orders and their rows as loaded (under `FOR UPDATE`), as the events leave them,
/// and which rows they changed.
#[derive(Debug, Default)]
pub struct State {
    pub orders: HashMap<String, OrderStatus>,
    /// The batch's orders in a status of the order service's own that the rules do not know
    /// (an adopted table holds what its owner writes): their events are refused, not applied.
    pub foreign: HashMap<String, String>,
    /// The topics' own rows: every one of the batch's orders, and every one the batch names.
    pub rows: Rows,
    /// The batch's events already in the inbox.
    pub processed: Processed,
    /// What the events changed of the orders besides their status.
    pub changed: Changed,
}

/// Events already recorded, by the inbox's key: an event id within its order, or (until
/// `migrate --contract`, as earlier builds keyed it) the event id alone.
#[derive(Debug, Default)]
pub struct Processed {
    by_event_id: bool,
    keys: HashSet<(String, String)>,
}

impl Processed {
    /// Keyed by the event id alone: the same id under another order is the same event.
    pub fn by_event_id() -> Self {
        Self {
            by_event_id: true,
            ..Self::default()
        }
    }

    pub fn insert(&mut self, order_id: &str, event_id: &str) {
        self.keys.insert(self.key(order_id, event_id));
    }

    pub fn contains(&self, order_id: &str, event_id: &str) -> bool {
        self.keys.contains(&self.key(order_id, event_id))
    }

    fn key(&self, order_id: &str, event_id: &str) -> (String, String) {
        let order_id = if self.by_event_id { "" } else { order_id };
        (order_id.to_owned(), event_id.to_owned())
    }
}

/// What the events changed of the orders besides their status.
#[derive(Debug, Default)]
pub struct Changed {
    /// The latest fulfillment status an order's events reported (`orders.fulfillment_status`).
    pub fulfillment_status: HashMap<String, FulfillmentStatus>,
}

/// Ids in first-inserted order, without repeats (a batch changes hundreds: no linear search).
#[derive(Debug, Default, Clone)]
pub struct Ordered {
    ids: Vec<String>,
    seen: HashSet<String>,
}

impl Ordered {
    pub fn insert(&mut self, id: &str) {
        if self.seen.insert(id.to_owned()) {
            self.ids.push(id.to_owned());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod decode_tests;

#[cfg(test)]
mod fields_tests {
    use super::*;

    /// A payload with every field the topic says it reads, each with a value it accepts.
    fn full(topic: &dyn Topic) -> Map<String, Value> {
        (topic.fields().iter())
            .map(|&name| {
                let value = match name {
                    "event_type" => topic.name(),
                    "new_status" => "shipped",
                    "amount" => "12.50",
                    "metadata" => {
                        return (name.to_owned(), serde_json::json!({"warehouse_id": "x"}))
                    }
                    _ => "x",
                };
                (name.to_owned(), Value::from(value))
            })
            .collect()
    }

    #[test]
    fn what_a_topic_keeps_of_an_event_is_among_the_fields_it_says_it_reads() {
        for topic in ALL {
            let change = topic
                .decode(Payload::recorded(full(topic)))
                .unwrap_or_else(|error| panic!("{}: {error}", topic.name()));
            for kept in change.said().keys() {
                assert!(
                    topic.fields().contains(&kept.as_str()),
                    "{} keeps {kept}, which its fields() leave out: preflight would call it ignored",
                    topic.name()
                );
            }
        }
    }
}
