//! `order-worker pending`: each consumer's count and the oldest entries it holds, from a group
//! read by two consumers that never ack; a missing stream or group is named and exits 1. And
//! every operator command's `--help`: only the settings it uses, no password.

mod support;

use order_worker::ops::inspect::{self, PendingArgs};
use order_worker_dev::fault_proxy::FaultProxy;
use support::ops::{stderr, stdout};
use support::process::order_worker_output;
use support::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn pending_shows_each_consumers_count_and_the_oldest_entries_it_holds() {
    let env = TestEnv::new().await;
    let ids = env.fill(6).await;
    env.create_group(&env.stream.group).await;
    assert_eq!(env.read_as(&env.stream.group, "pod-b", 2).await, ids[..2]);
    assert_eq!(env.read_as(&env.stream.group, "pod-a", 3).await, ids[2..5]);
    let args = |count, min_idle_ms| PendingArgs {
        config: env.ops_config(),
        count,
        min_idle_ms,
        json: false,
    };
    let mut conn = env.redis.clone();

    let seen = inspect::inspect(&mut conn, &args(10, None))
        .await
        .expect("inspect");
    assert_eq!(
        (seen.length, seen.group.pending, seen.group.lag),
        (6, 5, Some(1))
    );
    assert_eq!(seen.group.last_delivered_id, ids[4]);
    let consumers: Vec<(&str, u64)> = seen
        .consumers
        .iter()
        .map(|c| (c.name.as_str(), c.pending))
        .collect();
    assert_eq!(consumers, [("pod-a", 3), ("pod-b", 2)]);
    let oldest: Vec<(&str, &str, u64)> = seen
        .oldest_pending
        .iter()
        .map(|e| (e.id.as_str(), e.consumer.as_str(), e.delivery_count))
        .collect();
    let expected: Vec<(&str, &str, u64)> = ids[..5]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), if i < 2 { "pod-b" } else { "pod-a" }, 1))
        .collect();
    assert_eq!(oldest, expected);
    assert_eq!(seen.dead_letter_length, 0);
    let text = inspect::render(&seen);
    assert!(
        text.contains("pending:         5 (delivered, not acked)"),
        "{text}"
    );
    assert!(text.contains(&format!("{}  pod-b     ", ids[0])), "{text}");

    let first_two = inspect::inspect(&mut conn, &args(2, None))
        .await
        .expect("inspect");
    assert_eq!(first_two.oldest_pending.len(), 2);
    let idle_filter = inspect::inspect(&mut conn, &args(10, Some(3_600_000))).await;
    assert!(
        idle_filter.expect("inspect").oldest_pending.is_empty(),
        "none idle for an hour"
    );

    let json = env
        .order_worker(&["pending", "--json", "--count", "3"])
        .await;
    assert!(json.status.success(), "{}", stderr(&json));
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let parsed = &parsed[0];
    assert_eq!(parsed["group"]["pending"], 5, "{parsed}");
    assert_eq!(
        parsed["oldest_pending"][0]["id"],
        ids[0].as_str(),
        "{parsed}"
    );
    assert_eq!(parsed["oldest_pending"].as_array().map(Vec::len), Some(3));
    assert_eq!(parsed["consumers"][0]["name"], "pod-a", "{parsed}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_names_a_missing_stream_or_group_and_exits_1() {
    let env = TestEnv::new().await;
    let missing = env.order_worker(&["pending"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains(&format!("stream {} does not exist", env.stream.stream)),
        "{}",
        stderr(&missing)
    );
    env.fill(1).await;
    env.create_group("analytics").await;
    let no_group = env.order_worker(&["pending"]).await;
    assert_eq!(no_group.status.code(), Some(1));
    assert!(
        stderr(&no_group).contains("consumer group order-worker does not exist")
            && stderr(&no_group).contains("its groups: analytics"),
        "{}",
        stderr(&no_group)
    );
    env.cleanup().await;
}

#[test]
fn operator_commands_offer_only_the_settings_they_use_and_never_show_a_password() {
    for command in [
        &["pending"][..],
        &["trim"],
        &["dead-letter", "list"],
        &["dead-letter", "show"],
        &["dead-letter", "purge"],
    ] {
        let args: Vec<&str> = command.iter().copied().chain(["--help"]).collect();
        let output = order_worker_output(&args, &[("REDIS_URL", "redis://:hunter2@redis:6379")]);
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?}: {help}");
        for wanted in ["--redis-url", "--stream", "--group", "--dead-letter-stream"] {
            assert!(help.contains(wanted), "{command:?} lacks {wanted}: {help}");
        }
        for unused in [
            "--consumer",
            "--group-start-id",
            "--database-url",
            "hunter2",
        ] {
            assert!(!help.contains(unused), "{command:?} shows {unused}: {help}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_shows_every_subscribed_stream_and_dead_letter_takes_the_topic() {
    let env = TestEnv::new().await;
    let confirmed = env.payment_stream("payment.confirmed");
    let failed = env.payment_stream("payment.failed");
    let mut redis = env.redis.clone();
    for stream in [&env.stream.stream, &confirmed, &failed] {
        let _: () = redis::cmd("XGROUP")
            .arg(&["CREATE", stream, &env.stream.group, "0", "MKSTREAM"])
            .query_async(&mut redis)
            .await
            .expect("XGROUP CREATE");
    }
    let _: String = redis::cmd("XADD")
        .arg(&[
            &format!("{confirmed}.deadletter"),
            "*",
            "data",
            "{}",
            "error",
            "bad",
        ])
        .query_async(&mut redis)
        .await
        .expect("XADD");
    let all = [(
        "TOPICS",
        "fulfillment.status_changed,payment.confirmed,payment.failed",
    )];

    let output = env.order_worker_with(&["pending", "--json"], &all).await;
    assert!(output.status.success(), "{}", stderr(&output));
    // One document, as a strict parser wants it: an array of the streams' reports.
    let reports: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("one JSON array");
    let streams: Vec<&str> = (reports.iter())
        .map(|report| report["stream"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        streams,
        [
            env.stream.stream.as_str(),
            confirmed.as_str(),
            failed.as_str()
        ]
    );
    let one = env
        .order_worker_with(&["pending", "--json", "--topic", "payment.failed"], &all)
        .await;
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).expect("one document");
    assert_eq!(one[0]["stream"], failed.as_str());

    let listed = |topic: Option<&'static str>| {
        let mut args = vec!["dead-letter", "list", "--json"];
        args.extend(topic.map(|t| ["--topic", t]).into_iter().flatten());
        let env = &env;
        async move {
            let output = env.order_worker_with(&args, &all).await;
            assert!(output.status.success(), "{}", stderr(&output));
            let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
            list.as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(listed(Some("payment.confirmed")).await, 1);
    assert_eq!(listed(None).await, 0, "the fulfillment topic's by default");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inspecting_commands_work_while_postgresql_is_down() {
    let env = TestEnv::new().await;
    env.fill(3).await;
    env.create_group(&env.stream.group).await;
    env.read_as(&env.stream.group, "pod-a", 2).await;
    let dead_letter = [("data".to_owned(), "{not json".to_owned())];
    order_worker_dev::publisher::publish(
        &mut env.redis.clone(),
        &env.stream.dead_letter_stream(),
        &dead_letter,
    )
    .await
    .expect("XADD");
    let postgres = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    postgres.cut();
    let down = postgres.url_for(&env.database_url).expect("proxied URL");
    for args in [
        &["pending"][..],
        &["subscriptions"],
        &["dead-letter", "list"],
        &["trim", "--dry-run"],
    ] {
        let output = env
            .order_worker_with(args, &[("DATABASE_URL", &down)])
            .await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    let pending = env
        .order_worker_with(&["pending"], &[("DATABASE_URL", &down)])
        .await;
    assert!(stdout(&pending).contains("pod-a"), "{}", stdout(&pending));
    env.cleanup().await;
}
