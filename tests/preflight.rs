//! `order-worker preflight` against real Redis and PostgreSQL: a stream Dapr reads under another
//! group than CONSUMER_GROUP is a red line with the setting to use (exit 1), the right group is
//! ready (exit 0), and the streams and groups are left exactly as they were; the rehearsal's
//! counts are what `run` then does on the same entries; `run` warns when it creates a group on a
//! stream Dapr reads in another; a stream missing under this environment's name is found under
//! the order service's other one.

mod support;

use order_worker::FulfillmentStatus::{Planning, Shipped};
use order_worker_dev::publisher::{self, Format};
use serde_json::Value;
use support::ops::{stderr, stdout};
use support::process::terminate;
use support::{eventually, TestEnv};

/// Dapr's group on the test streams: its consumerID, also its one consumer's name.
const DAPR: &str = "dapr-order-worker";

/// What a reader of the stream sees that preflight must not change: the stream, its groups,
/// their consumers and pending lists with each entry's delivery time and count.
async fn snapshot(env: &TestEnv) -> (redis::Value, redis::Value) {
    let mut redis = env.redis.clone();
    let full: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&env.stream.stream)
        .arg("FULL")
        .query_async(&mut redis)
        .await
        .expect("XINFO STREAM FULL");
    // The summary form: the extended one's idle times move with the clock.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&env.stream.stream)
        .arg(DAPR)
        .query_async(&mut redis)
        .await
        .expect("XPENDING");
    (full, pending)
}

async fn preflight(env: &TestEnv, group: &str) -> (std::process::Output, Value) {
    let output = env
        .order_worker_with(&["preflight", "--json"], &[("CONSUMER_GROUP", group)])
        .await;
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}\n{}", stdout(&output), stderr(&output)));
    (output, report)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_dapr_reads_in_another_group_is_a_red_line_with_the_setting_and_nothing_changes() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2", "o3"], "confirmed").await;
    for order in ["o1", "o2", "o3"] {
        env.publish(order, &format!("f-{order}"), Planning, Format::CloudEvent)
            .await;
    }
    env.create_group(DAPR).await;
    let held = env.read_as(DAPR, DAPR, 2).await;
    let before = snapshot(&env).await;

    let (output, report) = preflight(&env, "order-worker").await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stream = &report["streams"][0];
    assert_eq!(stream["groups"][0]["name"], DAPR);
    assert_eq!(stream["groups"][0]["dapr_signature"], true);
    assert_eq!(stream["joining"]["kind"], "wrong");
    assert_eq!(
        stream["joining"]["fix"],
        format!("CONSUMER_GROUP={DAPR}"),
        "{report}"
    );
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report}");
    let problem = problems[0].as_str().expect("a line");
    assert!(
        problem.contains(&format!(
            "`run` would create group `order-worker` at GROUP_START_ID=0 and replay 3 entries \
             of the stream, and Dapr's {} pending entries would never be taken over",
            held.len()
        )),
        "{problem}"
    );
    assert!(
        problem.ends_with(&format!("set CONSUMER_GROUP={DAPR}")),
        "{problem}"
    );
    // The rehearsal took Dapr's pending entries along with the newest ones.
    assert_eq!(stream["rehearsal"]["dapr_pending"], 2, "{report}");
    assert_eq!(stream["rehearsal"]["outcomes"]["applied"], 3, "{report}");

    // The text says the same, on one line each.
    let text = env
        .order_worker_with(&["preflight"], &[("CONSUMER_GROUP", "order-worker")])
        .await;
    assert!(
        stdout(&text).contains(&format!("✗ {problem}\n")),
        "{}",
        stdout(&text)
    );

    let (output, report) = preflight(&env, DAPR).await;
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert_eq!(report["streams"][0]["joining"]["kind"], "joins_dapr");
    assert_eq!(report["problems"], serde_json::json!([]));

    assert_eq!(snapshot(&env).await, before, "preflight changed the stream");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rehearsal_counts_what_run_then_does_with_the_same_entries() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning, Shipped])
        .await;
    env.publish("o1", "f1-again", Shipped, Format::CloudEvent)
        .await;
    let twice = publisher::entry_fields(
        &env.stream.stream,
        &publisher::event("o2", "f2", None, Planning, "2025-12-22T10:54:00Z"),
        "the-same-cloud-event",
        Format::CloudEvent,
    );
    env.xadd(&twice).await;
    env.xadd(&twice).await;
    env.publish("ghost", "f0", Planning, Format::CloudEvent)
        .await;
    env.xadd(&[("data".to_owned(), "{not json".to_owned())])
        .await;
    let entries = 7;

    let (output, report) = preflight(&env, &env.stream.group).await;
    assert_eq!(output.status.code(), Some(1), "dead letters: {report}");
    let rehearsal = &report["streams"][0]["rehearsal"];
    assert_eq!(rehearsal["entries"], entries, "{report}");
    assert_eq!(rehearsal["unknown_orders"], serde_json::json!(["ghost"]));
    let count = |name: &str| rehearsal["outcomes"][name].as_u64().expect(name);
    let reasons: Vec<&str> = (rehearsal["dead_letters"]
        .as_array()
        .expect("reasons")
        .iter())
    .map(|reason| reason["outcome"].as_str().expect("outcome"))
    .collect();
    assert_eq!(reasons, ["unknown_order", "undecodable"], "{report}");

    let mut config = env.config("after-preflight");
    config.max_deliveries = 2;
    config.claim_min_idle_ms = 100;
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker.wait_for(|p| p.dead_lettered == 2).await;
    worker.stop().await;
    assert_eq!(
        (
            progress.applied,
            progress.duplicate,
            progress.stale,
            progress.ignored,
            progress.conflict,
        ),
        (
            count("applied"),
            count("duplicate"),
            count("stale"),
            count("ignored"),
            count("conflict"),
        ),
        "run did what the rehearsal said: {progress:?} vs {report}"
    );
    assert_eq!(
        progress.dead_lettered,
        count("undecodable") + count("unknown_order") + count("rejected")
    );
    assert_eq!(
        count("applied") + count("duplicate") + count("ignored") + count("stale"),
        5
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_warns_once_when_it_creates_a_group_on_a_stream_dapr_reads_in_another() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    env.create_group(DAPR).await;
    env.read_as(DAPR, DAPR, 1).await;

    let mut child = env.spawn_process("warned", &env.redis_url, &env.database_url, &[]);
    let warning = format!(
        "which Dapr reads in group {DAPR}: if this worker takes over that subscription, set \
         CONSUMER_GROUP={DAPR}"
    );
    eventually("the warning is logged", async || {
        env.process_log("warned").contains(&warning)
    })
    .await;
    eventually("the worker applied the entry", async || {
        env.order_status("o1").await == "processing"
    })
    .await;
    let status = terminate(&mut child).await;
    assert!(status.success(), "{status:?}");
    let log = env.process_log("warned");
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    assert!(log.contains(" WARN "), "{log}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_published_under_the_order_service_s_other_name_is_found() {
    let env = TestEnv::new().await;
    // This environment's payment service writes `payments.payment.failed` (the test's own
    // prefix kept), while PAYMENT_FAILED_STREAM says `payment.failed`.
    let configured = env.payment_stream("payment.failed");
    let other = env.payment_stream("payments.payment.failed");
    let _: String = redis::cmd("XADD")
        .arg(&other)
        .arg("*")
        .arg("data")
        .arg("{}")
        .query_async(&mut env.redis.clone())
        .await
        .expect("XADD");

    let output = env
        .order_worker_with(&["preflight", "--json"], &[("TOPICS", "payment.failed")])
        .await;
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(
        report["problems"][0],
        format!(
            "stream {configured}: does not exist, but {other} does: this environment names \
             the topic {other}; set PAYMENT_FAILED_STREAM={other}"
        )
    );
    env.cleanup().await;
}
