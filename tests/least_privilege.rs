//! The worker with only what docs/security.md grants it, over TLS: a Redis ACL user with exactly
//! the doc's `ACL SETUSER` rule and a PostgreSQL role with exactly its grants (both read from
//! docs/security.md, so the doc cannot drift from what is tested), through a drain with a dead
//! letter, a claim and a consumer removal. Nothing it did was denied; what it was not granted
//! is. Then the trim CronJob's command as the doc's trim user, which may trim where the
//! worker's user may not. On private TLS servers, so roles and users never touch a shared server.

mod support;

use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use order_worker::StreamConfig;
use support::ops::stderr;
use support::payments::ALL_TOPICS;
use support::tls::TlsServers;
use support::{eventually, TestEnv};

const SECURITY: &str = include_str!("../docs/security.md");
const PASSWORD: &str = "not-so-secret";

/// The arguments of docs/security.md's `ACL SETUSER <user> …` line, with a real password.
fn acl_rule(user: &str) -> Vec<String> {
    let line = SECURITY
        .lines()
        .find(|line| line.starts_with(&format!("ACL SETUSER {user} ")))
        .unwrap_or_else(|| panic!("docs/security.md states the ACL rule of {user}"));
    line.split_whitespace()
        .skip(2)
        .map(|arg| match arg {
            ">CHANGE-ME" => format!(">{PASSWORD}"),
            other => other.to_owned(),
        })
        .collect()
}

/// The statements of docs/security.md's SQL blocks about the roles: [as the superuser, as the owner].
fn role_sql() -> Vec<Vec<String>> {
    let blocks: Vec<Vec<String>> = SECURITY
        .split("```sql\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default())
        .filter(|block| block.contains("order_worker"))
        .map(|block| {
            block
                .split(';')
                .map(str::trim)
                .filter(|statement| !statement.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect();
    assert_eq!(
        blocks.len(),
        2,
        "docs/security.md: the superuser's and the owner's SQL"
    );
    blocks
}

async fn run_as(url: String, statements: &[String]) {
    let mut conn = order_worker::connect_postgres(url).await.expect("connect");
    // One by one: CREATE DATABASE cannot run in the implicit transaction of a multi-statement query.
    for statement in statements {
        conn.batch_execute(statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
}

/// Sets up both servers as docs/security.md says and returns the test environment (as the superuser,
/// on the `orders` database, the doc's stream names).
async fn set_up_as_the_doc_says(servers: &TlsServers) -> TestEnv {
    let [as_superuser, as_owner] = <[Vec<String>; 2]>::try_from(role_sql()).expect("two blocks");
    run_as(servers.postgres_url("postgres", "postgres"), &as_superuser).await;
    let mut env = servers.env(Some("orders")).await;
    env.stream = StreamConfig::for_stream("fulfillment.status_changed");
    let owner_url = servers.postgres_url("order_worker_owner", "orders");
    let migrated = env
        .order_worker_with(&["migrate"], &[("DATABASE_URL", &owner_url)])
        .await;
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    run_as(owner_url, &as_owner).await;

    for user in ["order-worker", "order-worker-trim"] {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(acl_rule(user))
            .query_async(&mut env.redis.clone())
            .await
            .expect("ACL SETUSER as docs/security.md says");
    }
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_drains_with_only_the_documented_acl_rule_and_grants() {
    let servers = TlsServers::start().await;
    let env = set_up_as_the_doc_says(&servers).await;
    let (orders, published) = env.seed_lifecycles(3).await;
    // Two entries read by Dapr's consumer and never acked: the worker must claim them.
    order_worker::ensure_group(&mut env.redis.clone(), &env.stream)
        .await
        .expect("group");
    assert_eq!(
        env.read_as(&env.stream.group, &env.stream.group, 2)
            .await
            .len(),
        2
    );
    env.xadd(&[("data".to_owned(), "{not json".to_owned())])
        .await;

    let mut config = env.config("least-privilege");
    config.connections.redis_url = servers.redis_url(Some(("order-worker", PASSWORD)));
    config.connections.database_url = servers.postgres_url("order_worker", "orders");
    config.consumer_idle_timeout = Duration::from_millis(500);
    // The doc's stream names, status changes included (this Redis is the test's own).
    config.order_events = order_worker::OrderEvents::default();
    let topic = config.order_events.order_events_topic.clone();
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker.wait_consumed(published + 1).await;
    // Three steps per order, published with the ACL user's rights alone.
    eventually("every status change published", async || {
        env.raw_entries_of(&topic).await.len() == 3 * orders.len()
    })
    .await;
    // Dapr's consumer, emptied by the claim, is removed through the Lua script.
    eventually("the emptied consumer is removed", async || {
        !env.has_consumer(&env.stream.group).await
    })
    .await;
    worker.stop().await;

    assert!(progress.claimed >= 2, "{progress:?}");
    assert_eq!(progress.dead_lettered, 1, "{progress:?}");
    env.assert_all_delivered(&orders).await;
    assert_eq!(env.dead_letters().await.len(), 1);
    assert_acl_log_empty(&env, "the worker").await;

    trim_as_the_documented_trim_user(&servers, &env).await;
    assert_redis_user_is_confined(&servers, &env).await;
    assert_runtime_role_has_no_ddl(&servers).await;
}

async fn assert_acl_log_empty(env: &TestEnv, who: &str) {
    let denied: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut env.redis.clone())
        .await
        .expect("ACL LOG");
    assert!(denied.is_empty(), "{who} was denied: {denied:?}");
}

/// The CronJob's command as the doc's trim user trims what every group is done with, on
/// every stream of the doc's ACL (the payment streams do not exist here: skipped); the
/// worker's user may not run it.
async fn trim_as_the_documented_trim_user(servers: &TlsServers, env: &TestEnv) {
    let streams = [
        ("TOPICS", ALL_TOPICS),
        ("PAYMENT_CONFIRMED_STREAM", "payment.confirmed"),
        ("PAYMENT_FAILED_STREAM", "payment.failed"),
    ];
    let trim = ["trim", "--all-topics", "--keep", "0", "--json"];
    let [trim_user, worker_user] =
        ["order-worker-trim", "order-worker"].map(|user| servers.redis_url(Some((user, PASSWORD))));
    let as_user = |url| [&streams[..], &[("REDIS_URL", url)]].concat();
    assert!(!env.stream_ids().await.is_empty());
    let trimmed = env.order_worker_with(&trim, &as_user(&trim_user)).await;
    assert!(trimmed.status.success(), "{}", stderr(&trimmed));
    let report: serde_json::Value = serde_json::from_slice(&trimmed.stdout).expect("JSON");
    assert_eq!(
        report[0]["stream"], "fulfillment.status_changed",
        "{report}"
    );
    assert!(env.stream_ids().await.is_empty(), "{report}");
    assert_acl_log_empty(env, "the trim user").await;

    let refused = env.order_worker_with(&trim, &as_user(&worker_user)).await;
    assert_eq!(refused.status.code(), Some(1));
    let denied = "no permissions to run the 'type' command";
    assert!(stderr(&refused).contains(denied), "{}", stderr(&refused));
}

async fn assert_redis_user_is_confined(servers: &TlsServers, env: &TestEnv) {
    let worker_user = servers.redis_url(Some(("order-worker", PASSWORD)));
    let mut worker_user = order_worker::redis_client(&env.redis_tls, &worker_user)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("the ACL user connects");
    let attempts = [
        redis::cmd("FLUSHALL"),
        redis::Cmd::new()
            .arg("XADD")
            .arg("another.stream")
            .arg("*")
            .arg("k")
            .arg("v")
            .to_owned(),
        redis::Cmd::new()
            .arg("XADD")
            .arg("fulfillment.status_changed.evil")
            .arg("*")
            .arg("k")
            .arg("v")
            .to_owned(),
        // The relay's fence is a string it INCRs and its script GETs; nothing may SET it.
        redis::Cmd::new()
            .arg("SET")
            .arg("{orders.order.status_changed}.relay")
            .arg("0")
            .to_owned(),
        redis::Cmd::new().arg("GET").arg("another.key").to_owned(),
        redis::Cmd::new()
            .arg("XTRIM")
            .arg("fulfillment.status_changed")
            .arg("MAXLEN")
            .arg(0)
            .to_owned(),
    ];
    for attempt in attempts {
        let result: redis::RedisResult<redis::Value> = attempt.query_async(&mut worker_user).await;
        match result {
            Err(error) => assert_eq!(error.code(), Some("NOPERM"), "{error}"),
            Ok(value) => panic!("the ACL user was allowed {attempt:?}: {value:?}"),
        }
    }
}

async fn assert_runtime_role_has_no_ddl(servers: &TlsServers) {
    let mut runtime =
        order_worker::connect_postgres(servers.postgres_url("order_worker", "orders"))
            .await
            .expect("the runtime role connects");
    for (statement, refusal) in [
        (
            "CREATE TABLE intruder (id int)",
            "permission denied for schema public",
        ),
        ("DROP TABLE processed_events", "must be owner"),
        ("ALTER TABLE orders ADD COLUMN x int", "must be owner"),
        (
            "DELETE FROM processed_events",
            "permission denied for table processed_events",
        ),
        (
            "CREATE TEMP TABLE scratch (id int)",
            "permission denied to create temporary tables",
        ),
        // The inbox's retention, granted, drops nothing younger than an hour.
        (
            "SELECT prune_processed_events(interval '1 minute', 5000, 'epoch', '')",
            "the inbox keeps at least an hour of events",
        ),
    ] {
        match runtime.batch_execute(statement).await {
            Ok(()) => panic!("the runtime role may run {statement}"),
            Err(error) => assert!(error.to_string().contains(refusal), "{statement}: {error}"),
        }
    }
    runtime
        .batch_execute("SELECT prune_processed_events(interval '7 days', 5000, 'epoch', '')")
        .await
        .expect("the runtime role runs the inbox's retention");
}
