//! `order-worker replay --dead-letter`: dead letters go back to the main stream with their
//! original fields only, are deleted from the dead-letter stream, and a worker then applies them.

mod support;

use order_worker::ops::replay;
use order_worker::FulfillmentStatus::*;
use order_worker_dev::publisher::Format;
use support::ops::{stderr, stdout};
use support::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_requeued_after_its_order_is_created_is_applied() {
    let env = TestEnv::new().await;
    let (entry, event_id) = env
        .publish("o-late", "f1", Planning, Format::CloudEvent)
        .await;
    let original = stream_fields(&env, &entry).await;
    let mut config = env.config("w1");
    config.max_deliveries = 1;
    config.claim_min_idle_ms = 50;
    let mut worker = env.spawn_worker_with(config).await;
    worker.wait_for(|p| p.dead_lettered == 1).await;
    worker.stop().await;
    let letters = env.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["error"], "order \"o-late\" does not exist");

    // The fix: the order appears. Then the dead letter goes back, through the binary.
    env.seed_orders(&["o-late"], "confirmed").await;
    let output = env
        .order_worker(&["replay", "--dead-letter", "--all"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("moved 1 dead letters"), "{text}");
    assert!(text.contains(&entry), "the old id is shown: {text}");
    assert!(env.dead_letters().await.is_empty(), "moved, not copied");
    let ids = env.stream_ids().await;
    assert_eq!(ids.len(), 2);
    assert_eq!(
        stream_fields(&env, &ids[1]).await,
        original,
        "original fields only"
    );

    let mut worker = env.spawn_worker("w2").await;
    worker.wait_for(|p| p.applied == 1).await;
    worker.stop().await;
    assert_eq!(env.order_status("o-late").await, "processing");
    assert_eq!(
        env.inbox_outcome(&event_id).await.as_deref(),
        Some("applied")
    );
    assert!(env.dead_letters().await.is_empty());
    assert_eq!(env.pending().await, 0);

    let again = env
        .order_worker(&["replay", "--dead-letter", "--id", "1-0"])
        .await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no dead letter 1-0"),
        "{}",
        stderr(&again)
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requeue_by_id_moves_only_those_and_leaves_the_rest() {
    let env = TestEnv::new().await;
    let dead_stream = env.stream.dead_letter_stream();
    let mut ids = Vec::new();
    for n in 0..3 {
        let id: String = redis::cmd("XADD")
            .arg(&dead_stream)
            .arg("*")
            .arg(&[
                ("data", format!("{{\"n\":{n}}}")),
                ("metadata", "{}".to_owned()),
            ])
            .arg(&[
                ("error", "boom"),
                ("source_id", "1-1"),
                ("delivery_count", "1"),
            ])
            .query_async(&mut env.redis.clone())
            .await
            .expect("XADD");
        ids.push(id);
    }
    let mut conn = env.redis.clone();
    let selection = replay::Selection::Ids(vec![
        ids[0].parse().expect("id"),
        ids[2].parse().expect("id"),
    ]);
    let report = replay::requeue(&mut conn, &env.stream, &selection)
        .await
        .expect("requeue");
    let moved: Vec<&str> = report
        .moved
        .iter()
        .map(|m| m.dead_letter_id.as_str())
        .collect();
    assert_eq!(moved, [ids[0].as_str(), ids[2].as_str()]);
    assert!(report.missing.is_empty());
    let left = env.dead_letters().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["data"], "{\"n\":1}");
    let main = env.stream_ids().await;
    assert_eq!(main.len(), 2);
    assert_eq!(
        stream_fields(&env, &main[1]).await,
        [
            ("data".to_owned(), "{\"n\":2}".to_owned()),
            ("metadata".to_owned(), "{}".to_owned())
        ]
    );

    // From the command line, one id found and one not: the found one moves, then it exits 1
    // naming the other.
    let partly = env
        .order_worker(&[
            "replay",
            "--dead-letter",
            "--id",
            ids[1].as_str(),
            "--id",
            "1-0",
        ])
        .await;
    assert_eq!(partly.status.code(), Some(1), "{}", stderr(&partly));
    assert!(
        stderr(&partly).contains("no dead letter 1-0"),
        "{}",
        stderr(&partly)
    );
    assert!(env.dead_letters().await.is_empty(), "the found one moved");
    assert_eq!(env.stream_ids().await.len(), 3);
    env.cleanup().await;
}

/// One entry's fields of the test's main stream, in stored order.
async fn stream_fields(env: &TestEnv, id: &str) -> Vec<(String, String)> {
    let reply: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&env.stream.stream)
        .arg(id)
        .arg(id)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XRANGE");
    reply
        .into_iter()
        .next()
        .map(|(_, fields)| fields)
        .unwrap_or_default()
}
