//! `ORDER_EVENTS_TABLE`: the worker's own status changes written into the order service's
//! outbox table (with `RELAY_TABLE` naming it), beside the rows the order service writes, and
//! published from there by the one relay: the table holds every status change, whoever made
//! it, and subscribers see them as before; what the worker's own outbox still holds is
//! published too. Real servers.

mod support;

use diesel_async::SimpleAsyncConnection;
use serde_json::json;
use support::order_events::assert_lifecycles_published;
use support::relay_table::TABLE;
use support::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_s_changes_go_through_the_order_service_s_table_beside_its_own() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    let (orders, _) = env.seed_lifecycles(5).await;
    let topic = env.order_events().order_events_topic;
    // A change the order service made itself (a cancellation through its API, say).
    let theirs = json!({"event_type": "orders.order.status_changed", "order_id": "api-1",
        "old_status": "pending", "new_status": "cancelled", "reason": "CustomerCancelled"});
    env.write_outbox(&[(topic.clone(), theirs.to_string())])
        .await;
    // A change written to the worker's own outbox before the switch: still published.
    let left = json!({"event_type": "orders.order.status_changed", "order_id": "left-1",
        "old_status": "pending", "new_status": "confirmed", "reason": "PaymentConfirmed"});
    env.db()
        .await
        .batch_execute(&format!(
            "INSERT INTO order_events_outbox (order_id, data, cause_topic, cause_entry_id) \
             VALUES ('left-1', '{left}', 'payment.confirmed', '1-0')"
        ))
        .await
        .expect("a row left in order_events_outbox");
    let mut config = env.relaying_config("w1");
    config.order_events.order_events_table = Some(TABLE.parse().expect("a table name"));
    let worker = env.spawn_worker_with(config).await;
    let want = 1 + 3 * orders.len();
    eventually(
        "the row left in order_events_outbox published",
        async || env.outbox_rows().await == 0,
    )
    .await;
    eventually(
        "every change in the order service's table, published",
        async || {
            let table = env.outbox_table().await;
            table.len() == want && table.iter().all(|row| row.status == "published")
        },
    )
    .await;
    worker.stop().await;

    assert_eq!(env.outbox_rows().await, 0, "nothing in order_events_outbox");
    let table = env.outbox_table().await;
    assert!(table.iter().all(|row| row.topic == topic), "{table:?}");
    let published = env.published().await;
    assert_eq!(published.len(), want + 1, "each once");
    let (others, worker_s): (Vec<_>, Vec<_>) = published
        .into_iter()
        .partition(|event| ["api-1", "left-1"].contains(&event.order_id()));
    assert_eq!(others.len(), 2);
    assert_lifecycles_published(&worker_s, &orders);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn order_events_table_must_be_the_relayed_table() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    let mut config = env.config("w1");
    config.order_events.order_events_table = Some(TABLE.parse().expect("a table name"));
    let refused = order_worker::Worker::start(config).await;
    let error = format!("{:#}", refused.err().expect("refused"));
    assert!(
        error.contains("ORDER_EVENTS_TABLE must name RELAY_TABLE"),
        "{error}"
    );
    env.cleanup().await;
}
