//! The HTTP endpoint of a real worker process: `/healthz`, `/readyz` following PostgreSQL
//! through a cut, and `/metrics` in Prometheus text whose counters move by exactly the events
//! processed.

mod support;

use order_worker::FulfillmentStatus::Planning;
use order_worker_dev::fault_proxy::FaultProxy;
use order_worker_dev::publisher::Format;
use support::http::{get, http_port, Metrics};
use support::payments::{publish_payment, ALL_TOPICS, CONFIRMED, FAILED};
use support::process::terminate;
use support::{eventually, TestEnv};

const FULFILLMENT_TOPIC: (&str, &str) = ("topic", "fulfillment.status_changed");

/// Entries whose verdict is counted: consumed counts at read, outcomes and dead letters only after
/// the settle, so a test waits on this before reading the outcomes.
async fn settled(port: u16) -> f64 {
    let metrics = Metrics::scrape(port).await;
    metrics.total("fulfillment_event_outcomes_total")
        + metrics.total("fulfillment_entries_dead_lettered_total")
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_postgres_through_a_cut_and_healthz_stays_up() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let mut worker = env.spawn_process(
        "http-1",
        &env.redis_url,
        &proxy.url_for(&env.database_url).expect("proxied URL"),
        &[],
    );
    let port = http_port(&env, "http-1").await;
    assert_eq!(get(port, "/healthz").await.0, 200);
    eventually("ready", async || get(port, "/readyz").await.0 == 200).await;

    proxy.cut();
    eventually("not ready while PostgreSQL is cut", async || {
        let (status, body) = get(port, "/readyz").await;
        status == 503 && body.contains("PostgreSQL")
    })
    .await;
    assert_eq!(get(port, "/healthz").await.0, 200, "alive all along");
    proxy.restore();
    eventually("ready again", async || get(port, "/readyz").await.0 == 200).await;

    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_prometheus_text_and_count_exactly_the_events_processed() {
    let env = TestEnv::new().await;
    let (orders, total) = env.seed_lifecycles(30).await;
    let poison = vec![("data".to_owned(), "{not json".to_owned())];
    env.xadd(&poison).await;
    let mut worker = env.spawn_process("http-2", &env.redis_url, &env.database_url, &[]);
    let port = http_port(&env, "http-2").await;
    eventually("everything processed", async || {
        settled(port).await == (total + 1) as f64
    })
    .await;
    let (status, metrics) = get(port, "/metrics").await;
    assert_eq!(status, 200);
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "value of {line}");
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name of {line}"
        );
    }
    let parsed = Metrics::scrape(port).await;
    let applied = [FULFILLMENT_TOPIC, ("outcome", "applied")];
    let expected = [
        (
            "fulfillment_status_events_consumed_total",
            &[][..],
            total + 1,
        ),
        ("fulfillment_event_outcomes_total", &applied, total),
        (
            "order_status_updates_total",
            &[("reason", "FulfillmentShipped")],
            orders.len() as u64,
        ),
        (
            "fulfillment_entries_dead_lettered_total",
            &[FULFILLMENT_TOPIC],
            1,
        ),
        // One per fulfillment event.
        (
            "fulfillment_event_processing_duration_seconds_count",
            &[],
            total,
        ),
    ];
    for (name, labels, value) in expected {
        assert_eq!(
            parsed.value(name, labels),
            Some(value as f64),
            "{name}{labels:?} in {metrics}"
        );
    }

    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_claimed_entries_and_each_refusal_by_its_kind() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    env.xadd(&[("data".to_owned(), "{not json".to_owned())])
        .await;
    env.publish_lifecycle("o2", "f2", &[Planning]).await;
    // A replica read all three and died; the last had been delivered ten times already.
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", &env.stream.stream, &env.stream.group, "0"])
        .query_async(&mut env.redis.clone())
        .await
        .expect("XGROUP CREATE");
    let held = env.read_as(&env.stream.group, "gone", 10).await;
    assert_eq!(held.len(), 3);
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&[&env.stream.stream, &env.stream.group, "gone", "0", &held[2]])
        .arg(&["RETRYCOUNT", "10", "JUSTID"])
        .query_async(&mut env.redis.clone())
        .await
        .expect("XCLAIM");

    let settings = [("MAX_DELIVERIES", "3")];
    let mut worker = env.spawn_process("http-3", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "http-3").await;
    eventually("the three claimed entries settled", async || {
        settled(port).await == 3.0
    })
    .await;
    let metrics = Metrics::scrape(port).await;
    let applied = [FULFILLMENT_TOPIC, ("outcome", "applied")];
    let expected = [
        ("fulfillment_status_events_consumed_total", &[][..], 3.0),
        (
            "fulfillment_entries_claimed_total",
            &[FULFILLMENT_TOPIC],
            3.0,
        ),
        (
            "fulfillment_entries_dead_lettered_total",
            &[FULFILLMENT_TOPIC],
            2.0,
        ),
        (
            "fulfillment_consumer_errors_total",
            &[("kind", "decode")],
            1.0,
        ),
        (
            "fulfillment_consumer_errors_total",
            &[("kind", "max_deliveries")],
            1.0,
        ),
        ("fulfillment_event_outcomes_total", &applied, 1.0),
    ];
    for (name, labels, value) in expected {
        assert_eq!(metrics.value(name, labels), Some(value), "{name}{labels:?}");
    }
    assert_eq!(env.order_status("o1").await, "processing");
    assert_eq!(env.order_status("o2").await, "confirmed");

    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_listed_by_the_endpoint_and_the_command_alike() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    let settings = [("TOPICS", ALL_TOPICS)];
    let mut worker = env.spawn_process("http-4", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "http-4").await;
    eventually("ready on all three streams", async || {
        get(port, "/readyz").await.0 == 200
    })
    .await;

    let (status, body) = get(port, "/subscriptions").await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let streams = [
        ("fulfillment.status_changed", env.stream.stream.clone()),
        ("payment.confirmed", env.payment_stream("payment.confirmed")),
        ("payment.failed", env.payment_stream("payment.failed")),
    ];
    let rows = listed.as_array().expect("a list");
    assert_eq!(rows.len(), 3, "{body}");
    for (row, (topic, stream)) in rows.iter().zip(&streams) {
        assert_eq!(row["topic"], *topic, "{body}");
        assert_eq!(row["stream"], *stream, "{body}");
        assert_eq!(row["group"], "order-worker", "{body}");
        assert_eq!(
            row["dead_letter_stream"],
            format!("{stream}.deadletter"),
            "{body}"
        );
        assert_eq!(row["group_exists"], true, "{body}");
    }

    let output = env
        .order_worker_with(&["subscriptions", "--json"], &settings)
        .await;
    assert!(output.status.success(), "{output:?}");
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let topics = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| r["stream"].to_string())
            .collect()
    };
    assert_eq!(topics(&printed), topics(&listed));
    let table = env.order_worker_with(&["subscriptions"], &settings).await;
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    for (topic, stream) in &streams {
        assert!(
            table.contains(topic) && table.contains(stream.as_str()),
            "{table}"
        );
    }

    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_events_are_counted_by_topic_and_conflicts_apart() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o3"], "pending").await;
    env.seed_orders(&["o2"], "cancelled").await;
    for (topic, order) in [(CONFIRMED, "o1"), (CONFIRMED, "o2"), (FAILED, "o3")] {
        publish_payment(&env, topic, order, order, Some("9.90"), None, Format::Raw).await;
    }
    let settings = [("TOPICS", ALL_TOPICS)];
    let mut worker = env.spawn_process("http-8", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "http-8").await;
    eventually("the three payments settled", async || {
        settled(port).await == 3.0
    })
    .await;
    let metrics = Metrics::scrape(port).await;
    let confirmed = ("topic", "payment.confirmed");
    let conflict = [confirmed, ("outcome", "conflict")];
    let expected = [
        ("payment_events_consumed_total", &[confirmed][..], Some(2.0)),
        (
            "payment_events_consumed_total",
            &[("topic", "payment.failed")],
            Some(1.0),
        ),
        (
            "order_status_updates_total",
            &[("reason", "PaymentConfirmed")],
            Some(1.0),
        ),
        (
            "order_status_updates_total",
            &[("reason", "PaymentFailed")],
            Some(1.0),
        ),
        ("order_event_conflicts_total", &[confirmed], Some(1.0)),
        ("fulfillment_event_outcomes_total", &conflict, Some(1.0)),
        // The seed's name counts the fulfillment topic alone.
        ("fulfillment_status_events_consumed_total", &[], None),
    ];
    for (name, labels, value) in expected {
        assert_eq!(metrics.value(name, labels), value, "{name}{labels:?}");
    }

    assert_eq!(terminate(&mut worker).await.code(), Some(0), "exit status");
    env.cleanup().await;
}
