//! The chaos run: three worker processes in one group over a stream with ~1 % poison, one
//! SIGKILLed and replaced every couple of seconds, PostgreSQL and Redis connections cut for
//! seconds at a time. The end state must be exact.
//!
//! Size from `CHAOS_ORDERS` (each order: a 9-event lifecycle plus one re-published CloudEvent),
//! published evenly over `CHAOS_SECONDS` so the faults land while work is in flight. `.ci/run`
//! runs the default (300 orders, ~3,000 entries over 20 s); `just chaos` runs 2,000 orders
//! (20,000 entries, 200 poison) over 60 s. Run with `--nocapture` to see the figures.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use order_worker::FulfillmentStatus;
use order_worker::FulfillmentStatus::Planning;
use order_worker_dev::publisher::{self, Format};
use support::process::signal;
use support::proxy::FaultProxy;
use support::TestEnv;
use tokio::process::Child;

/// How long the whole run may take before it fails.
const RUN_DEADLINE: Duration = Duration::from_secs(600);
/// A worker is SIGKILLed and replaced this often.
const KILL_EVERY: Duration = Duration::from_secs(2);
/// Every cycle cuts PostgreSQL, then Redis, for `CUT_FOR` each.
const CYCLE: Duration = Duration::from_secs(12);
const CUT_FOR: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn chaos() {
    let order_count: usize = std::env::var("CHAOS_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let publish_for: u64 = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let env = TestEnv::new().await;
    let orders: Vec<String> = (0..order_count).map(|i| format!("order-{i:04}")).collect();
    let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
    env.seed_orders(&ids, "confirmed").await;
    let entries = entries(&env.stream.stream, &orders);
    let poison = entries.iter().filter(|(_, is_poison)| *is_poison).count();

    let redis_proxy = FaultProxy::start(&env.redis_addr()).await;
    let pg_proxy = FaultProxy::start(&env.postgres_addr()).await;
    let (redis_url, database_url) = (
        redis_proxy.url_for(&env.redis_url),
        pg_proxy.url_for(&env.database_url),
    );
    let settings = [
        ("BATCH_SIZE", "50"),
        ("CLAIM_MIN_IDLE_MS", "2000"),
        ("CLAIM_INTERVAL_MS", "500"),
        ("CONCURRENCY", "2"),
    ];
    let mut generation = 0;
    let mut spawn = |env: &TestEnv| {
        generation += 1;
        env.spawn_process(
            &format!("chaos-{generation}"),
            &redis_url,
            &database_url,
            &settings,
        )
    };
    let mut workers: Vec<Child> = (0..3).map(|_| spawn(&env)).collect();

    // Publish while the workers run (straight to Redis: the publisher is not under test).
    let publisher = {
        let mut redis = env.redis.clone();
        let stream = env.stream.stream.clone();
        // One chunk every 100 ms.
        let chunk_size = entries.len().div_ceil(publish_for as usize * 10).max(1);
        tokio::spawn(async move {
            let mut poison_ids = BTreeSet::new();
            for chunk in entries.chunks(chunk_size) {
                let mut pipe = redis::pipe();
                for (fields, _) in chunk {
                    pipe.cmd("XADD").arg(&stream).arg("*").arg(fields);
                }
                let ids: Vec<String> = pipe.query_async(&mut redis).await.expect("XADD");
                poison_ids.extend(
                    ids.into_iter()
                        .zip(chunk)
                        .filter(|(_, (_, p))| *p)
                        .map(|(id, _)| id),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            poison_ids
        })
    };

    let started = Instant::now();
    let (mut kills, mut cuts) = (0, 0);
    let mut next_kill = started + KILL_EVERY;
    let expected_history = 3 * orders.len() as i64;
    loop {
        let done = publisher.is_finished()
            && env.history_count().await == expected_history
            && env.pending().await == 0
            && env.dead_letters().await.len() == poison;
        if done {
            break;
        }
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "not done within {RUN_DEADLINE:?}"
        );
        let now = Instant::now();
        if now >= next_kill {
            let victim = kills % workers.len();
            signal(&workers[victim], "-KILL");
            workers[victim].wait().await.expect("reaped");
            workers[victim] = spawn(&env);
            kills += 1;
            next_kill = now + KILL_EVERY;
        }
        // Within each cycle: PostgreSQL cut in [2 s, 5 s), Redis cut in [7 s, 10 s).
        let phase =
            Duration::from_millis((started.elapsed().as_millis() % CYCLE.as_millis()) as u64);
        let cut = |from: u64| {
            phase >= Duration::from_secs(from) && phase < Duration::from_secs(from) + CUT_FOR
        };
        for (proxy, from) in [(&pg_proxy, 2), (&redis_proxy, 7)] {
            if cut(from) {
                proxy.cut();
            } else {
                proxy.restore();
            }
        }
        if phase < Duration::from_millis(100) {
            cuts += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    pg_proxy.restore();
    redis_proxy.restore();
    for worker in &mut workers {
        signal(worker, "-TERM");
        worker.wait().await.expect("worker exits");
    }

    let poison_ids = publisher.await.expect("publisher");
    let dead: BTreeSet<String> = env
        .dead_letters()
        .await
        .into_iter()
        .map(|l| l["source_id"].clone())
        .collect();
    let published = orders.len() * (FulfillmentStatus::LIFECYCLE.len() + 1) + poison;
    println!(
        "chaos: {published} entries ({} orders, {poison} poison) in {:.1} s; {kills} workers SIGKILLed, \
         {cuts} cut cycles; history rows {} (expected {expected_history}), pending {}, dead letters {}",
        orders.len(),
        elapsed.as_secs_f64(),
        env.history_count().await,
        env.pending().await,
        dead.len(),
    );
    assert_eq!(
        dead, poison_ids,
        "the dead-letter stream holds exactly the poison entries"
    );
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

/// Every order's lifecycle, interleaved step by step, each order's `planning` event published a
/// second time (a publisher retry: same CloudEvent id), and one poison entry after every 99
/// others (1 %). Each entry: (fields, is poison).
fn entries(stream: &str, orders: &[String]) -> Vec<(Vec<(String, String)>, bool)> {
    let mut entries = Vec::new();
    let mut good = 0;
    for status in FulfillmentStatus::LIFECYCLE {
        for order in orders {
            let event = publisher::event(
                order,
                &format!("f-{order}"),
                None,
                status,
                "2025-12-22T10:54:00Z",
            );
            let id = format!("{order}-{status}");
            let fields = publisher::entry_fields(
                stream,
                &event,
                &id,
                Format::ALL[entries.len() % Format::ALL.len()],
            );
            // A publisher retry re-sends `planning`: the same CloudEvent, so the same id.
            let copies = if status == Planning { 2 } else { 1 };
            for _ in 0..copies {
                entries.push((fields.clone(), false));
                good += 1;
                if good % 99 == 0 {
                    let poison = format!("{{\"poison\": {good}");
                    entries.push((vec![("data".to_owned(), poison)], true));
                }
            }
        }
    }
    entries
}
