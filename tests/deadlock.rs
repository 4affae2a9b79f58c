//! A deadlock PostgreSQL breaks by aborting the worker's transaction (40P01) is a transient
//! fault: the worker retries the batch itself, with backoff, and it applies; nothing waits for a
//! claim.

mod support;

use diesel_async::SimpleAsyncConnection;
use order_worker::FulfillmentStatus::Planning;
use support::http::{http_port, Metrics};
use support::process::terminate;
use support::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn a_deadlocked_batch_is_retried_by_the_worker_and_applies() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    // One batch, one transaction: it locks o1, then o2 (id order).
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    env.publish_lifecycle("o2", "f2", &[Planning]).await;
    let mut rival = env.db().await;
    // The worker's deadlock check (1 s) comes first: it is the one aborted.
    rival
        .batch_execute(
            "SET deadlock_timeout = '20s'; BEGIN; SELECT 1 FROM orders WHERE id = 'o2' FOR UPDATE",
        )
        .await
        .expect("lock o2");
    // Retries at once; a claim would come only after ten minutes.
    let settings = [
        ("CONCURRENCY", "1"),
        ("CLAIM_MIN_IDLE_MS", "600000"),
        ("CONSUMER_GONE_MS", "600000"),
    ];
    let mut worker = env.spawn_process("deadlock", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "deadlock").await;
    eventually("the worker holds o1 and waits for o2", async || {
        env.lock_waits().await == 1
    })
    .await;
    // Waits for o1 until PostgreSQL aborts the worker's transaction.
    rival
        .batch_execute("SELECT 1 FROM orders WHERE id = 'o1' FOR UPDATE; ROLLBACK")
        .await
        .expect("the rival is not the one aborted");

    eventually("both applied", async || {
        env.order_status("o1").await == "processing"
            && env.order_status("o2").await == "processing"
            && env.pending().await == 0
    })
    .await;
    let log = env.process_log("deadlock");
    assert!(
        log.contains("will retry") && log.contains("deadlock detected"),
        "{log}"
    );
    assert!(log.contains("PostgreSQL is back after"), "{log}");
    let metrics = Metrics::scrape(port).await;
    let errors = metrics.value("fulfillment_consumer_errors_total", &[("kind", "postgres")]);
    assert!(errors.is_some_and(|n| n >= 1.0), "{errors:?}");
    assert_eq!(metrics.total("fulfillment_entries_claimed_total"), 0.0);
    assert_eq!(env.history("o1").await.len(), 1);
    assert_eq!(env.history("o2").await.len(), 1);
    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    env.cleanup().await;
}
