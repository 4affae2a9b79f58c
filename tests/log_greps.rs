//! The operators' log greps from the Dapr days keep finding failed updates: `grep -i
//! "error.*fulfillment"`, `grep -i "error.*payment"` and `grep -i "failed to update order
//! status"`, run for real over a real worker's stderr, in both log formats. Each failure is
//! provoked: a poison entry (dead-lettered) and a cut to PostgreSQL while events wait to be
//! applied (retried). Nothing is lost on the way.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use order_worker::{FulfillmentStatus, StreamConfig};
use order_worker_dev::fault_proxy::FaultProxy;
use order_worker_dev::publisher::{self, Format};
use support::payments::*;
use support::process::terminate;
use support::{eventually, unique, TestEnv};

const FULFILLMENT_GREP: &str = "error.*fulfillment";
const PAYMENT_GREP: &str = "error.*payment";
const FAILED_UPDATE_GREP: &str = "failed to update order status";
const WORKER: &str = "grepped";

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_of_failed_updates_match_the_operators_greps() {
    failed_updates_match_the_greps("text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_of_failed_updates_match_the_operators_greps() {
    failed_updates_match_the_greps("json").await;
}

async fn failed_updates_match_the_greps(log_format: &str) {
    let mut env = TestEnv::new().await;
    // Stream keys that name no topic ("test.fulfillment…" would match the greps by itself):
    // only the worker's own words can.
    env.stream = StreamConfig::for_stream(unique("test.greps"));
    env.seed_orders(&["o-f"], "confirmed").await;
    env.seed_orders(&["o-p"], "pending").await;
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let database_url = proxy.url_for(&env.database_url).expect("proxied URL");
    let settings = [("TOPICS", ALL_TOPICS), ("LOG_FORMAT", log_format)];
    let mut worker = env.spawn_process(WORKER, &env.redis_url, &database_url, &settings);
    eventually("the worker joined every group", async || {
        nothing_pending(&env).await
    })
    .await;

    // (a) A poison entry in each topic's stream: dead-lettered, one line each.
    let mut poisoned = Vec::new();
    for topic in [FULFILLMENT, CONFIRMED, FAILED] {
        let fields = [("data".to_owned(), "{not json".to_owned())];
        let key = stream_key(&env, topic);
        let entry_id = publisher::publish(&mut env.redis.clone(), &key, &fields)
            .await
            .expect("XADD");
        poisoned.push((topic, key, entry_id));
    }
    for (topic, key, entry_id) in &poisoned {
        eventually(
            &format!("the {topic} poison is dead-lettered"),
            async || dead_letters_of(&env, key).await.len() == 1,
        )
        .await;
        let (grep, other) = if *topic == FULFILLMENT {
            (FULFILLMENT_GREP, PAYMENT_GREP)
        } else {
            (PAYMENT_GREP, FULFILLMENT_GREP)
        };
        eventually(&format!("both greps find {topic} {entry_id}"), async || {
            let log = env.process_log(WORKER);
            matched_by_both(grep, &log).any(|line| line.contains(entry_id.as_str()))
        })
        .await;
        let log = env.process_log(WORKER);
        assert!(
            !grep_i(other, &log).contains(entry_id.as_str()),
            "{other} finds the {topic} dead letter:\n{log}"
        );
    }

    // (b) PostgreSQL cut while events wait to be applied: retried, one line per batch.
    let fulfillment = outage(&env, &proxy, FULFILLMENT_GREP, async || {
        let planning = FulfillmentStatus::Planning;
        env.publish("o-f", "f-1", planning, Format::CloudEvent)
            .await;
    })
    .await;
    eventually("the fulfillment event is applied", async || {
        env.order_status("o-f").await == "processing" && nothing_pending(&env).await
    })
    .await;
    assert_eq!(grep_i(PAYMENT_GREP, &fulfillment), "", "{fulfillment}");

    let payment = outage(&env, &proxy, PAYMENT_GREP, async || {
        let confirmed = publish_payment(
            &env,
            CONFIRMED,
            "o-p",
            "p-1",
            Some("10.00"),
            None,
            Format::CloudEvent,
        );
        confirmed.await;
    })
    .await;
    eventually("the payment event is applied", async || {
        env.order_status("o-p").await == "confirmed" && nothing_pending(&env).await
    })
    .await;
    assert_eq!(grep_i(FULFILLMENT_GREP, &payment), "", "{payment}");

    let status = terminate(&mut worker).await;
    assert!(status.success(), "{status:?}");
    // Nothing lost: both events applied (above), each poison dead-lettered exactly once.
    for (topic, key, entry_id) in &poisoned {
        let dead = dead_letters_of(&env, key).await;
        assert_eq!(dead.len(), 1, "{topic}: {dead:?}");
        assert_eq!(
            dead[0].get("source_id"),
            Some(entry_id),
            "{topic}: {dead:?}"
        );
    }
    env.cleanup().await;
}

/// Cuts PostgreSQL, publishes, and waits until the log since the cut holds a line that both
/// `grep` and "failed to update order status" find, the event still not applied; then restores.
/// Returns what was logged from the cut until that line.
async fn outage(
    env: &TestEnv,
    proxy: &FaultProxy,
    grep: &str,
    publish: impl AsyncFnOnce(),
) -> String {
    let start = env.process_log(WORKER).len();
    proxy.cut();
    publish().await;
    let mut logged = String::new();
    eventually(
        &format!("both greps find the failed apply ({grep})"),
        async || {
            logged = env.process_log(WORKER).split_off(start);
            matched_by_both(grep, &logged).next().is_some()
        },
    )
    .await;
    assert!(!nothing_pending(env).await, "the event waits: {logged}");
    proxy.restore();
    logged
}

/// The lines of `log` that `grep -i pattern` and `grep -i "failed to update order status"` both
/// print.
fn matched_by_both(pattern: &str, log: &str) -> impl Iterator<Item = String> {
    let failed = grep_i(FAILED_UPDATE_GREP, log);
    let matched = grep_i(pattern, log);
    let failed: std::collections::HashSet<String> = failed.lines().map(str::to_owned).collect();
    let lines: Vec<String> = matched.lines().map(str::to_owned).collect();
    lines.into_iter().filter(move |line| failed.contains(line))
}

/// What the real `grep -i pattern` prints for `text` on its stdin.
fn grep_i(pattern: &str, text: &str) -> String {
    let mut grep = Command::new("grep")
        .args(["-i", pattern])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("grep runs");
    let mut stdin = grep.stdin.take().expect("grep's stdin");
    let text = text.to_owned();
    // Written from another thread: grep's output filling its pipe must not block our input.
    let feeding = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = grep.wait_with_output().expect("grep finishes");
    feeding.join().expect("feeding grep").expect("grep reads");
    // 0: lines matched, 1: none; anything else is grep failing.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "grep: {output:?}"
    );
    String::from_utf8(output.stdout).expect("grep prints UTF-8")
}
