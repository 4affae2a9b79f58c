//! Real worker processes killed and stopped: `kill -9` mid-batch loses nothing, SIGTERM during a
//! backlog exits 0 in time with nothing left pending under the stopped consumer.

mod support;

use std::time::{Duration, Instant};

use support::process::signal;
use support::proxy::FaultProxy;
use support::{eventually, TestEnv, DEADLINE};

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_batch_has_its_entries_claimed_by_another() {
    let env = TestEnv::new().await;
    // The victim's database stalls before the events arrive, so it is certainly mid-batch,
    // holding entries, when it is killed.
    let proxy = FaultProxy::start(&env.postgres_addr()).await;
    let proxied = proxy.url_for(&env.database_url);
    let mut victim = env.spawn_process("victim", &env.redis_url, &proxied, &[("BATCH_SIZE", "25")]);
    eventually("the victim joined the group", async || {
        env.has_consumer("victim").await
    })
    .await;
    proxy.stall();
    let (orders, _) = env.seed_lifecycles(50).await;
    eventually("the victim holds a batch", async || {
        env.pending_for("victim").await > 0
    })
    .await;
    signal(&victim, "-KILL");
    victim.wait().await.expect("reaped");
    proxy.restore();
    assert!(
        env.pending_for("victim").await > 0,
        "the victim died holding entries"
    );

    let mut survivor = env.spawn_process("survivor", &env.redis_url, &env.database_url, &[]);
    eventually("everything applied and acked", async || {
        env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0
    })
    .await;
    signal(&survivor, "-TERM");
    survivor.wait().await.expect("survivor exits");
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_backlog_exits_zero_in_time_leaving_nothing_pending() {
    let env = TestEnv::new().await;
    let (orders, _) = env.seed_lifecycles(1_000).await;
    let mut worker = env.spawn_process(
        "draining",
        &env.redis_url,
        &env.database_url,
        &[("BATCH_SIZE", "10"), ("SHUTDOWN_TIMEOUT", "5s")],
    );
    eventually("the worker is under way", async || {
        env.history_count().await > 0
    })
    .await;
    signal(&worker, "-TERM");
    let stopping = Instant::now();
    let status = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "within SHUTDOWN_TIMEOUT: {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        env.pending_for("draining").await,
        0,
        "the batch in flight was acked; nothing else was read"
    );
    assert!(
        env.history_count().await < 3 * orders.len() as i64,
        "stopped with a backlog left"
    );

    // What was never read is still there for the next replica.
    let mut next = env.spawn_process("next", &env.redis_url, &env.database_url, &[]);
    eventually("the backlog is drained", async || {
        env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0
    })
    .await;
    signal(&next, "-TERM");
    next.wait().await.expect("exits");
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}
