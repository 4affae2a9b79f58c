//! Starting during an outage: a worker whose Redis or PostgreSQL does not answer waits with
//! backoff, says so on `/readyz`, and starts once the server is back (SIGTERM meanwhile exits 0),
//! whether the server refuses connections or something in between (a proxy, a mesh sidecar)
//! accepts them and hangs up at once. And what waiting cannot fix (a refused password, a bad
//! URL, a schema behind) exits 1 at once with the reason.

mod support;

use order_worker::FulfillmentStatus::Planning;
use order_worker_dev::fault_proxy::FaultProxy;
use support::http::{get, http_port};
use support::process::terminate;
use support::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_during_a_postgres_outage_waits_then_drains() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    proxy.cut();
    let db = proxy.url_for(&env.database_url).expect("proxied URL");
    let mut worker = env.spawn_process("http-5", &env.redis_url, &db, &[]);
    let port = http_port(&env, "http-5").await;
    eventually("not ready, waiting for PostgreSQL", async || {
        let (status, body) = get(port, "/readyz").await;
        status == 503 && body.contains("starting, waiting") && body.contains("PostgreSQL")
    })
    .await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;

    proxy.restore();
    eventually("drained once PostgreSQL is back", async || {
        env.order_status("o1").await == "processing" && env.pending().await == 0
    })
    .await;
    assert_eq!(get(port, "/readyz").await.0, 200);
    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_during_a_redis_outage_waits_and_a_sigterm_meanwhile_exits_zero() {
    let env = TestEnv::new().await;
    // A port where nothing listens: Redis is down, connections are refused. From the harness's
    // allocator: a port bound to `:0` and dropped may meanwhile be any connection's local port.
    let down = format!(
        "127.0.0.1:{}",
        order_worker_dev::local_servers::free_port().expect("a free port")
    );
    let redis_url = format!("redis://{down}");
    let mut quitter = env.spawn_process("http-6", &redis_url, &env.database_url, &[]);
    let mut waiter = env.spawn_process("http-7", &redis_url, &env.database_url, &[]);
    for name in ["http-6", "http-7"] {
        let port = http_port(&env, name).await;
        eventually("not ready, waiting for Redis", async || {
            let (status, body) = get(port, "/readyz").await;
            status == 503 && body.contains("starting, waiting") && body.contains("Redis")
        })
        .await;
    }
    assert_eq!(terminate(&mut quitter).await.code(), Some(0), "exit status");

    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    let _redis = FaultProxy::start_at(&down, &env.redis_addr())
        .await
        .expect("proxy starts");
    eventually("drained once Redis is back", async || {
        env.order_status("o1").await == "processing" && env.pending().await == 0
    })
    .await;
    assert_eq!(terminate(&mut waiter).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_while_proxies_hang_up_on_both_servers_waits_then_drains() {
    let env = TestEnv::new().await;
    let redis = FaultProxy::start(&env.redis_addr())
        .await
        .expect("proxy starts");
    let postgres = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    // Accepted, then closed at once: what a replica started during a chaos cut meets.
    redis.cut();
    postgres.cut();
    let redis_url = redis.url_for(&env.redis_url).expect("proxied URL");
    let database_url = postgres.url_for(&env.database_url).expect("proxied URL");
    let mut worker = env.spawn_process("start-cut", &redis_url, &database_url, &[]);
    let port = http_port(&env, "start-cut").await;
    for (server, proxy) in [("PostgreSQL", &postgres), ("Redis", &redis)] {
        eventually(&format!("not ready, waiting for {server}"), async || {
            let (status, body) = get(port, "/readyz").await;
            status == 503 && body.contains("starting, waiting") && body.contains(server)
        })
        .await;
        assert!(
            worker.try_wait().expect("try_wait").is_none(),
            "the worker exited while {server} hung up on it: {}",
            env.process_log("start-cut")
        );
        proxy.restore();
    }
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    eventually("drained once both are back", async || {
        env.order_status("o1").await == "processing" && env.pending().await == 0
    })
    .await;
    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

/// Runs `order-worker run` with `settings` over the test's, and returns how it ended: within a
/// few seconds, or the test fails (waiting is for what an outage can fix, not for these).
async fn exits_at_once(env: &TestEnv, settings: &[(&str, &str)]) -> std::process::Output {
    const AT_ONCE: std::time::Duration = std::time::Duration::from_secs(10);
    let mut all = vec![("HTTP_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(settings);
    tokio::time::timeout(AT_ONCE, env.order_worker_with(&["run"], &all))
        .await
        .unwrap_or_else(|_| panic!("still running after {AT_ONCE:?} with {settings:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn what_waiting_cannot_fix_exits_1_at_once_with_the_reason() {
    let env = TestEnv::new().await;
    let nobody = format!(
        "redis://{}:wrong@{}",
        support::unique("ow_nobody"),
        env.redis_addr()
    );
    let unmigrated = TestEnv::unmigrated().await;
    let cases = [
        (
            vec![("REDIS_URL", nobody.as_str())],
            "Password authentication failed",
        ),
        (vec![("REDIS_URL", "redis//no-scheme")], "invalid REDIS_URL"),
        (
            vec![
                ("REDIS_URL", "rediss+sentinel://127.0.0.1:1/orders"),
                ("REDIS_CA_CERT", "/nonexistent/ca.pem"),
            ],
            "REDIS_CA_CERT is not supported with a Sentinel REDIS_URL",
        ),
        (
            vec![("DATABASE_URL", unmigrated.database_url.as_str())],
            "run `order-worker migrate` first",
        ),
    ];
    for (settings, reason) in cases {
        let output = exits_at_once(&env, &settings).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{settings:?}: {stderr}");
        assert!(
            stderr.contains(reason),
            "{settings:?}: no {reason:?} in {stderr}"
        );
    }
    unmigrated.cleanup().await;
    env.cleanup().await;
}

/// Without CONSUMER_NAME a replica reads as its pod (`POD_NAME`, which the Deployment sets from
/// `metadata.name`), and without that as the host's name.
#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_name_defaults_to_pod_name_then_the_hostname() {
    let env = TestEnv::new().await;
    let pod = support::unique("order-worker-7f9c");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the hostname")
        .trim()
        .to_owned();
    for (name, pod_name, consumer) in [("pod", pod.as_str(), pod.as_str()), ("host", "", &hostname)]
    {
        let settings = [("CONSUMER_NAME", ""), ("POD_NAME", pod_name)];
        let mut worker = env.spawn_process(name, &env.redis_url, &env.database_url, &settings);
        eventually(
            &format!("{name}: a consumer named {consumer}"),
            async || env.has_consumer(consumer).await,
        )
        .await;
        assert_eq!(terminate(&mut worker).await.code(), Some(0), "{name}");
    }
    env.cleanup().await;
}
