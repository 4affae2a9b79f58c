//! Entries stuck in the pending list are claimed and applied; entries that keep failing are
//! dead-lettered after MAX_DELIVERIES; poison never blocks the rest.

mod support;

use order_worker::FulfillmentStatus::*;
use order_worker_dev::publisher::Format;
use support::TestEnv;

/// Reads every new entry as `consumer` without acking, as a consumer that then dies does;
/// returns their ids.
async fn read_and_abandon(env: &TestEnv, consumer: &str) -> Vec<String> {
    order_worker::ensure_group(&mut env.redis.clone(), &env.stream)
        .await
        .expect("group");
    env.read_as(&env.stream.group, consumer, 10_000).await
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_left_pending_by_dapr_are_claimed_and_applied() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning, Shipped])
        .await;
    // Dapr reads every replica as one consumer named as its group (its consumerID).
    let dapr = env.stream.group.clone();
    assert_eq!(read_and_abandon(&env, &dapr).await.len(), 2);
    assert_eq!(env.pending_for(&dapr).await, 2);

    let mut worker = env.spawn_worker("order-worker-7d9c").await;
    let progress = worker.wait_consumed(2).await;
    worker.stop().await;

    assert_eq!((progress.claimed, progress.applied), (2, 2), "{progress:?}");
    assert_eq!(env.order_status("o1").await, "shipped");
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_for_an_order_that_never_appears_is_dead_lettered_after_max_deliveries() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let (missing_entry, _) = env
        .publish("ghost", "f0", Planning, Format::CloudEvent)
        .await;
    env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    let mut config = env.config("w1");
    config.max_deliveries = 3;
    config.claim_min_idle_ms = 100;
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker.wait_for(|p| p.dead_lettered == 1).await;
    worker.stop().await;

    assert_eq!(
        progress.unknown_order, 3,
        "tried exactly MAX_DELIVERIES times: {progress:?}"
    );
    assert_eq!(
        progress.applied, 1,
        "the other event was not held up: {progress:?}"
    );
    let letters = env.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["source_id"], missing_entry);
    assert_eq!(letters[0]["error"], "order \"ghost\" does not exist");
    assert_eq!(letters[0]["delivery_count"], "3");
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_delivered_more_than_max_deliveries_without_settling_is_dead_lettered() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let (entry, _) = env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    // Workers that crash on it: read, and claimed again and again, never acked.
    read_and_abandon(&env, "crashed-1").await;
    for n in 2..=4 {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&env.stream.stream)
            .arg(&env.stream.group)
            .arg(format!("crashed-{n}"))
            .arg(0)
            .arg(&entry)
            .query_async(&mut env.redis.clone())
            .await
            .expect("XCLAIM");
    }
    let mut config = env.config("w1");
    config.max_deliveries = 3;
    config.claim_min_idle_ms = 1;
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker.wait_for(|p| p.dead_lettered == 1).await;
    worker.stop().await;

    assert_eq!(progress.applied, 0, "{progress:?}");
    let letters = env.dead_letters().await;
    assert!(
        letters[0]["error"].contains("without being settled"),
        "{letters:?}"
    );
    assert_eq!(letters[0]["delivery_count"], "5");
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_mixed_into_a_large_stream_is_dead_lettered_once_each_and_the_rest_applies() {
    let env = TestEnv::new().await;
    let (orders, good) = env.seed_lifecycles(300).await;
    let mut poison_ids = Vec::new();
    for n in 0..27 {
        let fields = vec![("data".to_owned(), format!("{{\"poison\": {n}"))];
        poison_ids.push(env.xadd(&fields).await);
    }
    let mut config = env.config("w1");
    config.batch_size = 50;
    config.concurrency = 4;
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker.wait_consumed(good + poison_ids.len() as u64).await;
    worker.stop().await;

    assert_eq!(progress.applied, good, "{progress:?}");
    assert_eq!(
        progress.dead_lettered,
        poison_ids.len() as u64,
        "{progress:?}"
    );
    let letters = env.dead_letters().await;
    // As sets: ids sort as text here (`…-10` before `…-2`), which is not stream order.
    let mut dead_ids: Vec<&str> = letters.iter().map(|l| l["source_id"].as_str()).collect();
    dead_ids.sort_unstable();
    poison_ids.sort_unstable();
    assert_eq!(dead_ids, poison_ids, "each poison entry exactly once");
    assert!(
        letters
            .iter()
            .all(|l| l["error"].starts_with("`data` is not JSON")),
        "{letters:?}"
    );
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_consumers_are_removed_only_when_they_hold_nothing() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let (done, _) = env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    read_and_abandon(&env, "gone-empty").await;
    let _: u64 = redis::cmd("XACK")
        .arg(&env.stream.stream)
        .arg(&env.stream.group)
        .arg(&done)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XACK");
    env.publish("o1", "f1", Shipped, Format::CloudEvent).await;
    read_and_abandon(&env, "gone-holding").await;

    let mut config = env.config("alive");
    config.consumer_idle_timeout = std::time::Duration::from_millis(200);
    config.claim_min_idle_ms = 600_000; // so the held entry stays where it is
    let worker = env.spawn_worker_with(config).await;
    support::eventually("the empty idle consumer is removed", async || {
        !env.has_consumer("gone-empty").await
    })
    .await;
    worker.stop().await;

    assert!(
        env.has_consumer("gone-holding").await,
        "a consumer holding an entry is never removed"
    );
    assert_eq!(env.pending_for("gone-holding").await, 1);
    assert!(
        env.has_consumer("alive").await,
        "a replica never removes itself"
    );
    env.cleanup().await;
}

/// Deletes entries from the test's stream, as trimming or an operator's XDEL does.
async fn xdel(env: &TestEnv, ids: &[String]) {
    let deleted: usize = redis::cmd("XDEL")
        .arg(&env.stream.stream)
        .arg(ids)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XDEL");
    assert_eq!(deleted, ids.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn claimed_ids_whose_entries_were_deleted_are_counted_and_leave_the_pending_list() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2", "o3"], "confirmed").await;
    for order in ["o1", "o2", "o3"] {
        env.publish_lifecycle(order, &format!("f-{order}"), &[Planning])
            .await;
    }
    let held = read_and_abandon(&env, &env.stream.group).await;
    assert_eq!(held.len(), 3);
    xdel(&env, &held[..2]).await;

    let mut worker = env.spawn_worker("w-deleted").await;
    let progress = worker.wait_for(|p| p.deleted == 2 && p.applied == 1).await;
    worker.stop().await;
    assert_eq!((progress.deleted, progress.applied), (2, 1), "{progress:?}");
    assert_eq!(env.pending().await, 0, "acked");
    assert_eq!(env.order_status("o3").await, "processing");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn own_pending_ids_whose_entries_were_deleted_are_logged_each_and_leave_the_pending_list() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    for order in ["o1", "o2"] {
        env.publish_lifecycle(order, &format!("f-{order}"), &[Planning])
            .await;
    }
    // A previous run of the same consumer read both and died; one entry is deleted since.
    // (Redis 7's XAUTOCLAIM, which the worker's first claim round runs, drops such ids from
    // the pending list itself: the worker's XACK of them is for older servers.)
    let held = read_and_abandon(&env, "w-restarted").await;
    assert_eq!(held.len(), 2);
    xdel(&env, &held[..1]).await;

    let mut worker = env.spawn_process("w-restarted", &env.redis_url, &env.database_url, &[]);
    support::eventually("both settled", async || {
        env.pending().await == 0 && env.order_status("o2").await == "processing"
    })
    .await;
    assert_eq!(
        support::process::terminate(&mut worker).await.code(),
        Some(0)
    );
    let log = env.process_log("w-restarted");
    let logged = log.lines().find(|line| {
        line.contains("pending entry was deleted from the stream: acking it")
            && line.contains(&held[0])
    });
    assert!(logged.is_some(), "{log}");
    assert_eq!(env.order_status("o1").await, "confirmed");
    env.cleanup().await;
}
