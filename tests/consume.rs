//! End to end against real Redis and PostgreSQL: entries XADDed in each Dapr format are applied,
//! acked, and applied once however often they arrive.

mod support;

use order_worker::FulfillmentStatus::{self, *};
use order_worker_dev::publisher::Format;
use support::TestEnv;

fn h(from: &str, to: &str, reason: &str) -> (String, String, String) {
    (from.to_owned(), to.to_owned(), reason.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dapr_format_is_applied_end_to_end() {
    let env = TestEnv::new().await;
    let orders: Vec<String> = (0..Format::ALL.len())
        .map(|i| format!("order-{i}"))
        .collect();
    let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
    env.seed_orders(&ids, "confirmed").await;
    for (order, format) in orders.iter().zip(Format::ALL) {
        env.publish(order, &format!("f-{order}"), Planning, format)
            .await;
        env.publish(order, &format!("f-{order}"), Shipped, format)
            .await;
    }
    let mut worker = env.spawn_worker("w1").await;
    let progress = worker.wait_consumed(2 * Format::ALL.len() as u64).await;
    worker.stop().await;

    assert_eq!(
        progress.applied,
        2 * Format::ALL.len() as u64,
        "{progress:?}"
    );
    for (order, format) in orders.iter().zip(Format::ALL) {
        assert_eq!(env.order_status(order).await, "shipped", "{format:?}");
        assert_eq!(
            env.history(order).await,
            vec![
                h("confirmed", "processing", "FulfillmentPlanning"),
                h("processing", "shipped", "FulfillmentShipped"),
            ],
            "{format:?}"
        );
    }
    assert_eq!(env.pending().await, 0, "XPENDING is empty after processing");
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_lifecycle_ends_delivered_with_three_history_rows() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &FulfillmentStatus::LIFECYCLE)
        .await;
    let mut worker = env.spawn_worker("w1").await;
    worker
        .wait_consumed(FulfillmentStatus::LIFECYCLE.len() as u64)
        .await;
    worker.stop().await;

    assert_eq!(env.order_status("o1").await, "delivered");
    assert_eq!(
        env.order_fulfillment_status("o1").await.as_deref(),
        Some("completed")
    );
    assert_eq!(env.history("o1").await, lifecycle_history());
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

/// The history a whole lifecycle from `confirmed` writes, in order.
fn lifecycle_history() -> Vec<(String, String, String)> {
    vec![
        h("confirmed", "processing", "FulfillmentPlanning"),
        h("processing", "shipped", "FulfillmentShipped"),
        h("shipped", "delivered", "FulfillmentCompleted"),
    ]
}

/// Small batches of lifecycles published order after order: consecutive batches share an
/// order at their boundary (those must wait for each other) and not otherwise (those are
/// applied at once). Any reordering would show as a stale event or a different history.
#[tokio::test(flavor = "multi_thread")]
async fn batches_applied_at_once_never_reorder_an_orders_events() {
    let env = TestEnv::new().await;
    let orders: Vec<String> = (0..12).map(|i| format!("order-{i:02}")).collect();
    let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
    env.seed_orders(&ids, "confirmed").await;
    for order in &orders {
        env.publish_lifecycle(order, &format!("f-{order}"), &FulfillmentStatus::LIFECYCLE)
            .await;
    }
    let mut config = env.config("w1");
    config.batch_size = 4;
    let mut worker = env.spawn_worker_with(config).await;
    let events = (orders.len() * FulfillmentStatus::LIFECYCLE.len()) as u64;
    let progress = worker.wait_consumed(events).await;
    worker.stop().await;

    assert_eq!(progress.stale, 0, "{progress:?}");
    assert_eq!(progress.applied + progress.ignored, events, "{progress:?}");
    for order in &orders {
        assert_eq!(env.history(order).await, lifecycle_history(), "{order}");
        assert_eq!(
            env.order_fulfillment_status(order).await.as_deref(),
            Some("completed"),
            "{order}"
        );
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_cloud_event_published_twice_writes_one_history_row() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let event =
        order_worker_dev::publisher::event("o1", "f1", None, Planning, "2025-12-22T10:54:00Z");
    let fields = order_worker_dev::publisher::entry_fields(
        &env.stream.stream,
        &event,
        "ce-1",
        Format::CloudEvent,
    );
    env.xadd(&fields).await;
    env.xadd(&fields).await;
    let mut worker = env.spawn_worker("w1").await;
    let first = worker.wait_consumed(2).await;
    // And again, in a later batch: still a duplicate.
    env.xadd(&fields).await;
    let second = worker.wait_consumed(3).await;
    worker.stop().await;

    assert_eq!((first.applied, first.duplicate), (1, 1), "{first:?}");
    assert_eq!((second.applied, second.duplicate), (1, 2), "{second:?}");
    assert_eq!(env.history("o1").await.len(), 1);
    assert_eq!(env.inbox_outcome("ce-1").await.as_deref(), Some("applied"));
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_events_never_move_an_order_backwards() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    // o1: shipped overtakes packing; o2: cancelled arrives after shipped.
    env.publish_lifecycle("o1", "f1", &[Planning, Shipped, Packing])
        .await;
    env.publish_lifecycle("o2", "f2", &[Planning, Shipped, Cancelled])
        .await;
    let mut worker = env.spawn_worker("w1").await;
    let progress = worker.wait_consumed(6).await;
    worker.stop().await;

    assert_eq!(progress.stale, 2, "{progress:?}");
    for order in ["o1", "o2"] {
        assert_eq!(env.order_status(order).await, "shipped");
        assert_eq!(env.history(order).await.len(), 2);
    }
    assert_eq!(
        env.order_fulfillment_status("o1").await.as_deref(),
        Some("shipped")
    );
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_fulfillments_of_one_order_ship_partially_then_fully() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    // The worker knows a fulfillment from its first event, so both start before one ships.
    env.publish_lifecycle("o1", "north", &[Planning]).await;
    env.publish_lifecycle("o1", "south", &[Planning]).await;
    env.publish_lifecycle("o1", "north", &[Shipped]).await;
    env.publish_lifecycle("o1", "south", &[Packing, Shipped, Completed])
        .await;
    env.publish_lifecycle("o1", "north", &[Completed]).await;
    let mut worker = env.spawn_worker("w1").await;
    worker.wait_consumed(7).await;
    worker.stop().await;

    assert_eq!(
        env.history("o1").await,
        vec![
            h("confirmed", "processing", "FulfillmentPlanning"),
            h("processing", "partially_shipped", "FulfillmentShipped"),
            h("partially_shipped", "shipped", "FulfillmentShipped"),
            h("shipped", "delivered", "FulfillmentCompleted"),
        ]
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_for_an_unknown_order_stays_pending_and_others_apply() {
    let env = TestEnv::new().await;
    env.seed_orders(&["known"], "confirmed").await;
    env.publish("missing", "f0", Planning, Format::CloudEvent)
        .await;
    env.publish("known", "f1", Planning, Format::CloudEvent)
        .await;
    let mut worker = env.spawn_worker("w1").await;
    let progress = worker.wait_consumed(2).await;
    worker.stop().await;

    assert_eq!(
        (progress.applied, progress.unknown_order),
        (1, 1),
        "{progress:?}"
    );
    assert_eq!(env.order_status("known").await, "processing");
    assert_eq!(
        env.pending().await,
        1,
        "the unknown order's entry is left pending"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_created_at_dollar_skips_the_entries_already_in_the_stream() {
    let env = TestEnv::new().await;
    env.seed_orders(&["old", "new"], "confirmed").await;
    env.publish("old", "f-old", Planning, Format::CloudEvent)
        .await;
    let mut config = env.config("w1");
    config.stream.group_start_id = "$".to_owned();
    // Started: the group exists, at the stream's last entry.
    let mut worker = env.spawn_worker_with(config).await;
    env.publish("new", "f-new", Planning, Format::CloudEvent)
        .await;
    // Entries are read in stream order: once the new one is applied, an old one would be too.
    worker.wait_for(|p| p.applied >= 1).await;
    let progress = worker.stop().await;
    assert_eq!(
        (progress.consumed, progress.applied),
        (1, 1),
        "{progress:?}"
    );
    assert_eq!(env.order_status("new").await, "processing");
    assert_eq!(
        env.order_status("old").await,
        "confirmed",
        "never delivered"
    );
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}
