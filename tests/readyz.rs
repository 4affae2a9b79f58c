//! `/readyz` of a running worker process says 503, naming the cause, while Redis does not answer
//! or a consumer group it reads is missing, and 200 again once that is over. (PostgreSQL's cut:
//! `tests/http.rs`.)

mod support;

use diesel_async::SimpleAsyncConnection;
use order_worker::FulfillmentStatus::{Picking, Planning};
use order_worker_dev::fault_proxy::FaultProxy;
use support::http::{get, http_port};
use support::process::terminate;
use support::{eventually, TestEnv};

/// Waits until `/readyz` answers `status` with a body containing each of `words`.
async fn readyz(port: u16, status: u16, words: &[&str]) {
    eventually(&format!("/readyz {status} saying {words:?}"), async || {
        let (got, body) = get(port, "/readyz").await;
        got == status && words.iter().all(|word| body.contains(word))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_redis_while_its_connections_are_cut() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&env.redis_addr())
        .await
        .expect("proxy starts");
    let redis_url = proxy.url_for(&env.redis_url).expect("proxied URL");
    let mut worker = env.spawn_process("readyz-redis", &redis_url, &env.database_url, &[]);
    let port = http_port(&env, "readyz-redis").await;
    readyz(port, 200, &["ready"]).await;

    proxy.cut();
    readyz(port, 503, &["not ready", "Redis"]).await;
    assert_eq!(get(port, "/healthz").await.0, 200, "alive all along");
    proxy.restore();
    readyz(port, 200, &["ready"]).await;

    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_the_consumer_group_is_missing() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    // The worker's first batch waits on this lock and its second, of the same order, on the
    // first: it reads nothing more, so nothing recreates the group until the lock goes.
    let mut lock = env.db().await;
    lock.batch_execute("BEGIN; SELECT 1 FROM orders WHERE id = 'o1' FOR UPDATE")
        .await
        .expect("lock o1");
    let settings = [("BATCH_SIZE", "1")];
    let mut worker =
        env.spawn_process("readyz-group", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "readyz-group").await;
    env.publish_lifecycle("o1", "f1", &[Planning, Picking])
        .await;
    eventually("both entries held", async || {
        env.pending_for("readyz-group").await == 2
    })
    .await;
    readyz(port, 200, &["ready"]).await;

    let _: () = redis::cmd("XGROUP")
        .arg(&["DESTROY", &env.stream.stream, &env.stream.group])
        .query_async(&mut env.redis.clone())
        .await
        .expect("XGROUP DESTROY");
    readyz(port, 503, &["consumer group", "does not exist"]).await;
    // Held past CLAIM_INTERVAL_MS (200 ms): when the lock goes, a claim round is due and
    // meets the missing group before the reader does. It must not wait for the reader to
    // create the group again, which runs only after it.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    lock.batch_execute("ROLLBACK").await.expect("unlock o1");
    readyz(port, 200, &["ready"]).await;
    eventually("both applied", async || {
        env.order_fulfillment_status("o1").await.as_deref() == Some("picking")
            && env.pending().await == 0
    })
    .await;
    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    env.cleanup().await;
}
