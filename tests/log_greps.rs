//! The operators' log greps from the Dapr days keep finding failed updates: `grep -i
//! "error.*fulfillment"`, `grep -i "error.*payment"` and `grep -i "failed to update order
//! status"`, run for real over a real worker's stderr, in both log formats. Each failure is
//! provoked: a poison entry (dead-lettered) and a cut to PostgreSQL while events wait to be
//! applied (retried), for the fulfillment topic and the payment ones; the other topics' grep
//! must not find it. Nothing is lost on the way.

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

    // (a) A poison entry in each topic's stream, one at a time: each failure is looked for in
    // what was logged since it was provoked (entry ids of two streams may be equal).
    let mut poisoned = Vec::new();
    for topic in [FULFILLMENT, CONFIRMED, FAILED] {
        let key = stream_key(&env, topic);
        let mut entry_id = String::new();
        let logged = logged_until_grepped(&env, grep_for(topic), async || {
            let fields = [("data".to_owned(), "{not json".to_owned())];
            entry_id = publisher::publish(&mut env.redis.clone(), &key, &fields)
                .await
                .expect("XADD");
            entry_id.clone()
        })
        .await;
        assert_eq!(grep_i(grep_against(topic), &logged), "", "{logged}");
        eventually(
            &format!("the {topic} poison is dead-lettered"),
            async || dead_letters_of(&env, &key).await.len() == 1,
        )
        .await;
        poisoned.push((topic, key, entry_id));
    }

    // (b) PostgreSQL cut while an event waits to be applied: retried, then applied.
    for (topic, order, applied) in [
        (FULFILLMENT, "o-f", "processing"),
        (CONFIRMED, "o-p", "confirmed"),
    ] {
        let logged = logged_until_grepped(&env, grep_for(topic), async || {
            proxy.cut();
            if topic == FULFILLMENT {
                let planning = FulfillmentStatus::Planning;
                env.publish(order, "f-1", planning, Format::CloudEvent)
                    .await;
            } else {
                let cloud = Format::CloudEvent;
                publish_payment(&env, topic, order, "p-1", Some("10.00"), None, cloud).await;
            }
            String::new()
        })
        .await;
        assert_eq!(grep_i(grep_against(topic), &logged), "", "{logged}");
        assert!(!nothing_pending(&env).await, "the event waits: {logged}");
        proxy.restore();
        eventually(&format!("the {topic} event is applied"), async || {
            env.order_status(order).await == applied && nothing_pending(&env).await
        })
        .await;
    }

    let status = terminate(&mut worker).await;
    assert!(status.success(), "{status:?}");
    // Nothing lost: both events applied (above), each poison dead-lettered exactly once.
    for (topic, key, entry_id) in &poisoned {
        let dead = dead_letters_of(&env, key).await;
        assert_eq!(dead.len(), 1, "{topic}: {dead:?}");
        let source_id = dead[0].get("source_id");
        assert_eq!(source_id, Some(entry_id), "{topic}: {dead:?}");
    }
    env.cleanup().await;
}

/// The operators' grep for `topic`'s failures.
fn grep_for(topic: &str) -> &'static str {
    if topic == FULFILLMENT {
        FULFILLMENT_GREP
    } else {
        PAYMENT_GREP
    }
}

/// The other topics' grep, which must not find `topic`'s failures.
fn grep_against(topic: &str) -> &'static str {
    if topic == FULFILLMENT {
        PAYMENT_GREP
    } else {
        FULFILLMENT_GREP
    }
}

/// Runs `provoke`, then waits until what the worker logged since holds a line that `grep` and
/// "failed to update order status" both find and that contains the marker `provoke` returns.
/// Returns what was logged since, up to then.
async fn logged_until_grepped(
    env: &TestEnv,
    grep: &str,
    provoke: impl AsyncFnOnce() -> String,
) -> String {
    let start = env.process_log(WORKER).len();
    let marker = provoke().await;
    let mut logged = String::new();
    eventually(
        &format!("both greps find the failure ({grep})"),
        async || {
            logged = env.process_log(WORKER).split_off(start);
            matched_by_both(grep, &logged).any(|line| line.contains(&marker))
        },
    )
    .await;
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
