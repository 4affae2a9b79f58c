//! The backlog gauges, transient errors and batch sizes of a live worker's `/metrics`, read back
//! through a Prometheus text parser after provoking each: poison for the dead-letter length, a
//! PostgreSQL cut for the lag, pending count and `kind="postgres"` errors, small batches for the
//! batch-size histogram.

mod support;

use order_worker_dev::fault_proxy::FaultProxy;
use support::http::{http_port, Metrics};
use support::process::terminate;
use support::{eventually, TestEnv};

const TOPIC: &[(&str, &str)] = &[("topic", "fulfillment.status_changed")];

#[tokio::test(flavor = "multi_thread")]
async fn backlog_gauges_errors_and_batch_sizes_read_back_as_provoked() {
    let env = TestEnv::new().await;
    let poison = vec![("data".to_owned(), "{not json".to_owned())];
    for _ in 0..2 {
        env.xadd(&poison).await;
    }
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let database_url = proxy.url_for(&env.database_url).expect("proxied URL");
    let settings = [("BATCH_SIZE", "5")];
    let mut worker = env.spawn_process("metrics", &env.redis_url, &database_url, &settings);
    let port = http_port(&env, "metrics").await;
    eventually(
        "the poison dead-lettered and the gauges refreshed",
        async || {
            let metrics = Metrics::scrape(port).await;
            metrics.value("fulfillment_dead_letter_length", TOPIC) == Some(2.0)
                && metrics.value("fulfillment_stream_pending", TOPIC) == Some(0.0)
                && metrics.value("fulfillment_stream_lag", TOPIC) == Some(0.0)
        },
    )
    .await;
    let decode = [("kind", "decode")];
    let metrics = Metrics::scrape(port).await;
    assert_eq!(
        metrics.value("fulfillment_consumer_errors_total", &decode),
        Some(2.0)
    );

    // PostgreSQL gone: the worker holds what it read and reads no more.
    proxy.cut();
    let (orders, published) = env.seed_lifecycles(3).await;
    eventually("a lag and a pending count as Redis has them", async || {
        let metrics = Metrics::scrape(port).await;
        let group = order_worker::group_info(
            &mut env.redis.clone(),
            &env.stream.stream,
            &env.stream.group,
        )
        .await
        .ok()
        .flatten();
        let Some(group) = group else { return false };
        let (lag, pending) = (group.lag.unwrap_or(0) as f64, group.pending as f64);
        pending > 0.0
            && lag > 0.0
            && lag + pending == published as f64
            && metrics.value("fulfillment_stream_lag", TOPIC) == Some(lag)
            && metrics.value("fulfillment_stream_pending", TOPIC) == Some(pending)
            && metrics
                .value("fulfillment_consumer_errors_total", &[("kind", "postgres")])
                .is_some_and(|errors| errors >= 1.0)
    })
    .await;

    proxy.restore();
    eventually("drained, as the gauges say", async || {
        let metrics = Metrics::scrape(port).await;
        metrics.value("fulfillment_stream_lag", TOPIC) == Some(0.0)
            && metrics.value("fulfillment_stream_pending", TOPIC) == Some(0.0)
    })
    .await;
    env.assert_all_delivered(&orders).await;
    let metrics = Metrics::scrape(port).await;
    let entries = (published + 2) as f64;
    let batches = metrics
        .value("fulfillment_batch_size_count", &[])
        .expect("batch count");
    assert_eq!(
        metrics.value("fulfillment_batch_size_sum", &[]),
        Some(entries),
        "every entry in one batch"
    );
    assert!(batches >= (entries / 5.0).ceil(), "{batches} batches");
    let within_five = metrics
        .buckets("fulfillment_batch_size")
        .into_iter()
        .find(|(bound, _)| *bound == 5.0)
        .map(|(_, count)| count);
    assert_eq!(within_five, Some(batches), "no batch above BATCH_SIZE");

    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    env.cleanup().await;
}
