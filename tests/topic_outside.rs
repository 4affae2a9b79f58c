//! A topic is one module: `order.cancel_requested`, defined here and nowhere in the crate,
//! goes through the whole pipeline (read, decode, apply, inbox, ack, dead letters) once the
//! worker's topics serve it. Its events keep no rows of their own.

mod support;

use order_worker::{
    apply_batch, decode, Catalogue, Change, DecodeError, Event, FulfillmentStatus, Incoming, Move,
    OrderStatus, Outcome, Payload, Row, State, StreamKey, TableName, Tables, Topic,
    DEFAULT_MAX_ENTRY_BYTES,
};
use order_worker_dev::publisher::{self, Format};
use serde_json::{json, Map, Value};
use support::payments::{dead_letters_of, history_row, pending_on};
use support::TestEnv;

const NAME: &str = "order.cancel_requested";

/// The customer asked to cancel an order: it is cancelled unless it has gone too far.
struct CancelRequested;

static CANCEL_REQUESTED: CancelRequested = CancelRequested;

impl Topic for CancelRequested {
    fn name(&self) -> &'static str {
        NAME
    }

    fn stream_key(&self) -> StreamKey {
        StreamKey::Own {
            env: "ORDER_CANCEL_REQUESTED_STREAM",
            flag: "order-cancel-requested-stream",
        }
    }

    /// Before the payments: a cancelled order takes no money.
    fn stage(&self) -> u8 {
        0
    }

    fn decode(&self, payload: Payload) -> Result<Box<dyn Change>, DecodeError> {
        payload.expect_event_type(self.name())?;
        Ok(Box::new(Request {
            order_id: payload.order_id()?,
            reason: payload.text("reason")?,
            timestamp: payload.text("timestamp")?,
        }))
    }

    fn fields(&self) -> &'static [&'static str] {
        &["event_type", "order_id", "reason", "timestamp"]
    }

    fn other_names(&self) -> &'static [&'static str] {
        &[]
    }
}

#[derive(Debug)]
struct Request {
    order_id: String,
    reason: Option<String>,
    timestamp: Option<String>,
}

impl Change for Request {
    fn order_id(&self) -> &str {
        &self.order_id
    }

    fn row(&self) -> Option<Row<'_>> {
        None
    }

    fn identity(&self) -> Vec<&str> {
        vec![&self.order_id, self.timestamp.as_deref().unwrap_or("")]
    }

    fn describe(&self) -> String {
        format!("Processing cancel request: order_id={}", self.order_id)
    }

    fn said(&self) -> Map<String, Value> {
        let mut said = Map::new();
        if let Some(reason) = &self.reason {
            said.insert("reason".into(), reason.clone().into());
        }
        said
    }

    fn metadata(&self) -> Option<&Value> {
        None
    }

    fn apply(&self, order: OrderStatus, _: &mut State) -> (Outcome, Option<Move>) {
        use OrderStatus::*;
        match order {
            Pending | Confirmed | Processing => {
                let reason = "CancelRequested".to_owned();
                let to = Cancelled;
                (Outcome::Applied, Some(Move { to, reason }))
            }
            Cancelled => (Outcome::Ignored, None),
            _ => (Outcome::Stale, None),
        }
    }
}

/// XADDs a cancel request as Dapr would; returns the entry id.
async fn publish(env: &TestEnv, key: &str, event: &Value, cloud_event_id: &str) -> String {
    let fields = publisher::entry_fields(NAME, event, cloud_event_id, Format::CloudEvent);
    publisher::publish(&mut env.redis.clone(), key, &fields)
        .await
        .expect("XADD")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_defined_outside_the_crate_goes_through_the_whole_pipeline() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    let key = format!("{}.{NAME}", env.stream.stream);
    let request = |order: &str| {
        json!({"event_type": NAME, "order_id": order, "reason": "changed_mind",
               "timestamp": "2026-12-08T00:00:00Z"})
    };
    publish(&env, &key, &request("o1"), "ce-cancel-1").await;
    // Dapr redelivers the same CloudEvent: the inbox already has it.
    publish(&env, &key, &request("o1"), "ce-cancel-1").await;
    let undecodable = json!({"event_type": NAME, "reason": "changed_mind"});
    let bad = publish(&env, &key, &undecodable, "ce-cancel-bad").await;

    let mut config = env.config("w1");
    config.topics = config.topics.serve(&CANCEL_REQUESTED, key.clone());
    let subscribed = config.subscriptions().expect("the topic resolves");
    assert!(subscribed.iter().any(|s| s.topic.name() == NAME));
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker
        .wait_for(|p| p.applied >= 1 && p.duplicate >= 1 && p.dead_lettered >= 1)
        .await;
    worker.stop().await;

    assert_eq!(
        (progress.applied, progress.duplicate, progress.dead_lettered),
        (1, 1, 1),
        "{progress:?}"
    );
    assert_eq!(env.order_status("o1").await, "cancelled");
    assert_eq!(env.order_status("o2").await, "confirmed", "not named");
    assert_eq!(
        env.history("o1").await,
        [history_row("confirmed", "cancelled", "CancelRequested")]
    );
    assert_eq!(
        env.inbox_outcome("ce-cancel-1").await.as_deref(),
        Some("applied")
    );
    let letters = dead_letters_of(&env, &key).await;
    let letters: Vec<(&str, &str)> = (letters.iter())
        .map(|l| (l["source_id"].as_str(), l["error"].as_str()))
        .collect();
    assert_eq!(letters, [(bad.as_str(), "event has no `order_id`")]);
    assert_eq!(pending_on(&env, &key).await, Some(0), "every entry acked");
}

/// `event` of `topic` as the worker decodes it from Dapr's entry.
fn decoded(topic: &'static dyn Topic, event: &Value, cloud_event_id: &str) -> Event {
    let fields = publisher::entry_fields(topic.name(), event, cloud_event_id, Format::CloudEvent);
    let fields: Vec<(String, Vec<u8>)> = (fields.into_iter())
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    decode(topic, &fields, DEFAULT_MAX_ENTRY_BYTES, Default::default()).expect("decodes")
}

/// A late event's order is recomputed from its recorded events, decoded again by their topic's
/// name: the tables' catalogue finds this one too.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_with_a_recorded_cancel_request_is_recomputed_for_a_late_event() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let mut conn = env.db().await;
    let tables = Tables::inspect(&mut conn, &TableName::default())
        .await
        .expect("the tables")
        .serving(Catalogue::default().with(&CANCEL_REQUESTED));
    let cancel = json!({"event_type": NAME, "order_id": "o1", "timestamp": "2026-12-08T00:00:02Z"});
    let cancel = decoded(&CANCEL_REQUESTED, &cancel, "ce-cancel");
    let apply = async |conn: &mut _, entry_id, event| {
        let batch = [Incoming { entry_id, event }];
        apply_batch(conn, &tables, &batch).await.expect("committed")
    };
    let plan = apply(&mut conn, "2000-0", &cancel).await;
    assert_eq!(plan.outcomes, [Outcome::Applied]);

    // The fulfillment's planning, published before the request, comes after it.
    let fulfillment = order_worker::topic("fulfillment.status_changed").expect("served");
    let planning = publisher::event(
        "o1",
        "f1",
        None,
        FulfillmentStatus::Planning,
        "2026-12-08T00:00:01Z",
    );
    let planning = decoded(fulfillment, &planning, "ce-planning");
    let plan = apply(&mut conn, "1000-0", &planning).await;
    assert_eq!(plan.recomputed, ["o1"]);
    assert_eq!(env.order_status("o1").await, "cancelled");
    assert_eq!(
        env.history("o1").await,
        [
            history_row("confirmed", "processing", "FulfillmentPlanning"),
            history_row("processing", "cancelled", "CancelRequested"),
        ]
    );
}

#[test]
fn a_catalogue_finds_a_topic_added_to_it_by_name() {
    let catalogue = Catalogue::default().with(&CANCEL_REQUESTED);
    assert_eq!(catalogue.by_name(NAME).map(|t| t.name()), Some(NAME));
    assert!(Catalogue::default().by_name(NAME).is_none());
}
