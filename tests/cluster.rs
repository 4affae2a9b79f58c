//! Redis Cluster (three masters on loopback): the three topics' streams on three different
//! masters, drained by two replicas (processes) while events keep coming, and the slot of the
//! fulfillment stream migrated to another master mid-run. Every order ends at its expected
//! status with its exact history (none lost, none twice), nothing stays pending, each stream's
//! dead letters are exactly its bad entries, in its `{<stream>}.deadletter`. The operator
//! commands and `/readyz` work against the cluster.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use order_worker::FulfillmentStatus;
use order_worker::{RedisTls, StreamConfig};
use order_worker_dev::cluster::ClusterSet;
use order_worker_dev::publisher::{self, Format};
use serde_json::Value;
use support::http::{get, http_port};
use support::order_events::chains_from;
use support::payments::*;
use support::process::terminate;
use support::{eventually, TestEnv};

/// Orders of each kind: paid (a payment, then a whole fulfillment), declined (a declined card,
/// later an accepted one), shipped (already confirmed, a whole fulfillment).
const ORDERS: usize = 30;

/// How far apart the second wave's first half is published: slow enough that the workers are
/// most likely still draining it when the slot moves (the second half follows the move).
const PACE: Duration = Duration::from_millis(3);

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_drain_three_masters_across_a_slot_migration() {
    let set = ClusterSet::start().await.expect("a cluster starts");
    let url = set.url();
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut env = TestEnv::on(url.clone(), RedisTls::default(), admin_url, None).await;
    order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
        .await
        .expect("migrations apply");
    spread_streams(&set, &mut env).await;
    let names =
        |kind: &str| -> Vec<String> { (0..ORDERS).map(|i| format!("{kind}-{i:02}")).collect() };
    let (paid, declined, shipped) = (names("paid"), names("declined"), names("shipped"));
    let pending: Vec<&str> = paid.iter().chain(&declined).map(String::as_str).collect();
    env.seed_orders(&pending, "pending").await;
    let confirmed: Vec<&str> = shipped.iter().map(String::as_str).collect();
    env.seed_orders(&confirmed, "confirmed").await;

    // Status changes go to a stream in the fulfillment stream's slot, which moves mid-drain:
    // the relay's XADDs meet the migration too.
    let events_key = format!("{{{}}}.orders.order.status_changed", env.stream.stream);
    let settings = [
        ("TOPICS", ALL_TOPICS),
        ("BATCH_SIZE", "20"),
        ("ORDER_EVENTS_TOPIC", events_key.as_str()),
    ];
    let mut workers: Vec<_> = ["c1", "c2"]
        .iter()
        .map(|name| env.spawn_process(name, &url, &env.database_url, &settings))
        .collect();

    // First wave: the payments, and a bad entry on each stream.
    let mut first = Vec::new();
    for i in 0..ORDERS {
        first.push(payment(CONFIRMED, &paid[i], "p"));
        first.push(payment(FAILED, &declined[i], "p1"));
    }
    let first = entries(&env, &first);
    publish(env.redis.clone(), first, Duration::ZERO).await;
    publish_bad_entries(&env).await;
    eventually("the first wave applied", async || {
        env.history_count().await == 2 * ORDERS as i64 && nothing_pending(&env).await
    })
    .await;

    // Second wave: whole fulfillments step by step across orders, the accepted cards half-way;
    // published at a pace while the fulfillment stream's slot moves to another master.
    let mut second = Vec::new();
    for (step, status) in FulfillmentStatus::LIFECYCLE.into_iter().enumerate() {
        for i in 0..ORDERS {
            second.push(fulfillment(&paid[i], status));
            second.push(fulfillment(&shipped[i], status));
        }
        if step == 4 {
            second.extend(declined.iter().map(|order| payment(CONFIRMED, order, "p2")));
        }
    }
    let mut second = entries(&env, &second);
    let after_migration = second.split_off(second.len() / 2);
    let publisher = tokio::spawn(publish(env.redis.clone(), second, PACE));
    let fulfillment_stream = stream_key(&env, FULFILLMENT);
    let before = set.master_of(&fulfillment_stream).await.expect("owner");
    eventually("the workers are draining the second wave", async || {
        env.history_count().await >= 3 * ORDERS as i64
    })
    .await;
    let started = Instant::now();
    let after = set
        .migrate_slot_of(&fulfillment_stream)
        .await
        .expect("the slot migrates");
    eprintln!(
        "slot of {fulfillment_stream} moved from port {before} to {after} in {:?}, {} history rows in",
        started.elapsed(),
        env.history_count().await
    );
    assert_ne!(before, after);
    publisher
        .await
        .expect("the second wave's first half published");
    publish(env.redis.clone(), after_migration, Duration::ZERO).await;
    publish_bad_entries(&env).await;
    let expected_rows = (4 + 2 + 3) * ORDERS as i64;
    eventually("everything applied and acked", async || {
        env.history_count().await >= expected_rows && nothing_pending(&env).await
    })
    .await;

    assert_three_kinds(&env, (&paid, &declined, &shipped), expected_rows).await;
    eventually("every status change published", async || {
        env.outbox_rows().await == 0
    })
    .await;
    let published = env.published_on(&events_key).await;
    let paths = chains_from(&published, |order| {
        let seeded = if order.starts_with("shipped") {
            "confirmed"
        } else {
            "pending"
        };
        seeded.to_owned()
    });
    for order in paid.iter().chain(&declined).chain(&shipped) {
        let ends = env.order_status(order).await;
        assert_eq!(
            paths[order].last(),
            Some(&ends),
            "{order}: {:?}",
            paths[order]
        );
    }
    for key in three_streams(&env) {
        let dead: Vec<_> = dead_letters(&env, &key).await;
        let bad = dead
            .iter()
            .filter(|entry| entry.get("data").is_some_and(|d| d == BAD));
        assert_eq!((dead.len(), bad.count()), (2, 2), "{key}: {dead:?}");
    }

    operator_commands_work(&env).await;
    for name in ["c1", "c2"] {
        let port = http_port(&env, name).await;
        assert_eq!(get(port, "/readyz").await.0, 200, "{name} ready");
    }
    for worker in &mut workers {
        assert_eq!(terminate(worker).await.code(), Some(0), "exit status");
    }
    env.cleanup().await;
}

/// Names the test's streams so that the three topics' are on three different masters, and
/// points the test's dead-letter stream at the fulfillment stream's as the worker names it.
async fn spread_streams(set: &ClusterSet, env: &mut TestEnv) {
    for _ in 0..200 {
        let name = support::unique("cluster.fulfillment");
        env.stream = StreamConfig::for_stream(&name);
        let mut masters = Vec::new();
        for key in three_streams(env) {
            masters.push(set.master_of(&key).await.expect("the key's owner"));
        }
        masters.sort();
        masters.dedup();
        if masters.len() == 3 {
            env.stream.dead_letter_stream = Some(format!("{{{name}}}.deadletter"));
            return;
        }
    }
    panic!("no stream name put the three streams on three masters in 200 tries");
}

/// What the worker cannot decode: dead-lettered wherever it is published.
const BAD: &str = "{not json";

async fn publish_bad_entries(env: &TestEnv) {
    for key in three_streams(env) {
        let fields = [("data".to_owned(), BAD.to_owned())];
        publisher::publish(&mut env.redis.clone(), &key, &fields)
            .await
            .expect("XADD");
    }
}

/// `<key>`'s dead letters, as the worker names its dead-letter stream in a cluster.
async fn dead_letters(env: &TestEnv, key: &str) -> Vec<HashMap<String, String>> {
    env.entries_of(&format!("{{{key}}}.deadletter")).await
}

fn payment(topic: &'static str, order: &str, attempt: &str) -> (&'static str, Value) {
    let (amount, reason) = match topic {
        CONFIRMED => (Some("25.00"), None),
        _ => (None, Some("card_declined")),
    };
    let event = payment_event(topic, order, &format!("{attempt}-{order}"), amount, reason);
    (topic, event)
}

fn fulfillment(order: &str, status: FulfillmentStatus) -> (&'static str, Value) {
    let event = publisher::event(order, &format!("f-{order}"), None, status, &now());
    (FULFILLMENT, event)
}

/// Each (topic, event) as the stream key and fields Dapr would XADD (CloudEvents).
fn entries(env: &TestEnv, events: &[(&str, Value)]) -> Vec<(String, Vec<(String, String)>)> {
    events
        .iter()
        .map(|(topic, event)| {
            let id = uuid::Uuid::new_v4().to_string();
            let fields = publisher::entry_fields(topic, event, &id, Format::CloudEvent);
            (stream_key(env, topic), fields)
        })
        .collect()
}

/// XADDs the entries one by one, `pace` apart, as publishers do: through the cluster client,
/// which follows the slot wherever it is.
async fn publish(
    mut redis: order_worker::RedisConnection,
    entries: Vec<(String, Vec<(String, String)>)>,
    pace: Duration,
) {
    for (key, fields) in entries {
        publisher::publish(&mut redis, &key, &fields)
            .await
            .expect("XADD");
        tokio::time::sleep(pace).await;
    }
}

/// `pending`, `subscriptions`, `dead-letter`, `trim` and `replay` against the cluster: each
/// succeeds, and dead letters moved back by `replay --dead-letter` are dead-lettered again.
async fn operator_commands_work(env: &TestEnv) {
    let all = [("TOPICS", ALL_TOPICS)];
    let confirmed = stream_key(env, CONFIRMED);
    for command in [
        &["pending"][..],
        &["subscriptions"],
        &["dead-letter", "list", "--topic", CONFIRMED],
        &["trim", "--topic", CONFIRMED],
        &["replay", "--from", "0", "--dry-run"],
    ] {
        let output = env.order_worker_with(command, &all).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{command:?}: {stderr}");
    }
    let listed = env.order_worker_with(&["subscriptions"], &all).await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("{{{confirmed}}}.deadletter")),
        "{listed}"
    );
    // What they print is the cluster's: every topic's stream, each read through its own slot.
    let pending = env.order_worker_json(&["pending", "--json"], &all).await;
    let streams: Vec<&str> = pending
        .as_array()
        .expect("an array")
        .iter()
        .map(|report| report["stream"].as_str().expect("its stream"))
        .collect();
    assert_eq!(streams.len(), 3, "{pending}");
    assert!(streams.contains(&confirmed.as_str()), "{pending}");
    for report in pending.as_array().expect("an array") {
        assert!(report["length"].as_u64() > Some(0), "{report}");
    }
    let requeue = ["replay", "--dead-letter", "--all", "--topic", CONFIRMED];
    let output = env.order_worker_with(&requeue, &all).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{requeue:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("moved 2 dead letters"), "{stdout}");
    eventually("the requeued entries dead-lettered again", async || {
        dead_letters(env, &confirmed).await.len() == 2 && nothing_pending(env).await
    })
    .await;
}
