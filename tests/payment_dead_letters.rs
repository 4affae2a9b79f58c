//! Bad payment entries go to their own topic's dead-letter stream (then a replay reports the
//! good ones as duplicates), and `TOPICS` limited to one topic touches no other stream.

mod support;

use order_worker_dev::publisher::Format;
use serde_json::Value;
use support::payments::*;
use support::process::terminate;
use support::{eventually, TestEnv};

// ---------------------------------------------------------------------------------------------
// 6. Dead letters per topic, then a replay.

#[tokio::test(flavor = "multi_thread")]
async fn bad_payment_entries_are_dead_lettered_to_their_own_stream_and_a_replay_reports_duplicates()
{
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2", "o3"], "pending").await;
    let confirmed = env.payment_stream(CONFIRMED);
    let failed = env.payment_stream(FAILED);
    let without = |mut event: Value, field: &str| {
        event.as_object_mut().map(|e| e.remove(field));
        event
    };
    let cloud = Format::CloudEvent;

    let (first, _) = publish_payment(&env, CONFIRMED, "o1", "p1", Some("10.00"), None, cloud).await;
    let no_payment_id = without(
        payment_event(CONFIRMED, "o1", "px", None, None),
        "payment_id",
    );
    let bad_amount = payment_event(CONFIRMED, "o2", "p-comma", Some("12,50"), None);
    let wrong_topic = payment_event(FAILED, "o2", "p-wrong", None, Some("card_declined"));
    let ghost = payment_event(CONFIRMED, "ghost", "p-ghost", Some("5"), None);
    // p1 is o1's: the same payment id for o3 can never apply.
    let stolen = payment_event(CONFIRMED, "o3", "p1", Some("10.00"), None);
    let mut confirmed_bad = Vec::new();
    for (event, error) in [
        (no_payment_id, "event has no `payment_id`".to_owned()),
        (
            bad_amount,
            "`amount` \"12,50\" is not a decimal number".to_owned(),
        ),
        (
            wrong_topic,
            "`event_type` is \"payment.failed\", expected \"payment.confirmed\"".to_owned(),
        ),
        (ghost, "order \"ghost\" does not exist".to_owned()),
        (
            stolen,
            "payment \"p1\" belongs to order \"o1\", not to order \"o3\"".to_owned(),
        ),
    ] {
        let (entry, _) = publish_event(&env, CONFIRMED, &event, cloud).await;
        confirmed_bad.push((entry, error));
    }
    publish_payment(
        &env,
        CONFIRMED,
        "o2",
        "p2",
        Some("20.00"),
        None,
        Format::Raw,
    )
    .await;
    let mut failed_bad = Vec::new();
    for (event, error) in [
        (
            without(payment_event(FAILED, "o3", "py", None, None), "order_id"),
            "event has no `order_id`",
        ),
        (
            payment_event(CONFIRMED, "o3", "pz", Some("1"), None),
            "`event_type` is \"payment.confirmed\", expected \"payment.failed\"",
        ),
    ] {
        let (entry, _) = publish_event(&env, FAILED, &event, cloud).await;
        failed_bad.push((entry, error.to_owned()));
    }
    publish_payment(
        &env,
        FAILED,
        "o3",
        "p3",
        None,
        Some("card_declined"),
        Format::CloudEventBase64,
    )
    .await;

    let mut config = all_topics(env.config("w1"));
    config.max_deliveries = 2;
    config.claim_min_idle_ms = 100;
    config.claim_interval_ms = 100;
    let mut worker = env.spawn_worker_with(config).await;
    let dead = (confirmed_bad.len() + failed_bad.len()) as u64;
    let progress = worker
        .wait_for(|p| p.dead_lettered >= dead && p.applied >= 3)
        .await;
    worker.stop().await;

    assert_eq!(
        (
            progress.applied,
            progress.dead_lettered,
            progress.unknown_order
        ),
        (3, dead, 2),
        "the good ones around the bad ones apply; the unknown order was tried twice: {progress:?}"
    );
    assert_eq!(env.order_status("o1").await, "confirmed");
    assert_eq!(env.order_status("o2").await, "confirmed");
    assert_eq!(env.order_status("o3").await, "failed");
    assert_eq!(
        payment(&env, "p1").await,
        Some(payment_row("o1", "confirmed", Some("10.00"), None)),
        "the entry naming o1's payment for o3 changed nothing"
    );
    for (key, expected) in [(&confirmed, &confirmed_bad), (&failed, &failed_bad)] {
        let mut letters: Vec<(String, String, String)> = dead_letters_of(&env, key)
            .await
            .into_iter()
            .map(|l| {
                (
                    l["source_id"].clone(),
                    l["error"].clone(),
                    l["source_stream"].clone(),
                )
            })
            .collect();
        letters.sort();
        let mut want: Vec<(String, String, String)> = expected
            .iter()
            .map(|(id, error)| (id.clone(), error.clone(), key.clone()))
            .collect();
        want.sort();
        assert_eq!(letters, want, "dead letters of {key}");
        assert_eq!(pending_on(&env, key).await, Some(0), "{key}: all acked");
    }
    assert!(
        env.dead_letters().await.is_empty(),
        "none on the fulfillment topic's"
    );

    // Replaying the confirmed stream: the events applied come back duplicates.
    let output = env
        .order_worker(&[
            "replay", "--topic", CONFIRMED, "--stream", &confirmed, "--from", &first, "--json",
        ])
        .await;
    assert!(output.status.success(), "{}", support::ops::stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("replay --json");
    let counts = &report["counts"];
    let count = |name: &str| counts[name].as_u64();
    assert_eq!(report["read"].as_u64(), Some(7), "{report}");
    assert_eq!(
        [
            "duplicate",
            "applied",
            "undecodable",
            "unknown_order",
            "rejected",
            "stale",
            "ignored",
            "conflict"
        ]
        .map(count),
        [
            Some(2),
            Some(0),
            Some(3),
            Some(1),
            Some(1),
            Some(0),
            Some(0),
            Some(0)
        ],
        "{report}"
    );
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 7. TOPICS limited to one.

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_on_payment_confirmed_alone_touches_no_other_stream() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "pending").await;
    let confirmed = env.payment_stream(CONFIRMED);
    let mut worker = env.spawn_process(
        "solo",
        &env.redis_url,
        &env.database_url,
        &[("TOPICS", CONFIRMED)],
    );
    publish_payment(
        &env,
        CONFIRMED,
        "o1",
        "p1",
        Some("3.50"),
        None,
        Format::CloudEvent,
    )
    .await;
    eventually("the payment applied and acked", async || {
        env.order_status("o1").await == "confirmed" && pending_on(&env, &confirmed).await == Some(0)
    })
    .await;
    let status = terminate(&mut worker).await;
    assert!(status.success(), "{status:?}");

    assert_eq!(
        exists(&env, &env.stream.stream).await,
        0,
        "no fulfillment stream nor group"
    );
    assert_eq!(
        exists(&env, &env.payment_stream(FAILED)).await,
        0,
        "no payment.failed stream"
    );
    let log = env.process_log("solo");
    let subscribed: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&format!("{}:", order_worker::SUBSCRIBING)))
        .collect();
    assert_eq!(subscribed.len(), 1, "{log}");
    assert!(subscribed[0].contains(&confirmed), "{log}");
    env.cleanup().await;
}
