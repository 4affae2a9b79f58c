//! Several replicas for real: three `order-worker run` processes with pod-like names in one
//! group share a stream that is fed while they work; a rolling restart (SIGTERM one at a time,
//! start its replacement under a new name) loses nothing, delivers nothing twice, and leaves
//! nothing pending under a stopped replica's name. And a smoke run of `order-worker-dev replicas`
//! (in-process, through the dev crate's library, its replicas this package's binary).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use order_worker::{PROCESSING_EVENT, UPDATED_ORDER};
use order_worker_dev::cli::Command;
use order_worker_dev::replicas::ReplicaSet;
use support::dev::order_worker_binary;
use support::process::terminate;
use support::{eventually, TestEnv};
use tokio::process::Child;

/// Orders per wave of publications. One order's events are a wave apart in the stream, far
/// more than three replicas hold at once, so no order's events are applied out of order and
/// every order gets exactly its three status changes.
const WAVE: usize = 300;

/// Small batches: every replica reads often, and with a backlog always has one read ahead.
const BATCH_SIZE: &str = "10";

/// Nothing is claimed during the test: entries a stopped replica left pending would stay
/// where they are, visible, instead of being taken over by another replica and hidden.
const NO_CLAIMS: (&str, &str) = ("CLAIM_MIN_IDLE_MS", "600000");

/// The feed tops the backlog up below this many undelivered entries, so there is always a
/// backlog while replicas are stopped.
const LOW_WATER: u64 = 1_000;

/// What each worker logs per event it processes and per status change it writes.

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_of_three_replicas_loses_nothing_duplicates_nothing_strands_nothing() {
    let env = TestEnv::new().await;
    let settings = [("BATCH_SIZE", BATCH_SIZE), NO_CLAIMS];
    let spawn = |name: &str| -> Child {
        env.spawn_process(name, &env.redis_url, &env.database_url, &settings)
    };
    let first = ReplicaSet::new();
    let mut running: Vec<(String, Child)> = (0..3)
        .map(|_| {
            let name = first.pod_name();
            let child = spawn(&name);
            (name, child)
        })
        .collect();
    let names: Vec<String> = running.iter().map(|(name, _)| name.clone()).collect();
    eventually("all three replicas joined the group", async || {
        for name in &names {
            if !env.has_consumer(name).await {
                return false;
            }
        }
        true
    })
    .await;

    let restarted = AtomicBool::new(false);
    // New orders keep coming until the rolling restart is over, plus one wave after it so
    // the replacements have work too.
    let feed = async {
        let (mut orders, mut events) = (Vec::new(), 0);
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        loop {
            ticker.tick().await;
            let last = restarted.load(Ordering::Relaxed);
            if last || env.lag().await < LOW_WATER {
                let (ids, published) = env.seed_lifecycles_from(orders.len(), WAVE).await;
                orders.extend(ids);
                events += published;
            }
            if last {
                return (orders, events);
            }
        }
    };
    let mut stopped = Vec::new();
    let rolling_restart = async {
        eventually("every replica took part", async || {
            names
                .iter()
                .all(|name| env.process_log(name).contains(PROCESSING_EVENT))
        })
        .await;
        let next = ReplicaSet::new();
        for (slot, child) in &mut running {
            let name = std::mem::take(slot);
            // Mid-drain: it holds a batch (in flight or read ahead) and more is waiting.
            eventually("the replica holds entries, with a backlog", async || {
                env.pending_for(&name).await > 0 && env.lag().await > 0
            })
            .await;
            let status = terminate(child).await;
            assert_eq!(status.code(), Some(0), "{name} exits 0 after SIGTERM");
            // At once, before anything could have taken them over: a batch read ahead and
            // left unprocessed would still be pending under the stopped name here.
            assert_eq!(
                env.pending_for(&name).await,
                0,
                "{name} left entries pending at exit"
            );
            stopped.push(name);
            let replacement = next.pod_name();
            *child = spawn(&replacement);
            eventually("the replacement subscribed", async || {
                env.has_consumer(&replacement).await
            })
            .await;
            *slot = replacement;
        }
        restarted.store(true, Ordering::Relaxed);
    };
    let ((orders, events), ()) = tokio::join!(feed, rolling_restart);

    eventually("the stream is drained", async || {
        env.history_count().await == 3 * orders.len() as i64
            && env.lag().await == 0
            && env.pending().await == 0
    })
    .await;
    for (name, child) in &mut running {
        assert_eq!(terminate(child).await.code(), Some(0), "{name} exits 0");
        stopped.push(name.clone());
    }
    for name in &stopped {
        assert_eq!(env.pending_for(name).await, 0, "{name} holds nothing");
    }
    env.assert_all_delivered(&orders).await;
    assert_eq!(
        env.inbox_count().await,
        events as i64,
        "one inbox row per event"
    );

    // Every entry was delivered to exactly one replica, once: no claim ran, and a replica
    // reading an entry twice would log it twice.
    let logs: Vec<(String, String)> = stopped
        .iter()
        .map(|name| (name.clone(), env.process_log(name)))
        .collect();
    let count = |needle: &str| -> Vec<u64> {
        logs.iter()
            .map(|(_, log)| log.matches(needle).count() as u64)
            .collect()
    };
    let per_replica = count(PROCESSING_EVENT);
    assert_eq!(per_replica.iter().sum::<u64>(), events, "{per_replica:?}");
    for ((name, _), processed) in logs.iter().zip(&per_replica) {
        assert!(*processed > 0, "{name} took part: {per_replica:?}");
    }
    assert_eq!(
        count(UPDATED_ORDER).iter().sum::<u64>(),
        3 * orders.len() as u64,
        "each status change written by one replica, once"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replicas_command_runs_two_replicas_rolls_them_and_checks_the_end() {
    let env = TestEnv::new().await;
    let database = support::unique("ow_replicas");
    let Command::Replicas(config) = env.dev_command(&[
        "replicas",
        "--count",
        "2",
        "--orders",
        "20",
        "--rate",
        "0",
        "--rolling-restart",
        "--database",
        &database,
        "--stream",
        &env.stream.stream,
    ]) else {
        unreachable!("parsed as replicas")
    };
    // It fails unless every replica exited 0 after SIGTERM holding nothing, every order is
    // final and each status change was written once.
    let summary = order_worker_dev::replicas::run(config, order_worker_binary())
        .await
        .expect("the replicas run checks out");
    assert_eq!(summary.orders, 20);
    assert_eq!(
        summary.replicas.len(),
        4,
        "two replicas and their two replacements: {summary:?}"
    );
    assert!(
        summary.replicas.iter().all(|replica| !replica.running),
        "all stopped: {summary:?}"
    );
    let (written, withdrawn) = summary
        .replicas
        .iter()
        .fold((0, 0), |(w, d), r| (w + r.transitions, d + r.withdrawn));
    assert_eq!(written - withdrawn, summary.transitions, "{summary:?}");
    assert!(summary.transitions > 0, "{summary:?}");
    env.drop_database(&database).await;
    env.cleanup().await;
}
