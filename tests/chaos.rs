//! The chaos runs: three worker processes in one group over the three topics' streams with ~1 %
//! poison, one SIGKILLed and replaced every 0.5–1.5 s, PostgreSQL and Redis connections cut for
//! seconds at a time. The end state must be exactly what one worker applying every event one by
//! one in stream order writes: a fresh database is fed that way from the same streams and the
//! tables are compared row by row. What they published (`orders.order.status_changed`) must
//! chain, order by order, from `pending` to where the order ends, with no event twice.
//!
//! Two shapes: `backlog` publishes everything up front (as after an outage: a crash then
//! reorders the most), `paced` publishes evenly over `CHAOS_SECONDS` so faults land while work
//! is in flight. Each order pays (some after a declined card), runs its fulfillment lifecycle
//! with one event re-published, and every seventh is cancelled before it ships: in-order
//! processing leaves it `cancelled`, so order matters for the end state. The kills make events
//! late; one order's payment is made late before the run whatever they do ([`late_payment`]), so
//! the recompute path is always taken. Size from
//! `CHAOS_ORDERS`; `.ci/run` runs 1,000 orders (~11,500 entries) up front and 300 paced over 20 s,
//! `just chaos` 2,000 orders each, paced over 30 s. Run with `--nocapture` to see the figures.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use order_worker::FulfillmentStatus::{self, Cancelled, Planning, Shipped};
use order_worker_dev::fault_proxy::FaultProxy;
use order_worker_dev::in_order::Tables;
use order_worker_dev::publisher::{self, Format};
use support::order_events::chains;
use support::payments::{pending_for_on, ALL_TOPICS, CONFIRMED, FAILED, FULFILLMENT};
use support::process::{kill, terminate};
use support::{eventually, TestEnv};
use tokio::process::Child;

/// How long the whole run may take before it fails.
const RUN_DEADLINE: Duration = Duration::from_secs(600);
/// Every cycle cuts PostgreSQL, then Redis, for `CUT_FOR` each.
const CYCLE: Duration = Duration::from_secs(12);
const CUT_FOR: Duration = Duration::from_secs(3);
const TIMESTAMP: &str = "2025-12-22T10:54:00Z";
/// What a worker logs for each order it recomputes for a late event.
const RECOMPUTED: &str = "recomputed the order from its recorded events";
/// What a relay taking over logs when a killed one had published rows it did not delete.
const FOUND_PUBLISHED: &str = "found in the stream, not published again";
/// The order whose payment arrives late by construction ([`late_payment`]).
const LATE: &str = "order-late";

/// How a run publishes and kills.
struct Shape {
    /// `None` publishes everything before the workers start.
    publish_for: Option<u64>,
    orders: usize,
    /// A worker is SIGKILLed and replaced this often.
    kill_every: Duration,
    batch_size: &'static str,
}

/// The case a crash hurts most: a big backlog, default batches (500, two in flight), a kill
/// every half second while it drains.
#[tokio::test(flavor = "multi_thread")]
async fn chaos_backlog() {
    run(Shape {
        publish_for: None,
        orders: setting("CHAOS_ORDERS").unwrap_or(1_000) as usize,
        kill_every: Duration::from_millis(500),
        batch_size: "500",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_paced() {
    run(Shape {
        publish_for: Some(setting("CHAOS_SECONDS").unwrap_or(20)),
        orders: setting("CHAOS_ORDERS").unwrap_or(300) as usize,
        kill_every: Duration::from_millis(1500),
        batch_size: "50",
    })
    .await;
}

fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

/// A published entry: its topic, its fields, and whether it is poison.
type Entry = (&'static str, Vec<(String, String)>, bool);

async fn run(shape: Shape) {
    let Shape {
        publish_for,
        orders: order_count,
        kill_every,
        batch_size,
    } = shape;
    let env = TestEnv::new().await;
    let orders: Vec<String> = (0..order_count).map(|i| format!("order-{i:04}")).collect();
    let ids: Vec<&str> = orders.iter().map(String::as_str).chain([LATE]).collect();
    env.seed_orders(&ids, "pending").await;
    let entries = entries(&orders);
    let poison = entries
        .iter()
        .filter(|(_, _, is_poison)| *is_poison)
        .count();
    let streams: Vec<(&str, String)> = [FULFILLMENT, CONFIRMED, FAILED]
        .into_iter()
        .map(|topic| (topic, support::payments::stream_key(&env, topic)))
        .collect();
    let key_of: HashMap<&str, String> = streams.iter().cloned().collect();

    let redis_proxy = FaultProxy::start(&env.redis_addr())
        .await
        .expect("proxy starts");
    let pg_proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let (redis_url, database_url) = (
        redis_proxy.url_for(&env.redis_url).expect("proxied URL"),
        pg_proxy.url_for(&env.database_url).expect("proxied URL"),
    );
    let settings = [
        ("TOPICS", ALL_TOPICS),
        ("BATCH_SIZE", batch_size),
        ("CLAIM_MIN_IDLE_MS", "2000"),
        ("CLAIM_INTERVAL_MS", "500"),
        ("CONSUMER_GONE_MS", "1000"),
        ("CONCURRENCY", "2"),
    ];
    late_payment(&env, &key_of, &settings).await;
    let mut spawned = Vec::new();
    let mut spawn = |env: &TestEnv| {
        let name = format!("chaos-{}", spawned.len() + 1);
        spawned.push(name.clone());
        let child = env.spawn_process(&name, &redis_url, &database_url, &settings);
        (name, child)
    };

    // Straight to Redis: the publisher is not under test. One chunk every 100 ms when paced.
    let chunk_size = match publish_for {
        Some(seconds) => entries.len().div_ceil(seconds as usize * 10).max(1),
        None => entries.len(),
    };
    let publisher = {
        let mut redis = env.redis.clone();
        tokio::spawn(async move {
            let mut poison_ids = BTreeSet::new();
            for chunk in entries.chunks(chunk_size) {
                let mut pipe = redis::pipe();
                for (topic, fields, _) in chunk {
                    pipe.cmd("XADD").arg(&key_of[topic]).arg("*").arg(fields);
                }
                let ids: Vec<String> = pipe.query_async(&mut redis).await.expect("XADD");
                let poisoned = ids.into_iter().zip(chunk).filter(|(_, (_, _, p))| *p);
                poison_ids.extend(poisoned.map(|(id, _)| id));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            poison_ids
        })
    };
    if publish_for.is_none() {
        while !publisher.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut workers: Vec<(String, Child)> = (0..3).map(|_| spawn(&env)).collect();

    let started = Instant::now();
    let (mut kills, mut cuts) = (0, 0);
    let mut next_kill = started + kill_every;
    // Killed consumers still holding entries, since when; and how long each took to be emptied.
    let mut held: Vec<(String, Instant)> = Vec::new();
    let mut takeovers: Vec<Duration> = Vec::new();
    loop {
        let done = publisher.is_finished()
            && drained(&env, &streams).await
            && env.dead_letters().await.len() == poison
            && env.outbox_rows().await == 0;
        if done {
            break;
        }
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "not done within {RUN_DEADLINE:?}"
        );
        let now = Instant::now();
        let mut still_held = Vec::new();
        for (consumer, since) in held {
            if holds(&env, &streams, &consumer).await {
                still_held.push((consumer, since));
            } else {
                takeovers.push(since.elapsed());
            }
        }
        held = still_held;
        assert_running(&env, &mut workers);
        if now >= next_kill {
            let victim = kills % workers.len();
            let status = kill(&mut workers[victim].1).await;
            // Killed by this SIGKILL, not exited before it.
            assert_eq!(
                status.signal(),
                Some(9),
                "{} ended {status}",
                workers[victim].0
            );
            let name = workers[victim].0.clone();
            if holds(&env, &streams, &name).await {
                held.push((name, Instant::now()));
            }
            workers[victim] = spawn(&env);
            kills += 1;
            next_kill = now + kill_every;
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
    for (name, worker) in &mut workers {
        let status = terminate(worker).await;
        assert_eq!(status.code(), Some(0), "{name} after SIGTERM: {status}");
    }
    // Late events: without them, the comparison with in-order processing proves nothing. The
    // kills make them; `LATE`'s is made whatever the kills do.
    let logs: Vec<String> = spawned.iter().map(|name| env.process_log(name)).collect();
    let recomputed: usize = logs.iter().map(|log| log.matches(RECOMPUTED).count()).sum();
    let late_recomputed = logs
        .iter()
        .flat_map(|log| log.lines())
        .any(|line| line.contains(RECOMPUTED) && line.contains(LATE));

    let poison_ids = publisher.await.expect("publisher");
    let dead: BTreeSet<String> = env
        .dead_letters()
        .await
        .into_iter()
        .map(|l| l["source_id"].clone())
        .collect();
    let chaos_tables = Tables::read(&mut env.db().await)
        .await
        .expect("tables read");
    let in_order = TestEnv::new().await;
    in_order.seed_orders(&ids, "pending").await;
    let applied = in_order.apply_in_order(&streams).await;
    let expected = Tables::read(&mut in_order.db().await)
        .await
        .expect("tables read");
    takeovers.sort();
    let shape = publish_for.map_or("backlog up front".to_owned(), |s| {
        format!("paced over {s} s")
    });
    println!(
        "chaos ({shape}): {} entries ({} orders, {poison} poison) drained in {:.1} s; {kills} \
         workers SIGKILLed, {cuts} cut cycles; dead letters {}; rows {:?}; takeover of a killed \
         replica's entries: {} measured, median {:?}, max {:?}; {recomputed} orders recomputed \
         for a late event",
        applied + poison,
        orders.len(),
        elapsed.as_secs_f64(),
        dead.len(),
        chaos_tables.counts(),
        takeovers.len(),
        takeovers
            .get(takeovers.len() / 2)
            .unwrap_or(&Duration::ZERO),
        takeovers.last().unwrap_or(&Duration::ZERO),
    );
    assert_eq!(
        dead, poison_ids,
        "the dead-letter stream holds exactly the poison entries"
    );
    assert!(late_recomputed, "{LATE}'s late payment was not recomputed");
    if let Some(difference) = chaos_tables.first_difference(&expected) {
        panic!("the tables differ from in-order processing of the same streams: {difference}");
    }
    // What subscribers saw: each order's events chain from `pending` to where it ends, every
    // id once, across the kills (a relay killed mid-round included) and the cuts.
    let published = env.published().await;
    let paths = chains(&published, "pending");
    let mut unfinished = Vec::new();
    for &order in &ids {
        let ends = env.order_status(order).await;
        let seen = paths
            .get(order)
            .and_then(|path| path.last())
            .map(String::as_str);
        if seen != Some(ends.as_str()) {
            unfinished.push(format!("{order}: published up to {seen:?}, is {ends}"));
        }
    }
    assert!(unfinished.is_empty(), "{}", unfinished.join("\n"));
    let found_again: usize = spawned
        .iter()
        .map(|name| env.process_log(name).matches(FOUND_PUBLISHED).count())
        .sum();
    println!(
        "chaos ({shape}): {} status changes published, each order's chained, no id twice; \
         {found_again} takeovers found rows a killed relay had published and not deleted",
        published.len()
    );
    let cancelled = in_order.count_orders("cancelled").await;
    let delivered = in_order.count_orders("delivered").await;
    assert_eq!(
        cancelled,
        order_count.div_ceil(7) as i64,
        "orders cancelled"
    );
    assert_eq!(
        delivered + cancelled,
        ids.len() as i64,
        "the others delivered ({LATE} among them)"
    );
    in_order.cleanup().await;
    env.cleanup().await;
}

/// A late event by construction: `LATE`'s payment is delivered to a consumer that never settles
/// it (as a replica killed holding it) while a worker that never claims applies the order's
/// fulfillment after it; the chaos workers then claim the payment, older than what its order
/// has applied.
async fn late_payment(env: &TestEnv, key_of: &HashMap<&str, String>, settings: &[(&str, &str)]) {
    let (confirmed, fulfillment) = (&key_of[CONFIRMED], &key_of[FULFILLMENT]);
    let life = life(1, LATE);
    assert_eq!(
        life[0].0, CONFIRMED,
        "{LATE}'s life starts with its payment"
    );
    let mut pipe = redis::pipe();
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg(confirmed)
        .arg(&env.stream.group)
        .arg("0")
        .arg("MKSTREAM")
        .ignore();
    for (topic, fields, _) in &life {
        pipe.cmd("XADD")
            .arg(&key_of[topic])
            .arg("*")
            .arg(fields)
            .ignore();
    }
    pipe.cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&env.stream.group)
        .arg("chaos-dead")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(confirmed)
        .arg(">")
        .ignore();
    let () = pipe
        .query_async(&mut env.redis.clone())
        .await
        .expect("LATE published, its payment delivered");
    let never_claims: Vec<(&str, &str)> = settings
        .iter()
        .copied()
        .chain([("CLAIM_MIN_IDLE_MS", "600000")])
        .collect();
    let mut applier =
        env.spawn_process("chaos-0", &env.redis_url, &env.database_url, &never_claims);
    eventually("LATE's fulfillment applied", async || {
        let group =
            order_worker::group_info(&mut env.redis.clone(), fulfillment, &env.stream.group).await;
        matches!(group, Ok(Some(group)) if group.lag == Some(0) && group.pending == 0)
    })
    .await;
    let status = terminate(&mut applier).await;
    assert_eq!(status.code(), Some(0), "chaos-0 after SIGTERM: {status}");
    assert_eq!(
        pending_for_on(env, confirmed, "chaos-dead").await,
        1,
        "the payment waits for a claim"
    );
}

/// Fails with its log if a worker exited before the test killed or stopped it: a replacement
/// started during a cut must wait for the server, not exit.
fn assert_running(env: &TestEnv, workers: &mut [(String, Child)]) {
    for (name, worker) in workers {
        if let Some(status) = worker.try_wait().expect("try_wait") {
            panic!(
                "{name} exited on its own ({status}):\n{}",
                env.process_log(name)
            );
        }
    }
}

/// Every stream delivered to the group and acked.
async fn drained(env: &TestEnv, streams: &[(&str, String)]) -> bool {
    for (_, key) in streams {
        let group = order_worker::group_info(&mut env.redis.clone(), key, &env.stream.group).await;
        match group.ok().flatten() {
            Some(group) if group.lag == Some(0) && group.pending == 0 => {}
            _ => return false,
        }
    }
    true
}

/// Whether `consumer` holds entries on any stream.
async fn holds(env: &TestEnv, streams: &[(&str, String)], consumer: &str) -> bool {
    for (_, key) in streams {
        if pending_for_on(env, key, consumer).await > 0 {
            return true;
        }
    }
    false
}

/// Every order's events, interleaved step by step across orders: a declined card first for every
/// fifth, then its payment, then its fulfillment's lifecycle with `planning` published twice (a
/// publisher retry: same CloudEvent id) and, for every seventh, `cancelled` before `shipped`.
/// One poison entry after every 99 others (1 %).
fn entries(orders: &[String]) -> Vec<Entry> {
    let lives: Vec<Vec<Entry>> = orders.iter().enumerate().map(|(i, o)| life(i, o)).collect();
    let longest = lives.iter().map(Vec::len).max().unwrap_or(0);
    let mut entries = Vec::new();
    let mut good = 0;
    for step in 0..longest {
        for entry in lives.iter().filter_map(|life| life.get(step)) {
            entries.push(entry.clone());
            good += 1;
            if good % 99 == 0 {
                let poison = format!("{{\"poison\": {good}");
                entries.push((FULFILLMENT, vec![("data".to_owned(), poison)], true));
            }
        }
    }
    entries
}

/// One order's entries, in the order it publishes them.
fn life(i: usize, order: &str) -> Vec<Entry> {
    let format = Format::ALL[i % Format::ALL.len()];
    let mut life = Vec::new();
    let payment = |topic: &'static str, payment: &str, reason: Option<&str>| {
        let verdict = topic.strip_prefix("payment.").expect("a payment topic");
        let event =
            publisher::payment_event(verdict, order, payment, Some("42.50"), reason, TIMESTAMP);
        let id = format!("{order}-{payment}-{verdict}");
        (
            topic,
            publisher::entry_fields(topic, &event, &id, format),
            false,
        )
    };
    if i.is_multiple_of(5) {
        life.push(payment(
            FAILED,
            &format!("p-{order}-declined"),
            Some("card_declined"),
        ));
    }
    life.push(payment(CONFIRMED, &format!("p-{order}"), None));
    let cancels = i.is_multiple_of(7);
    for status in FulfillmentStatus::LIFECYCLE {
        let fulfillment = |status: FulfillmentStatus| {
            let event = publisher::event(order, &format!("f-{order}"), None, status, TIMESTAMP);
            let id = format!("{order}-{status}");
            let fields = publisher::entry_fields(FULFILLMENT, &event, &id, format);
            (FULFILLMENT, fields, false)
        };
        if status == Shipped && cancels {
            life.push(fulfillment(Cancelled));
        }
        let copies = if status == Planning { 2 } else { 1 };
        for _ in 0..copies {
            life.push(fulfillment(status));
        }
    }
    life
}
