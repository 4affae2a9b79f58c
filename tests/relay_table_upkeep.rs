//! The order service's outbox (`RELAY_TABLE`) kept as its own relay kept it: published rows
//! deleted after `RELAY_RETENTION` (or left, with `off`), and the opt-in trigger
//! (`migrate --relay-trigger`) that wakes the relay on each commit instead of its poll. Real
//! servers.

mod support;

use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;
use order_worker::RelayRetention;
use serde_json::json;
use support::process::order_worker_output;
use support::relay_table::TABLE;
use support::{eventually, TestEnv};

/// Rows published 40 days ago (ids 1–3), a day ago (4–5), one failed 40 days ago (6).
async fn aged_rows(env: &TestEnv) {
    let sql = format!(
        "INSERT INTO {TABLE} (topic, event_type, payload, status, published_at, created_at) \
         SELECT 't', 'test', '{{}}', s, p, c FROM (VALUES \
         ('published', now() - interval '40 days', now() - interval '40 days'), \
         ('published', now() - interval '40 days', now() - interval '40 days'), \
         ('published', now() - interval '40 days', now() - interval '40 days'), \
         ('published', now() - interval '1 day', now() - interval '1 day'), \
         ('published', now() - interval '1 day', now() - interval '1 day'), \
         ('failed', NULL::timestamptz, now() - interval '40 days')) AS v(s, p, c)"
    );
    env.db().await.batch_execute(&sql).await.expect("aged rows");
}

fn fresh_row(env: &TestEnv) -> (String, String) {
    let payload = json!({"order_id": "o-1"}).to_string();
    (env.compensation_topic(), payload)
}

#[tokio::test(flavor = "multi_thread")]
async fn published_rows_past_the_retention_are_deleted_and_the_others_kept() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    aged_rows(&env).await;
    let worker = env.spawn_worker_with(env.relaying_config("w1")).await;
    eventually("the old published rows deleted", async || {
        env.outbox_table().await.len() == 3
    })
    .await;
    worker.stop().await;
    let left: Vec<(i64, String)> = env
        .outbox_table()
        .await
        .into_iter()
        .map(|row| (row.id, row.status))
        .collect();
    let want = [(4, "published"), (5, "published"), (6, "failed")];
    let want: Vec<(i64, String)> = want.iter().map(|(id, s)| (*id, s.to_string())).collect();
    assert_eq!(left, want);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_retention_off_the_published_rows_are_left_to_the_order_service() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    aged_rows(&env).await;
    env.write_outbox(&[fresh_row(&env)]).await;
    let mut config = env.relaying_config("w1");
    config.relay.relay_retention = RelayRetention(None);
    let worker = env.spawn_worker_with(config).await;
    // The relay's first round (which cleans before it publishes) is over once the new row is
    // published.
    eventually("the new row published", async || {
        env.outbox_table().await[6].status == "published"
    })
    .await;
    worker.stop().await;
    assert_eq!(env.outbox_table().await.len(), 7, "nothing deleted");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_opt_in_trigger_a_commit_is_published_long_before_the_next_poll() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    let settings = [
        ("DATABASE_URL", env.database_url.as_str()),
        ("RELAY_TABLE", TABLE),
        ("RELAY_TRIGGER", "true"),
    ];
    for _ in 0..2 {
        let migrated = order_worker_output(&["migrate"], &settings);
        let said = String::from_utf8_lossy(&migrated.stderr);
        assert!(migrated.status.success(), "{said}");
    }
    let mut config = env.relaying_config("w1");
    config.relay.relay_poll_interval = Duration::from_secs(60);
    let worker = env.spawn_worker_with(config).await;
    env.write_outbox(&[fresh_row(&env)]).await;
    eventually("the first row published", async || {
        env.outbox_table().await[0].status == "published"
    })
    .await;
    // Now the relay waits for a notification or its 60 s poll.
    let committed = Instant::now();
    env.write_outbox(&[fresh_row(&env)]).await;
    eventually("the second row published", async || {
        env.outbox_table().await[1].status == "published"
    })
    .await;
    let took = committed.elapsed();
    worker.stop().await;
    assert!(took < Duration::from_secs(5), "{took:?}: woken by the poll");
    env.cleanup().await;
}
