//! Real worker processes killed and stopped: `kill -9` mid-batch loses nothing, SIGTERM during a
//! backlog exits 0 in time with nothing left pending under the stopped consumer.

mod support;

use std::time::{Duration, Instant};

use order_worker_dev::fault_proxy::FaultProxy;
use support::http::{http_port, Metrics};
use support::process::{kill, signal, terminate};
use support::{eventually, TestEnv, DEADLINE};

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_batch_has_its_entries_claimed_by_another() {
    let env = TestEnv::new().await;
    // The victim's database stalls before the events arrive, so it is certainly mid-batch,
    // holding entries, when it is killed.
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let proxied = proxy.url_for(&env.database_url).expect("proxied URL");
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
    kill(&mut victim).await;
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
    assert_eq!(
        terminate(&mut survivor).await.code(),
        Some(0),
        "exit status"
    );
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_replicas_entries_are_taken_over_in_seconds_not_after_claim_min_idle() {
    let env = TestEnv::new().await;
    // CLAIM_MIN_IDLE_MS is ten minutes: only the takeover from a consumer that is gone can
    // finish within the test's deadline.
    let settings = [
        ("CLAIM_MIN_IDLE_MS", "600000"),
        ("CONSUMER_GONE_MS", "1500"),
    ];
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let proxied = proxy.url_for(&env.database_url).expect("proxied URL");
    let mut victim = env.spawn_process("victim", &env.redis_url, &proxied, &settings);
    let mut survivor = env.spawn_process("survivor", &env.redis_url, &env.database_url, &settings);
    eventually("both joined the group", async || {
        env.has_consumer("victim").await && env.has_consumer("survivor").await
    })
    .await;
    proxy.stall();
    let published = env
        .publish_until_held(async |env| env.pending_for("victim").await > 0)
        .await;
    // Held past CONSUMER_GONE_MS while alive (the stall's length), and the survivor has looked
    // since (a claim round begun after it): kept fresh, never taken.
    let survivor_port = http_port(&env, "survivor").await;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let rounds = claim_rounds(survivor_port).await;
    eventually("the survivor ran a claim round since", async || {
        claim_rounds(survivor_port).await >= rounds + 2.0
    })
    .await;
    assert!(
        env.pending_for("victim").await > 0,
        "a live replica's batch was taken"
    );
    let killed = std::time::Instant::now();
    kill(&mut victim).await;
    eventually(
        "the survivor took everything over and applied it",
        async || env.pending().await == 0 && env.history_count().await == 3 * published as i64,
    )
    .await;
    let took = killed.elapsed();
    eprintln!("takeover after SIGKILL, applied and acked: {took:?}");
    // CONSUMER_GONE_MS (1.5 s) + CLAIM_INTERVAL_MS (200 ms), measured 1.5–1.7 s on a quiet
    // machine; 4 s more for a loaded one. Waiting for CLAIM_MIN_IDLE_MS would take 600 s.
    assert!(took < std::time::Duration::from_secs(6), "took {took:?}");
    assert_eq!(
        terminate(&mut survivor).await.code(),
        Some(0),
        "exit status"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_backlog_exits_zero_in_time_leaving_nothing_pending() {
    let env = TestEnv::new().await;
    let (orders, _) = env.seed_lifecycles(1_000).await;
    let total = 3 * orders.len() as i64;
    // Its database stalls once it is under way: the batch in flight waits, the backlog stays.
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let proxied = proxy.url_for(&env.database_url).expect("proxied URL");
    let mut worker = env.spawn_process(
        "draining",
        &env.redis_url,
        &proxied,
        &[("BATCH_SIZE", "10"), ("SHUTDOWN_TIMEOUT", "20s")],
    );
    eventually("the worker is under way", async || {
        env.history_count().await > 0
    })
    .await;
    proxy.stall();
    eventually("the worker holds a batch", async || {
        env.pending_for("draining").await > 0
    })
    .await;
    assert!(env.history_count().await < total, "a backlog is left");
    signal(&worker, "-TERM");
    eventually("the signal is seen", async || {
        env.process_log("draining").contains("SIGTERM received")
    })
    .await;
    // The batch in flight may finish now; nothing else may be read.
    proxy.restore();
    let status = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    let log = env.process_log("draining");
    assert!(
        !log.contains("shutdown timeout"),
        "stopped once its batch was done, not at the timeout: {log}"
    );
    assert_eq!(
        env.pending_for("draining").await,
        0,
        "the batch in flight was acked; nothing else was read"
    );
    assert!(
        env.history_count().await < total,
        "stopped with a backlog left"
    );

    // What was never read is still there for the next replica.
    let mut next = env.spawn_process("next", &env.redis_url, &env.database_url, &[]);
    eventually("the backlog is drained", async || {
        env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0
    })
    .await;
    assert_eq!(terminate(&mut next).await.code(), Some(0), "exit status");
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

/// An outage of either server, ridden out by a real process, logged once when it starts and once
/// when it ends: PostgreSQL's as long as a restart (10 s), Redis's shorter.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    for (server, outage) in [("PostgreSQL", 10), ("Redis", 3)] {
        let env = TestEnv::new().await;
        let target = match server {
            "PostgreSQL" => env.postgres_addr(),
            _ => env.redis_addr(),
        };
        let proxy = FaultProxy::start(&target).await.expect("proxy starts");
        let (redis_url, database_url) = match server {
            "PostgreSQL" => (
                env.redis_url.clone(),
                proxy.url_for(&env.database_url).expect("proxied URL"),
            ),
            _ => (
                proxy.url_for(&env.redis_url).expect("proxied URL"),
                env.database_url.clone(),
            ),
        };
        let mut worker = env.spawn_process("logger", &redis_url, &database_url, &[]);
        eventually("the worker joined the group", async || {
            env.has_consumer("logger").await
        })
        .await;
        proxy.cut();
        let (orders, _) = env.seed_lifecycles(20).await;
        // The outage itself (backoff starts at 50 ms: many retries).
        tokio::time::sleep(Duration::from_secs(outage)).await;
        proxy.restore();
        eventually("the backlog is applied", async || {
            env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0
        })
        .await;
        assert_eq!(terminate(&mut worker).await.code(), Some(0), "{server}");

        let log = env.process_log("logger");
        let unavailable = format!("{server} unavailable");
        let back = format!("{server} is back after");
        assert_eq!(log.matches(&unavailable).count(), 1, "{server}: {log}");
        assert_eq!(log.matches(&back).count(), 1, "{server}: {log}");
        env.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_batch_holds_shutdown_only_until_the_timeout_and_a_second_signal_exits_at_once() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let proxied = proxy.url_for(&env.database_url).expect("proxied URL");
    let spawn = |name: &str| {
        env.spawn_process(
            name,
            &env.redis_url,
            &proxied,
            &[("SHUTDOWN_TIMEOUT", "2s")],
        )
    };
    let (mut patient, mut impatient) = (spawn("patient"), spawn("impatient"));
    eventually("both joined the group", async || {
        env.has_consumer("patient").await && env.has_consumer("impatient").await
    })
    .await;
    proxy.stall();
    let published = env
        .publish_until_held(async |env| {
            env.pending_for("patient").await > 0 && env.pending_for("impatient").await > 0
        })
        .await;

    // Measured from before the signal: the worker's clock starts a moment after ours.
    let stopping = Instant::now();
    signal(&patient, "-TERM");
    signal(&impatient, "-TERM");
    // Two signals sent at once may reach the process as one (the kernel does not queue
    // them): the second comes once the first was seen, as an operator's second Ctrl-C does.
    eventually("the first signal is seen", async || {
        env.process_log("impatient").contains("SIGTERM received")
    })
    .await;
    signal(&impatient, "-TERM");
    let impatient = tokio::time::timeout(DEADLINE, impatient.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(
        impatient.code(),
        Some(130),
        "the second signal exits at once"
    );
    let patient = tokio::time::timeout(DEADLINE, patient.wait())
        .await
        .expect("exits")
        .expect("wait");
    let waited = stopping.elapsed();
    assert_eq!(patient.code(), Some(0));
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "SHUTDOWN_TIMEOUT (2 s) honoured: waited for, and not for the stalled batch, which \
         never finishes (10 s: room for a loaded machine): {waited:?}"
    );
    assert!(
        env.pending_for("patient").await > 0,
        "its unapplied batch stays pending, for another replica"
    );

    // Another replica claims what both left and applies it.
    proxy.restore();
    let mut successor = env.spawn_process("successor", &env.redis_url, &env.database_url, &[]);
    eventually("the successor claimed and applied everything", async || {
        env.pending().await == 0 && env.lag().await == 0
    })
    .await;
    assert_eq!(terminate(&mut successor).await.code(), Some(0));
    assert!(
        env.process_log("successor")
            .contains("claimed entries idle"),
        "{}",
        env.process_log("successor")
    );
    let orders: Vec<String> = (0..published).map(|i| format!("order-{i:03}")).collect();
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

/// The claim rounds the worker serving `port` has finished.
async fn claim_rounds(port: u16) -> f64 {
    Metrics::scrape(port)
        .await
        .value("fulfillment_claim_rounds_total", &[])
        .unwrap_or(0.0)
}
