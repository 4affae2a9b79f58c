//! Redis Sentinel (a master, a replica, three sentinels on loopback): the worker finds the
//! master through the sentinels and follows it across a `SENTINEL FAILOVER` and across a
//! SIGKILL of the master, while events keep coming. Every order ends delivered with three
//! history rows (none lost, none twice), nothing stays pending, nothing is dead-lettered.

mod support;

use std::time::{Duration, Instant};

/// How soon the round published after a switch must be applied: measured 0.1–0.8 s; the retry
/// backoff's 5 s cap, and room for a loaded machine.
const FOLLOWED_WITHIN: Duration = Duration::from_secs(10);

use order_worker::RedisTls;
use order_worker_dev::sentinel::SentinelSet;
use support::order_events::chains;
use support::process::terminate;
use support::{connect_redis, eventually, TestEnv};

/// Orders published before, between and after the two failovers.
const ORDERS_PER_ROUND: usize = 40;

/// Publishes the next round's orders on the master of now and, if `replicated`, waits until
/// the replica has them, so a failover cannot take entries with it that the publisher thought
/// written (that loss would be the publisher's, not the worker's). After the master is killed
/// there is no replica left to wait for.
async fn publish_round(env: &mut TestEnv, round: usize, replicated: bool) -> Vec<String> {
    env.redis = connect_redis(&env.redis_tls, &env.redis_url).await;
    let (orders, _) = env
        .seed_lifecycles_from(round * ORDERS_PER_ROUND, ORDERS_PER_ROUND)
        .await;
    // Short WAITs, repeated: after a failover the old master takes a moment to follow the new one.
    if !replicated {
        return orders;
    }
    let mut conn = env.redis.clone();
    eventually("the replica acknowledged the round", async || {
        let replicated: redis::RedisResult<i64> = redis::cmd("WAIT")
            .arg(1)
            .arg(200)
            .query_async(&mut conn)
            .await;
        replicated.is_ok_and(|replicas| replicas >= 1)
    })
    .await;
    orders
}

/// Waits until every event of `orders` is applied (three history rows each).
async fn applied(env: &TestEnv, orders: &[String]) {
    let expected = 3 * orders.len() as i64;
    eventually("the round applied", async || {
        env.history_count().await >= expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_follows_a_sentinel_failover_and_a_killed_master() {
    let mut set = SentinelSet::start()
        .await
        .expect("a Sentinel set-up starts");
    let url = set.url();
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut env = TestEnv::on(url.clone(), RedisTls::default(), admin_url, None).await;
    order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
        .await
        .expect("migrations apply");
    let mut worker = env.spawn_process("sentinel", &url, &env.database_url, &[]);

    let mut orders = publish_round(&mut env, 0, true).await;
    applied(&env, &orders).await;
    let started = Instant::now();
    let new_master = set.failover().await.expect("SENTINEL FAILOVER");
    let switched = Instant::now();
    orders.extend(publish_round(&mut env, 1, true).await);
    applied(&env, &orders).await;
    eprintln!(
        "SENTINEL FAILOVER to port {new_master}: settled in {:?}; the next round applied {:?} later",
        switched.duration_since(started),
        switched.elapsed()
    );
    assert!(
        switched.elapsed() < FOLLOWED_WITHIN,
        "{:?}",
        switched.elapsed()
    );

    let started = Instant::now();
    let new_master = set.kill_master().await.expect("the replica promoted");
    let promoted = Instant::now();
    orders.extend(publish_round(&mut env, 2, false).await);
    applied(&env, &orders).await;
    eprintln!(
        "master SIGKILLed: port {new_master} promoted in {:?}; the next round applied {:?} later",
        promoted.duration_since(started),
        promoted.elapsed()
    );
    assert!(
        promoted.elapsed() < FOLLOWED_WITHIN,
        "{:?}",
        promoted.elapsed()
    );

    eventually("nothing pending", async || env.pending().await == 0).await;
    env.assert_all_delivered(&orders).await;
    // The relay followed the master too: the last round, applied after the kill, is published
    // whole (earlier rounds' events may have died unreplicated with the killed master: Redis's
    // asynchronous replication, as for any publisher).
    eventually("the last round published", async || {
        env.outbox_rows().await == 0
    })
    .await;
    let last = &orders[2 * ORDERS_PER_ROUND..];
    let mut published = env.published().await;
    published.retain(|event| last.iter().any(|order| order == event.order_id()));
    let paths = chains(&published, "confirmed");
    for order in last {
        let path = &paths[order];
        assert_eq!(
            path,
            &["confirmed", "processing", "shipped", "delivered"],
            "{order}"
        );
    }
    assert!(env.dead_letters().await.is_empty(), "no dead letter");
    // The operator commands find the master the same way, and read what it holds.
    let stream = env.stream.stream.as_str();
    let pending = env.order_worker_json(&["pending", "--json"], &[]).await;
    assert_eq!(pending[0]["stream"], stream, "{pending}");
    assert_eq!(pending[0]["group"]["pending"], 0, "{pending}");
    assert_eq!(pending[0]["group"]["lag"], 0, "{pending}");
    assert!(pending[0]["length"].as_u64() > Some(0), "{pending}");
    let subscriptions = env
        .order_worker_json(&["subscriptions", "--json"], &[])
        .await;
    assert_eq!(subscriptions[0]["stream"], stream, "{subscriptions}");
    assert_eq!(subscriptions[0]["group_exists"], true, "{subscriptions}");
    let output = env.order_worker(&["dead-letter", "list"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dead-letter list: {stderr}");
    let status = terminate(&mut worker).await;
    assert_eq!(status.code(), Some(0), "exit status");
    env.cleanup().await;
}

/// Sentinels with a password of their own (the data servers have none): the worker reaches them
/// with `REDIS_SENTINEL_PASSWORD`, the URL's credentials being the master's. The test's own
/// connection and the operator commands go the same way.
#[tokio::test(flavor = "multi_thread")]
async fn sentinels_with_a_password_of_their_own_are_reached_with_redis_sentinel_password() {
    let set = SentinelSet::start_with_sentinel_password("sentinels-only")
        .await
        .expect("a Sentinel set-up starts");
    let url = set.url();
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let tls = RedisTls {
        redis_sentinel_password: Some("sentinels-only".to_owned()),
        ..RedisTls::default()
    };
    let mut env = TestEnv::on(url.clone(), tls, admin_url, None).await;
    order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
        .await
        .expect("migrations apply");
    let mut worker = env.spawn_process("sentinel-auth", &url, &env.database_url, &[]);
    let orders = publish_round(&mut env, 0, true).await;
    applied(&env, &orders).await;
    let pending = env.order_worker_json(&["pending", "--json"], &[]).await;
    assert_eq!(pending[0]["group"]["pending"], 0, "{pending}");
    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}
