//! The inbox's retention (docs/operations.md, "Retention"): an order's record is dropped once it has had no
//! event for INBOX_RETENTION, never before, so a redelivery inside the window is still a
//! `duplicate`; and dropping millions of rows while workers drain holds no lock long enough to
//! stall them.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use order_worker::FulfillmentStatus::*;
use order_worker_dev::publisher::{self, Format};
use support::http::{http_port, Metrics};
use support::process::terminate;
use support::{eventually, TestEnv};

/// Rows of the inbox recorded for `order`.
async fn rows_of(conn: &mut AsyncPgConnection, order: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count =
        diesel::sql_query("SELECT count(*) AS n FROM processed_events WHERE order_id = $1")
            .bind::<Text, _>(order)
            .get_result(conn)
            .await
            .expect("count rows");
    count.n
}

/// Makes the inbox rows matched by `condition` look recorded eight days ago.
async fn age(conn: &mut AsyncPgConnection, condition: &str) {
    let sql = format!(
        "UPDATE processed_events SET processed_at = now() - interval '8 days' WHERE {condition}"
    );
    conn.batch_execute(&sql).await.expect(&sql);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_quiet_past_the_retention_loses_its_record_and_a_redelivery_inside_it_is_a_duplicate(
) {
    let env = TestEnv::new().await;
    env.seed_orders(&["quiet", "active", "recent"], "confirmed")
        .await;
    let steps = [Planning, Picking, Packing];
    for order in ["quiet", "active"] {
        env.publish_lifecycle(order, &format!("f-{order}"), &steps)
            .await;
    }
    let event = publisher::event("recent", "f-recent", None, Planning, "2026-12-05T10:00:00Z");
    let recent =
        publisher::entry_fields(&env.stream.stream, &event, "ce-recent", Format::CloudEvent);
    env.xadd(&recent).await;

    let mut config = env.config("w1");
    config.inbox_prune_interval = Duration::from_millis(100);
    let mut worker = env.spawn_worker_with(config).await;
    worker.wait_consumed(7).await;

    let mut conn = env.db().await;
    // `quiet` had its last event eight days ago; `active` had its first two then, its last now.
    // One statement: the step that finds the one finds the other (a step reads 5,000 rows).
    age(
        &mut conn,
        "order_id = 'quiet' OR (order_id = 'active' AND position < (SELECT max(position) \
         FROM processed_events WHERE order_id = 'active'))",
    )
    .await;
    eventually("the quiet order's record dropped", async || {
        rows_of(&mut conn, "quiet").await == 0
    })
    .await;
    assert_eq!(
        rows_of(&mut conn, "active").await,
        3,
        "an active order's record stays whole"
    );
    assert_eq!(rows_of(&mut conn, "recent").await, 1);

    // Redelivered inside the window: a duplicate, nothing written twice.
    env.xadd(&recent).await;
    let progress = worker.wait_consumed(8).await;
    worker.stop().await;
    assert_eq!(
        (progress.applied, progress.duplicate),
        (7, 1),
        "{progress:?}"
    );
    assert_eq!(env.history("recent").await.len(), 1);
    env.cleanup().await;
}

#[derive(diesel::QueryableByName)]
struct Step {
    #[diesel(sql_type = BigInt)]
    deleted: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    next_id: Option<String>,
}

/// Old records to drop: a quarter of a million rows, four per order, recorded 8 days ago.
const OLD_ROWS: i64 = 250_000;

#[tokio::test(flavor = "multi_thread")]
async fn dropping_old_records_while_workers_drain_loses_nothing_and_stalls_no_one() {
    let env = TestEnv::new().await;
    let mut conn = env.db().await;
    conn.batch_execute(&format!(
        "INSERT INTO processed_events \
             (event_id, stream_entry_id, outcome, processed_at, order_id, topic, position, said) \
         SELECT 'old-' || n, '1-' || n, 'applied', \
             now() - interval '8 days' + n * interval '1 ms', 'old-order-' || n / 4, \
             'fulfillment.status_changed', n, '{{}}' \
         FROM generate_series(1, {OLD_ROWS}) AS n; \
         ANALYZE processed_events;"
    ))
    .await
    .expect("old records");
    let (orders, entries) = env.seed_lifecycles(300).await;
    let w1 = env.spawn_worker("w1").await;
    let w2 = env.spawn_worker("w2").await;

    // The steps the workers' retention takes, timed while the two drain.
    let (mut steps, mut deleted, mut largest, mut longest) = (0, 0, 0, Duration::ZERO);
    let mut cursor: (DateTime<Utc>, String) = (DateTime::UNIX_EPOCH, String::new());
    loop {
        let started = Instant::now();
        let step: Step = diesel::sql_query(
            "SELECT deleted, next_at, next_id FROM \
             prune_processed_events(interval '7 days', 5000, $1, $2)",
        )
        .bind::<Timestamptz, _>(cursor.0)
        .bind::<Text, _>(&cursor.1)
        .get_result(&mut conn)
        .await
        .expect("a step");
        longest = longest.max(started.elapsed());
        steps += 1;
        deleted += step.deleted;
        largest = largest.max(step.deleted);
        match (step.next_at, step.next_id) {
            (Some(at), Some(id)) => cursor = (at, id),
            _ => break,
        }
    }
    eventually("both workers drained the backlog", async || {
        env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0
    })
    .await;
    let consumed = w1.stop().await.consumed + w2.stop().await.consumed;
    println!("dropped {deleted} rows in {steps} steps, the longest {longest:?}, while two workers drained {entries} entries");

    assert_eq!(deleted, OLD_ROWS, "every old record dropped");
    assert_eq!(consumed, entries, "every entry consumed once");
    env.assert_all_delivered(&orders).await;
    assert_eq!(
        env.inbox_count().await,
        entries as i64,
        "the new records kept"
    );
    // What keeps a step's locks short is its size, not a clock a loaded machine can stretch: its
    // 5,000 rows, and the rest of the order it stops in (4 records each here).
    assert!(
        largest < 5_000 + 4,
        "a step dropped {largest} rows at once, over its limit"
    );
    assert!(steps > OLD_ROWS / 5_000, "{steps} steps");
    env.cleanup().await;
}

/// Retention runs on one replica at a time (an advisory lock: here the test holds it, as another
/// replica would), and a round that fails is logged and tried again by the next.
#[tokio::test(flavor = "multi_thread")]
async fn retention_waits_for_the_replica_at_it_and_a_failed_round_is_retried() {
    const RETENTION_LOCK: &str = "SELECT pg_advisory_lock(1768841848)"; // 0x696e_6278, "inbx"
    let env = TestEnv::new().await;
    env.seed_orders(&["quiet"], "confirmed").await;
    env.publish_lifecycle("quiet", "f-quiet", &[Planning, Picking, Packing])
        .await;
    let mut other_replica = env.db().await;
    other_replica
        .batch_execute(RETENTION_LOCK)
        .await
        .expect("the lock");
    let settings = [("INBOX_PRUNE_INTERVAL", "200ms")];
    let mut worker = env.spawn_process("w1", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "w1").await;
    let mut conn = env.db().await;
    eventually("the events applied", async || {
        rows_of(&mut conn, "quiet").await == 3
    })
    .await;
    age(&mut conn, "order_id = 'quiet'").await;

    // A round has run since (its gauge sees the aged rows), and dropped nothing: the lock is
    // someone else's.
    eventually("a round saw the aged rows", async || {
        let metrics = Metrics::scrape(port).await;
        metrics.total("order_inbox_oldest_event_age_seconds") > 7.0 * 86_400.0
    })
    .await;
    assert_eq!(
        rows_of(&mut conn, "quiet").await,
        3,
        "pruned under another's lock"
    );

    // The lock is free, but the step fails (its function is gone): logged, retried.
    conn.batch_execute(
        "ALTER FUNCTION prune_processed_events(interval, integer, timestamptz, text) \
         RENAME TO prune_processed_events_away",
    )
    .await
    .expect("rename");
    other_replica
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .expect("unlock");
    eventually("a failed round logged", async || {
        env.process_log("w1")
            .contains("inbox retention: this round failed, the next one retries")
    })
    .await;
    assert_eq!(rows_of(&mut conn, "quiet").await, 3);
    conn.batch_execute(
        "ALTER FUNCTION prune_processed_events_away(interval, integer, timestamptz, text) \
         RENAME TO prune_processed_events",
    )
    .await
    .expect("rename back");
    eventually("a later round dropped the record", async || {
        rows_of(&mut conn, "quiet").await == 0
    })
    .await;
    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}
