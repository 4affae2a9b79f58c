//! The inbox's key (migrations 000010–000013): an event id is unique within its order once
//! `migrate --contract` has dropped the key on event ids alone; `migrate` holds that step back,
//! and until it runs an event id is recorded once whatever its order, as earlier builds have it.
//! Rows recorded before events carried their order are found by event id either way.

mod support;

use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use order_worker::FulfillmentStatus::*;
use order_worker::Progress;
use order_worker_dev::publisher::{self, Format};
use support::TestEnv;

/// The entry of `event_id`: fulfillment `f-<order>` of `order` moved to planning.
fn planning(env: &TestEnv, order: &str, event_id: &str) -> Vec<(String, String)> {
    let event = publisher::event(
        order,
        &format!("f-{order}"),
        None,
        Planning,
        "2026-12-05T10:00:00Z",
    );
    publisher::entry_fields(&env.stream.stream, &event, event_id, Format::CloudEvent)
}

/// Publishes `ce-1` for o1, then (once it is applied) `ce-1` again for o1 and `ce-1` for o2, each
/// in a batch of its own so that the inbox, not the batch, decides.
async fn publish_one_id_twice_for_o1_and_once_for_o2(env: &TestEnv) -> Progress {
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    let mut worker = env.spawn_worker("w1").await;
    for (count, order) in [(1, "o1"), (2, "o1"), (3, "o2")] {
        env.xadd(&planning(env, order, "ce-1")).await;
        worker.wait_consumed(count).await;
    }
    worker.stop().await
}

#[derive(QueryableByName)]
struct Indexes {
    #[diesel(sql_type = diesel::sql_types::Text)]
    names: String,
}

/// The indexes of the inbox and the history, by name.
async fn indexes(env: &TestEnv) -> String {
    diesel::sql_query(
        "SELECT string_agg(indexrelid::regclass::text, ' ' ORDER BY 1) AS names FROM pg_index \
         WHERE indrelid IN \
         ('processed_events'::regclass, 'order_status_history'::regclass)",
    )
    .get_result::<Indexes>(&mut env.db().await)
    .await
    .expect("read the indexes")
    .names
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_contract_step_an_event_id_is_unique_within_its_order() {
    let env = TestEnv::new().await;
    let progress = publish_one_id_twice_for_o1_and_once_for_o2(&env).await;
    assert_eq!(
        (progress.applied, progress.duplicate),
        (2, 1),
        "{progress:?}"
    );
    assert_eq!(env.history("o1").await.len(), 1);
    assert_eq!(env.history("o2").await.len(), 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_holds_the_contract_step_back_and_until_it_runs_an_id_is_recorded_once() {
    let env = TestEnv::unmigrated().await;
    let output = env.order_worker(&["migrate"]).await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("held back 1 contract migration")
            && said.contains("000013_contract_inbox_and_history_by_order")
            && said.contains("order-worker migrate --contract"),
        "{said}"
    );
    // What the previous build needs is still there: the keys on event ids alone, and the
    // indexes it finds an order's rows by.
    let before = indexes(&env).await;
    assert!(
        before.contains("processed_events_pkey")
            && before.contains("order_status_history_event_id_idx")
            && before.contains("processed_events_order_position_idx")
            && before.contains("order_status_history_order_id_idx"),
        "{before}"
    );

    // The worker starts on this schema; the id under another order is the same event.
    let progress = publish_one_id_twice_for_o1_and_once_for_o2(&env).await;
    assert_eq!(
        (progress.applied, progress.duplicate),
        (1, 2),
        "{progress:?}"
    );
    assert!(env.history("o2").await.is_empty());

    let output = env.order_worker(&["migrate", "--contract"]).await;
    assert!(output.status.success(), "{output:?}");
    let after = indexes(&env).await;
    assert!(
        !after.contains("processed_events_pkey")
            && !after.contains("order_status_history_event_id_idx")
            && !after.contains("processed_events_order_position_idx")
            && !after.contains("order_status_history_order_id_idx")
            && after.contains("processed_events_order_event_idx")
            && after.contains("order_status_history_order_event_idx"),
        "{after}"
    );
    env.cleanup().await;
}

/// `MIGRATE_CONTRACT=true` (what the migrate Job reads) applies the contract step; a table held
/// by another transaction makes it wait at most 5 s and fail saying why, and a rerun once the
/// lock is gone applies it.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_contract_true_applies_the_step_waiting_at_most_5_s_for_a_lock() {
    let env = TestEnv::unmigrated().await;
    let contract = [("MIGRATE_CONTRACT", "true")];
    let output = env.order_worker(&["migrate"]).await;
    assert!(output.status.success(), "{output:?}");

    let mut holder = env.db().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE processed_events IN ACCESS SHARE MODE")
        .await
        .expect("a transaction holds the inbox");
    let started = std::time::Instant::now();
    let output = env.order_worker_with(&["migrate"], &contract).await;
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lock timeout"), "{stderr}");
    assert!(waited >= std::time::Duration::from_secs(5), "{waited:?}");
    assert!(
        indexes(&env).await.contains("processed_events_pkey"),
        "nothing half done"
    );

    holder.batch_execute("ROLLBACK").await.expect("released");
    let output = env.order_worker_with(&["migrate"], &contract).await;
    assert!(output.status.success(), "{output:?}");
    let after = indexes(&env).await;
    assert!(
        !after.contains("processed_events_pkey")
            && after.contains("processed_events_order_event_idx"),
        "{after}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_recorded_before_events_carried_their_order_still_makes_a_duplicate() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.db()
        .await
        .batch_execute(
            "INSERT INTO processed_events (event_id, stream_entry_id, outcome) \
             VALUES ('ce-old', '1-0', 'applied')",
        )
        .await
        .expect("a row as migration 000006 left them");
    env.xadd(&planning(&env, "o1", "ce-old")).await;
    env.xadd(&planning(&env, "o1", "ce-new")).await;

    let mut worker = env.spawn_worker("w1").await;
    worker.wait_consumed(2).await;
    let progress = worker.stop().await;
    assert_eq!(
        (progress.applied, progress.duplicate),
        (1, 1),
        "{progress:?}"
    );
    assert_eq!(env.history("o1").await.len(), 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_running_when_the_contract_step_runs_takes_the_key_by_order() {
    let env = TestEnv::unmigrated().await;
    assert!(env.order_worker(&["migrate"]).await.status.success());
    env.seed_orders(&["o1"], "confirmed").await;
    let mut worker = env.spawn_worker("w1").await;
    env.xadd(&planning(&env, "o1", "ce-1")).await;
    worker.wait_consumed(1).await;

    let output = env.order_worker(&["migrate", "--contract"]).await;
    assert!(output.status.success(), "{output:?}");
    // The worker reads the key every claim interval (200 ms here): until it has, `ce-1` under
    // another order is a duplicate; from then on, another order's event. One order per try.
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    for consumed in 2.. {
        let order = format!("o{consumed}");
        env.seed_orders(&[&order], "confirmed").await;
        env.xadd(&planning(&env, &order, "ce-1")).await;
        if worker.wait_consumed(consumed).await.applied == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker still reads the inbox by event id alone"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    worker.stop().await;
    env.cleanup().await;
}
