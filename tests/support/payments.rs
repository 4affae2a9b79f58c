//! The payment topics' test tooling: publishing payment verdicts in Dapr's formats to a test's
//! own payment streams, and reading back what the worker wrote (payments, inbox outcomes, each
//! stream's group).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel_async::RunQueryDsl;
use order_worker::WorkerConfig;
use order_worker_dev::publisher::{self, Format};
use serde_json::Value;

use super::TestEnv;

pub const CONFIRMED: &str = "payment.confirmed";
pub const FAILED: &str = "payment.failed";
pub const FULFILLMENT: &str = "fulfillment.status_changed";
pub const ALL_TOPICS: &str = "fulfillment.status_changed,payment.confirmed,payment.failed";

/// Subscribes the in-process worker to all three topics (the test's own streams).
pub fn all_topics(mut config: WorkerConfig) -> WorkerConfig {
    config.topics.names = vec![FULFILLMENT.into(), CONFIRMED.into(), FAILED.into()];
    config
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A payment verdict event: `topic` is `payment.confirmed` or `payment.failed`.
pub fn payment_event(
    topic: &str,
    order: &str,
    payment: &str,
    amount: Option<&str>,
    reason: Option<&str>,
) -> Value {
    let verdict = topic.strip_prefix("payment.").expect("a payment topic");
    publisher::payment_event(verdict, order, payment, amount, reason, &now())
}

/// A verdict as the payment service's Go structs write it (DESIGN §2b): `amount` a JSON number
/// as Go writes a float64 (`1499000`, `129.9`), its `order_number` and `metadata` (naming the
/// payment, so a history row shows whose it is), and `said` as `status` (confirmed) or
/// `failure_reason` (failed).
pub fn payment_service_event(
    topic: &str,
    order: &str,
    payment: &str,
    amount: &str,
    said: &str,
) -> Value {
    let amount: Value = serde_json::from_str(amount).expect("a JSON number");
    let mut event = serde_json::json!({
        "event_type": topic, "payment_id": payment, "order_id": order,
        "order_number": format!("ORD-{order}"), "amount": amount, "currency": "VND",
        "timestamp": now(), "metadata": {"gateway": "vnpay", "payment": payment},
    });
    let field = if topic == CONFIRMED {
        "status"
    } else {
        "failure_reason"
    };
    event[field] = said.into();
    event
}

/// XADDs `event` to the test's stream of `topic` as Dapr would in `format`; returns (entry id,
/// CloudEvent id; unused by the worker for [`Format::Raw`]).
pub async fn publish_event(
    env: &TestEnv,
    topic: &str,
    event: &Value,
    format: Format,
) -> (String, String) {
    let event_id = uuid::Uuid::new_v4().to_string();
    let fields = publisher::entry_fields(topic, event, &event_id, format);
    let entry_id = publisher::publish(&mut env.redis.clone(), &stream_key(env, topic), &fields)
        .await
        .expect("XADD");
    (entry_id, event_id)
}

/// Publishes a payment verdict (CloudEvent format unless said otherwise).
pub async fn publish_payment(
    env: &TestEnv,
    topic: &str,
    order: &str,
    payment: &str,
    amount: Option<&str>,
    reason: Option<&str>,
    format: Format,
) -> (String, String) {
    let event = payment_event(topic, order, payment, amount, reason);
    publish_event(env, topic, &event, format).await
}

/// The test's stream key for `topic`.
pub fn stream_key(env: &TestEnv, topic: &str) -> String {
    match topic {
        FULFILLMENT => env.stream.stream.clone(),
        _ => env.payment_stream(topic),
    }
}

pub fn three_streams(env: &TestEnv) -> [String; 3] {
    [FULFILLMENT, CONFIRMED, FAILED].map(|topic| stream_key(env, topic))
}

/// The XPENDING summary of the group on `key`; `None` while the group does not exist.
async fn summary(env: &TestEnv, key: &str) -> Option<redis::streams::StreamPendingReply> {
    let reply: redis::RedisResult<redis::streams::StreamPendingReply> = redis::cmd("XPENDING")
        .arg(key)
        .arg(&env.stream.group)
        .query_async(&mut env.redis.clone())
        .await;
    match reply {
        Err(error) if error.code() == Some("NOGROUP") => None,
        other => Some(other.expect("XPENDING")),
    }
}

/// Entries pending in the group on `key`; `None` while the group does not exist.
pub async fn pending_on(env: &TestEnv, key: &str) -> Option<usize> {
    Some(summary(env, key).await?.count())
}

/// Entries of the group on `key` pending under `consumer`.
pub async fn pending_for_on(env: &TestEnv, key: &str, consumer: &str) -> usize {
    match summary(env, key).await {
        Some(redis::streams::StreamPendingReply::Data(data)) => data
            .consumers
            .iter()
            .find(|c| c.name == consumer)
            .map_or(0, |c| c.pending),
        _ => 0,
    }
}

/// Nothing pending on any of the three streams (each group exists).
pub async fn nothing_pending(env: &TestEnv) -> bool {
    for key in three_streams(env) {
        if pending_on(env, &key).await != Some(0) {
            return false;
        }
    }
    true
}

pub async fn exists(env: &TestEnv, key: &str) -> i64 {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut env.redis.clone())
        .await
        .expect("EXISTS")
}

/// The entries of `<key>.deadletter`, as field maps, oldest first.
pub async fn dead_letters_of(env: &TestEnv, key: &str) -> Vec<HashMap<String, String>> {
    env.entries_of(&format!("{key}.deadletter")).await
}

/// A row of `order_payments`, the amount as PostgreSQL prints the NUMERIC.
#[derive(Debug, PartialEq, Eq, QueryableByName)]
pub struct PaymentRow {
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub amount: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub currency: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub order_number: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub reported_status: Option<String>,
}

/// A row as the dev publisher's verdicts leave it (no order number, no status field).
pub fn payment_row(
    order: &str,
    status: &str,
    amount: Option<&str>,
    reason: Option<&str>,
) -> PaymentRow {
    PaymentRow {
        order_id: order.to_owned(),
        status: status.to_owned(),
        amount: amount.map(str::to_owned),
        currency: Some("EUR".to_owned()),
        reason: reason.map(str::to_owned),
        order_number: None,
        reported_status: None,
    }
}

pub async fn payment(env: &TestEnv, payment_id: &str) -> Option<PaymentRow> {
    diesel::sql_query(
        "SELECT order_id, status, amount::text AS amount, currency, reason, order_number, \
         reported_status FROM order_payments WHERE payment_id = $1",
    )
    .bind::<Text, _>(payment_id)
    .get_result(&mut env.db().await)
    .await
    .optional()
    .expect("read order_payments")
}

#[derive(QueryableByName)]
pub struct Outcome {
    #[diesel(sql_type = Text)]
    pub outcome: String,
}

/// The inbox outcome of `order`'s event published as (entry id, CloudEvent id) in `format`. A raw
/// payload has no CloudEvent id: its inbox key is derived (`raw-…`), so it is found by entry id
/// and order (two streams' entries written in the same millisecond share an id).
pub async fn inbox_outcome(
    env: &TestEnv,
    order: &str,
    published: &(String, String),
    format: Format,
) -> String {
    let (entry_id, event_id) = published;
    let query = match format {
        Format::Raw => diesel::sql_query(
            "SELECT outcome FROM processed_events \
             WHERE stream_entry_id = $1 AND order_id = $2 AND event_id LIKE 'raw-%'",
        )
        .into_boxed::<diesel::pg::Pg>()
        .bind::<Text, _>(entry_id.clone())
        .bind::<Text, _>(order.to_owned()),
        _ => diesel::sql_query(
            "SELECT outcome FROM processed_events WHERE event_id = $1 AND stream_entry_id = $2",
        )
        .into_boxed::<diesel::pg::Pg>()
        .bind::<Text, _>(event_id.clone())
        .bind::<Text, _>(entry_id.clone()),
    };
    let rows: Vec<Outcome> = query
        .load(&mut env.db().await)
        .await
        .expect("read processed_events");
    match rows.as_slice() {
        [row] => row.outcome.clone(),
        _ => panic!(
            "expected one inbox row for entry {entry_id} ({format:?}), found {}",
            rows.len()
        ),
    }
}

pub fn history_row(from: &str, to: &str, reason: &str) -> (String, String, String) {
    (from.to_owned(), to.to_owned(), reason.to_owned())
}

/// Checks the end state of the three kinds of orders the replica tests run: `paid` (a payment,
/// then a whole fulfillment) delivered, `retried` (a declined card, then an accepted one)
/// confirmed, `shipped` (already confirmed, a whole fulfillment) delivered, each with exactly
/// its history rows; and that the history holds `expected_rows` in all, none twice.
pub async fn assert_three_kinds(
    env: &TestEnv,
    (paid, retried, shipped): (&[String], &[String], &[String]),
    expected_rows: i64,
) {
    let lifecycle = [
        history_row("confirmed", "processing", "FulfillmentPlanning"),
        history_row("processing", "shipped", "FulfillmentShipped"),
        history_row("shipped", "delivered", "FulfillmentCompleted"),
    ];
    let paid_history: Vec<_> = [history_row("pending", "confirmed", "PaymentConfirmed")]
        .into_iter()
        .chain(lifecycle.clone())
        .collect();
    let retried_history = vec![
        history_row("pending", "failed", "PaymentFailed"),
        history_row("failed", "confirmed", "PaymentConfirmed"),
    ];
    let expectations = [
        (paid, "delivered", paid_history),
        (retried, "confirmed", retried_history),
        (shipped, "delivered", lifecycle.to_vec()),
    ];
    let mut failures = Vec::new();
    for (orders, status, history) in &expectations {
        for order in orders.iter() {
            let actual = (env.order_status(order).await, env.history(order).await);
            if actual != (status.to_string(), history.clone()) {
                failures.push(format!("{order}: {actual:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        env.history_count().await,
        expected_rows,
        "no history row twice"
    );
}

/// Waits until Redis's clock is past the millisecond of `entry_id`, so that an entry XADDed
/// next to any stream gets a greater id: ids order entries of different streams only to the
/// millisecond (each stream numbers its own entries within one).
pub async fn clock_passes(env: &TestEnv, entry_id: &str) {
    let ms: u64 = entry_id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .expect("entry id");
    let deadline = tokio::time::Instant::now() + super::DEADLINE;
    loop {
        let (seconds, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut env.redis.clone())
            .await
            .expect("TIME");
        if seconds * 1_000 + micros / 1_000 > ms {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis's clock did not pass {ms}"
        );
        tokio::task::yield_now().await;
    }
}
