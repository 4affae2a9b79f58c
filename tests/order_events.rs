//! `orders.order.status_changed`, read as a Dapr subscriber reads it: one event per status step
//! for the fulfillment and payment topics, nothing for duplicates and dead letters, the trace of
//! the consumed event continued, the order's describing columns carried, a relay that died
//! between XADD and DELETE publishing nothing twice, an event too large held and only its order
//! waiting, and Redis refusing the stream waited out with the worker ready.

mod support;

use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use order_worker::FulfillmentStatus::*;
use order_worker_dev::publisher::{self, Format};
use support::http::{get, http_port, Metrics};
use support::order_events::{assert_lifecycles_published, chains};
use support::payments::*;
use support::process::terminate;
use support::{eventually, TestEnv};

fn step(old: &str, new: &str, reason: &str) -> (String, String, String) {
    (old.to_owned(), new.to_owned(), reason.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_status_step_is_published_once_as_a_dapr_publisher_writes_it() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o-paid", "o-declined"], "pending").await;
    // o-paid: paid, then its whole fulfillment; its payment redelivered by the publisher.
    let (_, paid) = publish_payment(
        &env,
        CONFIRMED,
        "o-paid",
        "p1",
        Some("10.00"),
        None,
        Format::CloudEvent,
    )
    .await;
    let event = payment_event(CONFIRMED, "o-paid", "p1", Some("10.00"), None);
    let again = publisher::entry_fields(CONFIRMED, &event, &paid, Format::CloudEvent);
    publisher::publish(&mut env.redis.clone(), &stream_key(&env, CONFIRMED), &again)
        .await
        .expect("XADD");
    for status in [Planning, Picking, Shipped, Completed] {
        env.publish("o-paid", "f1", status, Format::CloudEvent)
            .await;
    }
    // o-declined: its card fails; then an entry no one can read (dead-lettered).
    publish_payment(
        &env,
        FAILED,
        "o-declined",
        "p2",
        None,
        Some("card_declined"),
        Format::Raw,
    )
    .await;
    env.xadd(&[("data".to_owned(), "not json".to_owned())])
        .await;

    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    worker.wait_consumed(8).await;
    let published = env.wait_published(5).await;
    worker.stop().await;

    assert_eq!(published.len(), 5, "{published:#?}");
    let by_order = env.published_by_order().await;
    let steps = |order: &str| -> Vec<_> { by_order[order].iter().map(|p| p.step()).collect() };
    assert_eq!(
        steps("o-paid"),
        [
            step("pending", "confirmed", "PaymentConfirmed"),
            step("confirmed", "processing", "FulfillmentPlanning"),
            step("processing", "shipped", "FulfillmentShipped"),
            step("shipped", "delivered", "FulfillmentCompleted"),
        ]
    );
    assert_eq!(
        steps("o-declined"),
        [step("pending", "failed", "PaymentFailed")]
    );
    chains(&published, "pending");

    let mut consumed = std::collections::HashSet::new();
    for key in [env.stream.stream.clone(), stream_key(&env, CONFIRMED)] {
        for entry in env.entries_of(&key).await {
            let data: serde_json::Value = serde_json::from_str(&entry["data"]).unwrap_or_default();
            if let Some(parent) = data["traceparent"].as_str() {
                consumed.insert(parent.to_owned());
            }
        }
    }
    let topic = env.order_events().order_events_topic;
    for event in &published {
        let ce = &event.cloud_event;
        assert_eq!(
            event.metadata.as_deref(),
            Some("{}"),
            "Dapr ≥ 1.13's metadata"
        );
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["type"], "com.dapr.event.sent");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["source"], "order-worker");
        assert_eq!(ce["pubsubname"], "pubsub-redis");
        assert_eq!(ce["topic"], topic.as_str());
        assert!(uuid::Uuid::parse_str(event.id()).is_ok(), "{ce}");
        assert!(ce["time"].as_str().is_some_and(|t| t.len() >= 20), "{ce}");
        let data = event.event();
        assert_eq!(data["event_type"], "orders.order.status_changed");
        assert!(
            data["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{data}"
        );
        // The worker's own orders table has no order_number or customer_id: left out.
        assert!(data.get("order_number").is_none() && data.get("customer_id").is_none());
        // Each continues the trace of the entry that caused it: the payment and fulfillment
        // CloudEvents' traceparents; o-declined's raw payload had none to continue.
        match ce["traceparent"].as_str() {
            Some(parent) => {
                assert_eq!(ce["traceid"].as_str(), Some(parent));
                assert!(
                    consumed.contains(parent),
                    "{parent} continues no consumed trace"
                );
            }
            None => assert_eq!(event.order_id(), "o-declined", "{ce}"),
        }
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_order_service_columns_travel_with_the_event_and_a_null_one_is_left_out() {
    let env = adopted_and_paid(
        "CREATE TABLE orders (id TEXT PRIMARY KEY, order_number TEXT, customer_id UUID, \
         status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
         updated_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
         INSERT INTO orders (id, order_number, customer_id, status) VALUES \
         ('o-1', 'ORD-0001', '7d0f3c2e-1111-4a7b-9c1d-2b3c4d5e6f70', 'pending'), \
         ('o-2', NULL, NULL, 'pending')",
        &["o-1", "o-2"],
    )
    .await;
    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    worker.wait_consumed(2).await;
    env.wait_published(2).await;
    worker.stop().await;

    let by_order = env.published_by_order().await;
    let data = by_order["o-1"][0].event();
    assert_eq!(data["order_number"], "ORD-0001");
    assert_eq!(data["customer_id"], "7d0f3c2e-1111-4a7b-9c1d-2b3c4d5e6f70");
    let data = by_order["o-2"][0].event();
    assert!(data.get("order_number").is_none(), "{data}");
    assert!(data.get("customer_id").is_none(), "{data}");
    assert_eq!(data["new_status"], "confirmed");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_order_events_off_nothing_is_written_or_published() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o-1"], "pending").await;
    publish_payment(
        &env,
        CONFIRMED,
        "o-1",
        "p1",
        Some("1"),
        None,
        Format::CloudEvent,
    )
    .await;
    let mut config = all_topics(env.config("w1"));
    config.order_events.order_events = false;
    let mut worker = env.spawn_worker_with(config).await;
    worker.wait_consumed(1).await;
    worker.stop().await;
    assert_eq!(env.order_status("o-1").await, "confirmed");
    assert_eq!(env.outbox_rows().await, 0);
    assert!(env.published().await.is_empty());
    env.cleanup().await;
}

/// A relay that died after its XADDs and before deleting its rows: its entries are in the
/// stream, its rows still waiting. The next relay finds them there and publishes each row once.
#[tokio::test(flavor = "multi_thread")]
async fn rows_a_dead_relay_published_without_deleting_them_are_not_published_again() {
    let env = TestEnv::new().await;
    let (orders, entries) = env.seed_lifecycles(20).await;
    // Applied without a relay: every status change waits in the outbox.
    env.apply_in_order(&[(FULFILLMENT, env.stream.stream.clone())])
        .await;
    let waiting = env.outbox_rows().await;
    assert_eq!(
        waiting,
        3 * orders.len() as i64,
        "{entries} entries applied"
    );

    // The dead relay's round: the oldest 30 rows, XADDed as it would, never deleted.
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        event_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        data: String,
    }
    let first: Vec<Waiting> = diesel::sql_query(
        "SELECT event_id::text AS event_id, data::text AS data FROM order_events_outbox \
         ORDER BY id LIMIT 30",
    )
    .load(&mut env.db().await)
    .await
    .expect("outbox rows");
    let topic = env.order_events().order_events_topic;
    for row in &first {
        let event: serde_json::Value = serde_json::from_str(&row.data).expect("JSON");
        let data = serde_json::json!({"specversion": "1.0", "id": row.event_id, "data": event});
        let data = data.to_string();
        let fields = [
            ("data".to_owned(), data),
            ("metadata".to_owned(), "{}".to_owned()),
        ];
        publisher::publish(&mut env.redis.clone(), &topic, &fields)
            .await
            .expect("XADD");
    }

    let worker = env.spawn_worker("w1").await;
    let published = env.wait_published(waiting as usize).await;
    worker.stop().await;
    assert_eq!(published.len(), waiting as usize, "each row once");
    let mut ids: Vec<&str> = published.iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), waiting as usize, "no id twice");
    // The dead relay's 30 come first, and the new relay's chain on from them.
    assert_lifecycles_published(&published, &orders);
    env.cleanup().await;
}

/// An event subscribers would refuse (larger than MAX_ENTRY_BYTES: an order number pasted
/// with a whole document, say) is held with the reason, never published; its order's later
/// events wait behind it, in order, and every other order's go on.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_too_large_to_publish_is_held_and_only_its_order_waits() {
    let huge = "N".repeat(8 * 1024);
    let env = adopted_and_paid(
        &format!(
            "CREATE TABLE orders (id TEXT PRIMARY KEY, order_number TEXT, \
             status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
             updated_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
             INSERT INTO orders (id, order_number, status) VALUES \
             ('o-big', '{huge}', 'pending'), ('o-ok', 'ORD-2', 'pending')"
        ),
        &["o-big", "o-ok"],
    )
    .await;
    for order in ["o-big", "o-ok"] {
        env.publish(order, &format!("f-{order}"), Planning, Format::CloudEvent)
            .await;
    }
    let mut config = all_topics(env.config("w1"));
    config.max_entry_bytes = 4 * 1024;
    let mut worker = env.spawn_worker_with(config).await;
    worker.wait_consumed(4).await;
    let published = env.wait_published_all_but(2).await;
    worker.stop().await;

    let steps: Vec<_> = published
        .iter()
        .map(|p| (p.order_id().to_owned(), p.step()))
        .collect();
    assert_eq!(
        steps,
        [
            (
                "o-ok".to_owned(),
                step("pending", "confirmed", "PaymentConfirmed")
            ),
            (
                "o-ok".to_owned(),
                step("confirmed", "processing", "FulfillmentPlanning")
            ),
        ]
    );
    #[derive(diesel::QueryableByName, Debug)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::Text)]
        order_id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        held_reason: Option<String>,
    }
    let left: Vec<Left> =
        diesel::sql_query("SELECT order_id, held_reason FROM order_events_outbox ORDER BY id")
            .load(&mut env.db().await)
            .await
            .expect("outbox rows");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|row| row.order_id == "o-big"), "{left:?}");
    let reason = left[0].held_reason.as_deref().expect("the first is held");
    assert!(reason.contains("over MAX_ENTRY_BYTES (4096)"), "{reason}");
    assert_eq!(left[1].held_reason, None, "the next one waits behind it");
    env.cleanup().await;
}

/// Redis refusing the order events stream (here a key of the wrong type where it should be;
/// `OOM`, `NOPERM` and a slot moving are refused the same way): the rows wait, the worker keeps
/// applying and stays ready, the refusals are counted, and once the stream takes writes again
/// every status change goes out, in order, none lost and none held.
#[tokio::test(flavor = "multi_thread")]
async fn while_redis_refuses_the_events_the_rows_wait_and_the_worker_stays_ready() {
    let env = TestEnv::new().await;
    let key = env.order_events().order_events_topic;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("not a stream")
        .query_async(&mut env.redis.clone())
        .await
        .expect("SET");
    let (orders, entries) = env.seed_lifecycles(10).await;
    let mut worker = env.spawn_process("refused", &env.redis_url, &env.database_url, &[]);
    let port = http_port(&env, "refused").await;
    eventually(
        "everything applied while nothing can be published",
        async || env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0,
    )
    .await;
    eventually("the refusals counted", async || {
        Metrics::scrape(port)
            .await
            .total("order_events_publish_errors_total")
            > 0.0
    })
    .await;
    assert_eq!(
        get(port, "/readyz").await.0,
        200,
        "ready: reading and applying go on"
    );
    assert_eq!(
        env.outbox_rows().await,
        3 * orders.len() as i64,
        "{entries} entries"
    );
    assert_eq!(
        env.held_rows().await,
        0,
        "nothing held: the entries are not at fault"
    );

    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut env.redis.clone())
        .await
        .expect("DEL");
    let published = env.wait_published(3 * orders.len()).await;
    assert_lifecycles_published(&published, &orders);
    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    env.cleanup().await;
}

/// A fresh database holding the order service's own orders table, made by `sql`, adopted by
/// `migrate`; and each of `orders` paid (`payment.confirmed`, CloudEvent format).
async fn adopted_and_paid(sql: &str, orders: &[&str]) -> TestEnv {
    let env = TestEnv::unmigrated().await;
    env.db()
        .await
        .batch_execute(sql)
        .await
        .expect("the order service's table");
    order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
        .await
        .expect("migrate adopts it");
    for order in orders {
        let payment = format!("p-{order}");
        publish_payment(
            &env,
            CONFIRMED,
            order,
            &payment,
            Some("1"),
            None,
            Format::CloudEvent,
        )
        .await;
    }
    env
}
