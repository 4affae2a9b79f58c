//! Transient faults between the worker and its servers, through a real TCP proxy: connections
//! cut or stalled mid-stream. The worker rides through each: nothing lost, nothing applied twice.

mod support;

use std::time::Duration;

use order_worker::FulfillmentStatus::*;
use order_worker::WorkerConfig;
use order_worker_dev::fault_proxy::FaultProxy;
use order_worker_dev::publisher::Format;
use support::TestEnv;

/// How long each fault lasts. Not a wait for a result: the fault itself.
const OUTAGE: Duration = Duration::from_secs(2);
/// Well within [`OUTAGE`], so that an attempt stalled by it is cut short and retried on another
/// connection, as the default 30 s does with a partition that lasts.
const APPLY_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
enum Server {
    Redis,
    Postgres,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Cut,
    Stall,
}

/// A fault proxy in front of `server`, and `config` pointed at it.
async fn behind_proxy(env: &TestEnv, server: Server, config: &mut WorkerConfig) -> FaultProxy {
    let (target, url) = match server {
        Server::Redis => (env.redis_addr(), &mut config.connections.redis_url),
        Server::Postgres => (env.postgres_addr(), &mut config.connections.database_url),
    };
    let proxy = FaultProxy::start(&target).await.expect("proxy starts");
    *url = proxy.url_for(url).expect("proxied URL");
    proxy
}

/// Runs a worker through `server`'s proxy over a backlog, applies `fault` once it is under
/// way, restores, and checks that the worker noticed (it retried) and the end state is exact.
async fn ride_through(server: Server, fault: Fault) {
    let env = TestEnv::new().await;
    let (orders, total) = env.seed_lifecycles(200).await;
    let mut config = env.config("w1");
    config.batch_size = 5;
    config.apply_timeout = APPLY_TIMEOUT;
    let proxy = behind_proxy(&env, server, &mut config).await;
    let mut worker = env.spawn_worker_with(config).await;
    worker.wait_consumed(total / 10).await;
    match fault {
        Fault::Cut => proxy.cut(),
        Fault::Stall => proxy.stall(),
    }
    let at_fault = worker.progress.borrow().consumed;
    assert!(
        at_fault < total,
        "the fault hit mid-stream ({at_fault} of {total} consumed)"
    );
    tokio::time::sleep(OUTAGE).await;
    // The fault lasts until the worker has noticed it (it retried): a Redis stall, say, only
    // shows once a reply is overdue by the response timeout (BLOCK_MS, 100 ms here, + 5 s),
    // counted from whenever the worker next sent a command, which a busy machine delays.
    worker.wait_for(|progress| progress.retried > 0).await;
    proxy.restore();
    let progress = worker.wait_consumed(total).await;
    worker.stop().await;

    assert_eq!(
        progress.applied + progress.duplicate,
        total,
        "{server:?} {fault:?}: every event applied, or found already applied: {progress:?}"
    );
    env.assert_all_delivered(&orders).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_connections_cut_mid_stream() {
    ride_through(Server::Redis, Fault::Cut).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_connections_stalled_mid_stream() {
    ride_through(Server::Redis, Fault::Stall).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_connections_cut_mid_stream() {
    ride_through(Server::Postgres, Fault::Cut).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_connections_stalled_mid_stream() {
    ride_through(Server::Postgres, Fault::Stall).await;
}

/// Dapr issue #4599: a batch held longer than the claim idle time was claimed and applied
/// twice. Here the worker keeps its entries fresh while PostgreSQL stalls, so a second worker
/// claiming every 200 ms finds nothing to take.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_database_never_lets_another_replica_claim_the_batch_in_flight() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let mut slow = env.config("slow");
    let proxy = behind_proxy(&env, Server::Postgres, &mut slow).await;
    let mut slow = env.spawn_worker_with(slow).await;
    proxy.stall();
    env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    support::eventually("the slow worker holds the entry", async || {
        env.pending_for("slow").await == 1
    })
    .await;
    let mut other = env.spawn_worker("other").await;
    // The stall lasts three times the claim idle time (1 s)...
    tokio::time::sleep(Duration::from_secs(3)).await;
    // ...and the other worker has looked since: a claim round begun after it, found nothing.
    let rounds = other.progress.borrow().claim_rounds;
    other
        .wait_for(|progress| progress.claim_rounds >= rounds + 2)
        .await;
    proxy.restore();
    let slow_progress = slow.wait_consumed(1).await;
    let other_progress = other.stop().await;
    slow.stop().await;

    assert_eq!(other_progress.claimed, 0, "{other_progress:?}");
    assert_eq!(slow_progress.applied, 1, "{slow_progress:?}");
    assert_eq!(env.history("o1").await.len(), 1);
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

/// A read Redis answered while the connection was dying: the entry is delivered (pending to
/// this consumer) but its reply never arrives. After the reconnect the worker reads its own
/// pending entries again at once, so the entry applies within seconds, not after
/// CLAIM_MIN_IDLE_MS (ten minutes here, far past the harness's deadline).
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_delivered_in_a_lost_reply_applies_at_the_reconnect() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let mut config = env.config("w1");
    let proxy = behind_proxy(&env, Server::Redis, &mut config).await;
    // The read waits in Redis for 10 s (until the next claim round; shutdown waits for it too),
    // so the entry below is delivered into it; nothing is claimed for ten minutes.
    config.block_ms = 10_000;
    config.claim_interval_ms = 10_000;
    config.claim_min_idle_ms = 600_000;
    config.consumer_gone_ms = 120_000;
    let mut worker = env.spawn_worker_with(config).await;
    support::eventually(
        "the worker waits in XREADGROUP through the proxy",
        async || blocked_reads(&env, &proxy.upstream_addrs()).await > 0,
    )
    .await;

    proxy.lose_replies();
    env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    support::eventually("Redis delivered the entry to the worker", async || {
        env.pending_for("w1").await == 1
    })
    .await;
    assert_eq!(worker.progress.borrow().consumed, 0, "the reply was lost");
    proxy.cut();
    worker.wait_for(|progress| progress.retried > 0).await;
    proxy.restore();

    let progress = worker.wait_consumed(1).await;
    worker.stop().await;
    assert_eq!(progress.applied, 1, "{progress:?}");
    assert_eq!(progress.claimed, 0, "read again, not claimed: {progress:?}");
    assert_eq!(env.history("o1").await.len(), 1);
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

/// How many of the clients at `addrs` Redis has blocked in an XREADGROUP right now.
async fn blocked_reads(env: &TestEnv, addrs: &[std::net::SocketAddr]) -> usize {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut env.redis.clone())
        .await
        .expect("CLIENT LIST");
    clients
        .lines()
        .filter(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default()
            };
            field("cmd") == "xreadgroup"
                && field("flags").contains('b')
                && addrs.iter().any(|addr| field("addr") == addr.to_string())
        })
        .count()
}
