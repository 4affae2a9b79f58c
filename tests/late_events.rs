//! Late events on the real servers: an entry a replica held when it died is applied after newer
//! events of its order, and the order still ends exactly as in-order processing leaves it —
//! unless someone else changed the order since, whose change then stands.

mod support;

use diesel_async::SimpleAsyncConnection;
use order_worker::FulfillmentStatus::*;
use order_worker::{Progress, StreamConfig, WorkerConfig};
use order_worker_dev::in_order::Tables;
use order_worker_dev::publisher::Format;
use support::http::{http_port, Metrics};
use support::payments::{
    all_topics, payment, payment_service_event, publish_event, stream_key, CONFIRMED, FAILED,
    FULFILLMENT,
};
use support::process::terminate;
use support::TestEnv;

/// Reads every new entry of `key` in the test's group as `consumer`, which then dies holding
/// them. Returns how many.
async fn held_by_a_dead_replica(env: &TestEnv, key: &str, consumer: &str) -> usize {
    let stream = StreamConfig {
        stream: key.to_owned(),
        ..env.stream.clone()
    };
    order_worker::ensure_group(&mut env.redis.clone(), &stream)
        .await
        .expect("group");
    let group = &env.stream.group;
    env.read_on(key, group, consumer, 10_000).await.len()
}

/// Worker settings: all three topics or the fulfillment topic alone.
fn config(env: &TestEnv, consumer: &str, all: bool) -> WorkerConfig {
    let config = env.config(consumer);
    if all {
        all_topics(config)
    } else {
        config
    }
}

/// Runs a worker that leaves the dead replica's entries alone until `applied` events are.
async fn apply_the_others(env: &TestEnv, applied: u64, all: bool) {
    let mut patient = config(env, "patient", all);
    patient.claim_min_idle_ms = 600_000;
    patient.consumer_gone_ms = 600_000;
    let mut worker = env.spawn_worker_with(patient).await;
    worker.wait_for(|p| p.applied == applied).await;
    worker.stop().await;
}

/// Then one that takes the `held` entries over at once and applies them, late.
async fn take_over(env: &TestEnv, held: u64, all: bool) -> Progress {
    let mut taking_over = config(env, "taking-over", all);
    taking_over.consumer_gone_ms = 300;
    let mut worker = env.spawn_worker_with(taking_over).await;
    let progress = worker
        .wait_for(|p| p.claimed == held && p.consumed == held)
        .await;
    worker.stop().await;
    progress
}

/// [`apply_the_others`], then [`take_over`]: every held entry claimed and applied.
async fn apply_then_take_over(env: &TestEnv, applied: u64, held: u64, all: bool) {
    apply_the_others(env, applied, all).await;
    let progress = take_over(env, held, all).await;
    assert_eq!(
        (progress.claimed, progress.applied),
        (held, held),
        "{progress:?}"
    );
}

/// The streams' events applied one by one in stream order to a fresh database, compared with
/// what the worker wrote, table by table.
async fn assert_as_in_order(env: &TestEnv, orders: &[&str], status: &str, topics: &[&str]) {
    let in_order = TestEnv::new().await;
    in_order.seed_orders(orders, status).await;
    let streams: Vec<(&str, String)> = topics.iter().map(|t| (*t, stream_key(env, t))).collect();
    in_order.apply_in_order(&streams).await;
    let expected = Tables::read(&mut in_order.db().await)
        .await
        .expect("tables read");
    let got = Tables::read(&mut env.db().await)
        .await
        .expect("tables read");
    assert_eq!(got.first_difference(&expected), None);
    in_order.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_before_shipped_in_the_stream_ends_cancelled_though_shipped_applied_first() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Picking, Cancelled])
        .await;
    let key = stream_key(&env, FULFILLMENT);
    assert_eq!(held_by_a_dead_replica(&env, &key, "died").await, 2);
    env.publish_lifecycle("o1", "f1", &[Shipped]).await;

    apply_then_take_over(&env, 1, 2, false).await;

    assert_eq!(env.order_status("o1").await, "cancelled");
    assert_eq!(
        env.history("o1").await,
        [
            (
                "confirmed".to_owned(),
                "processing".to_owned(),
                "FulfillmentPicking".to_owned()
            ),
            (
                "processing".to_owned(),
                "cancelled".to_owned(),
                "FulfillmentCancelled".to_owned()
            )
        ],
        "`shipped`'s row withdrawn, the two before it written in stream order"
    );
    assert_as_in_order(&env, &["o1"], "confirmed", &[FULFILLMENT]).await;
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

/// The payment service's structs: the recompute decodes the accepted payment again from what
/// the inbox recorded of it, and its row and history keep every field it carried.
#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_applied_after_the_accepted_retry_still_shows_in_the_history() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "pending").await;
    let declined = payment_service_event(FAILED, "o1", "p-declined", "10.00", "card_declined");
    publish_event(&env, FAILED, &declined, Format::CloudEvent).await;
    let failed = stream_key(&env, FAILED);
    assert_eq!(held_by_a_dead_replica(&env, &failed, "died").await, 1);
    let accepted = payment_service_event(CONFIRMED, "o1", "p-accepted", "129.9", "completed");
    publish_event(&env, CONFIRMED, &accepted, Format::CloudEvent).await;

    apply_then_take_over(&env, 1, 1, true).await;

    assert_eq!(env.order_status("o1").await, "confirmed");
    let reasons: Vec<String> = env
        .history("o1")
        .await
        .into_iter()
        .map(|(_, _, r)| r)
        .collect();
    assert_eq!(reasons, ["PaymentFailed", "PaymentConfirmed"]);
    let by = |payment: &str| Some(serde_json::json!({"gateway": "vnpay", "payment": payment}));
    assert_eq!(
        env.history_metadata("o1").await,
        [by("p-declined"), by("p-accepted")],
        "the accepted payment's row, written again by the recompute, keeps its metadata"
    );
    let accepted = payment(&env, "p-accepted").await.expect("recorded");
    let kept = (accepted.amount.as_deref(), accepted.order_number.as_deref());
    assert_eq!(kept, (Some("129.9"), Some("ORD-o1")));
    assert_eq!(accepted.reported_status.as_deref(), Some("completed"));
    let declined = payment(&env, "p-declined").await.expect("recorded");
    assert_eq!(declined.reason.as_deref(), Some("card_declined"));
    assert_as_in_order(&env, &["o1"], "pending", &[FULFILLMENT, CONFIRMED, FAILED]).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_changed_by_the_order_service_since_keeps_that_change_when_a_late_event_comes() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    let key = stream_key(&env, FULFILLMENT);
    assert_eq!(held_by_a_dead_replica(&env, &key, "died").await, 1);
    env.publish_lifecycle("o1", "f1", &[Picking]).await;
    apply_the_others(&env, 1, false).await;
    // A customer cancels through the order service.
    let mut db = env.db().await;
    db.batch_execute("UPDATE orders SET status = 'cancelled' WHERE id = 'o1'")
        .await
        .expect("cancel");

    let progress = take_over(&env, 1, false).await;

    assert_eq!(
        progress.stale, 1,
        "applied to the order as it stands: {progress:?}"
    );
    assert_eq!(
        env.order_status("o1").await,
        "cancelled",
        "the order service's change stands"
    );
    let rows = env.history("o1").await;
    assert_eq!(
        rows.len(),
        1,
        "the worker's history is left as it was: {rows:?}"
    );
    env.cleanup().await;
}

/// At process level, as operators see it: the late event's order is recomputed once, and
/// `order_recomputes_total` says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_recompute_is_counted_in_order_recomputes_total() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Picking]).await;
    let key = stream_key(&env, FULFILLMENT);
    assert_eq!(held_by_a_dead_replica(&env, &key, "died").await, 1);
    env.publish_lifecycle("o1", "f1", &[Shipped]).await;
    // The dead replica's entry is left alone until the newer one is applied...
    let patient = [
        ("CLAIM_MIN_IDLE_MS", "600000"),
        ("CONSUMER_GONE_MS", "600000"),
    ];
    let mut first = env.spawn_process("patient", &env.redis_url, &env.database_url, &patient);
    support::eventually("the newer event applied", async || {
        env.order_status("o1").await == "shipped"
    })
    .await;
    assert_eq!(terminate(&mut first).await.code(), Some(0));
    // ...then taken over at once and applied, late.
    let eager = [("CONSUMER_GONE_MS", "300")];
    let mut second = env.spawn_process("eager", &env.redis_url, &env.database_url, &eager);
    let port = http_port(&env, "eager").await;
    support::eventually("the late event applied", async || env.pending().await == 0).await;
    support::eventually("the recompute counted", async || {
        Metrics::scrape(port).await.total("order_recomputes_total") >= 1.0
    })
    .await;
    assert_eq!(
        Metrics::scrape(port).await.total("order_recomputes_total"),
        1.0
    );
    assert_eq!(terminate(&mut second).await.code(), Some(0));
    assert_eq!(env.order_status("o1").await, "shipped");
    env.cleanup().await;
}
