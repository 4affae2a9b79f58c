//! The three streams as one subscription: a batch across them commits once, in the servers'
//! order (to the millisecond, payments first within one), and replicas share the group on all
//! three with one killed, losing and repeating nothing.

mod support;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use order_worker::FulfillmentStatus::{self, *};
use order_worker_dev::fault_proxy::FaultProxy;
use order_worker_dev::publisher::{self, Format};
use serde_json::Value;
use support::payments::*;
use support::process::{kill, terminate};
use support::{eventually, TestEnv};

// ---------------------------------------------------------------------------------------------
// 4. One batch of three streams: one transaction, the servers' order.

#[derive(QueryableByName)]
struct InboxTimes {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    times: i64,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_three_topics_commits_once_applying_each_order_in_publication_order() {
    let env = TestEnv::new().await;
    let paid: Vec<String> = (0..6).map(|i| format!("paid-{i}")).collect();
    let declined: Vec<String> = (0..6).map(|i| format!("declined-{i}")).collect();
    let ids: Vec<&str> = paid.iter().chain(&declined).map(String::as_str).collect();
    env.seed_orders(&ids, "pending").await;
    for (paid, declined) in paid.iter().zip(&declined) {
        // Money first, then the warehouse, then a late decline of a second card (stale).
        let format = Format::CloudEvent;
        let confirmed = publish_payment(
            &env,
            CONFIRMED,
            paid,
            &format!("p-{paid}"),
            Some("10"),
            None,
            format,
        )
        .await;
        // Entry ids order entries across streams only to the millisecond: each stream numbers
        // its own entries within one (`<ms>-0` in both, a tie), so the next stream's entry
        // waits for the server's clock to move on.
        clock_passes(&env, &confirmed.0).await;
        let planning = env
            .publish(paid, &format!("f-{paid}"), Planning, format)
            .await;
        clock_passes(&env, &planning.0).await;
        let reason = Some("card_declined");
        publish_payment(
            &env,
            FAILED,
            paid,
            &format!("p2-{paid}"),
            None,
            reason,
            format,
        )
        .await;
        publish_payment(
            &env,
            FAILED,
            declined,
            &format!("p-{declined}"),
            None,
            reason,
            format,
        )
        .await;
    }
    let total = 4 * paid.len() as u64;

    let mut config = all_topics(env.config("w1"));
    config.batch_size = 10_000;
    assert_eq!(config.concurrency, 1);
    let mut worker = env.spawn_worker_with(config).await;
    let progress = worker.wait_consumed(total).await;
    worker.stop().await;

    assert_eq!(
        (progress.applied, progress.stale, progress.ignored),
        (3 * paid.len() as u64, paid.len() as u64, 0),
        "{progress:?}"
    );
    let inbox: InboxTimes = diesel::sql_query(
        "SELECT count(*) AS rows, count(DISTINCT processed_at) AS times FROM processed_events",
    )
    .get_result(&mut env.db().await)
    .await
    .expect("read processed_events");
    assert_eq!(
        (inbox.rows, inbox.times),
        (total as i64, 1),
        "every event of the three streams in one transaction"
    );
    for order in &paid {
        assert_eq!(env.order_status(order).await, "processing", "{order}");
        assert_eq!(
            env.history(order).await,
            [
                history_row("pending", "confirmed", "PaymentConfirmed"),
                history_row("confirmed", "processing", "FulfillmentPlanning"),
            ],
            "{order}: the payment before the warehouse, as published"
        );
    }
    for order in &declined {
        assert_eq!(
            env.history(order).await,
            [history_row("pending", "failed", "PaymentFailed")],
            "{order}"
        );
    }
    env.cleanup().await;
}

/// Two streams number their entries independently, so two XADDs to different streams in the
/// same millisecond both get `<ms>-0` (publishing back to back does that most of the time): the
/// ids cannot tell which came first, and the topics' stages decide (payments, then the
/// fulfillment). Here the tie is certain: the planning entry gets exactly the payment's id.
/// Without the stage, the fulfillment went first and the payment came out `ignored`.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_and_a_fulfillment_published_in_the_same_millisecond_apply_payment_first() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "pending").await;
    let (payment_entry, _) = publish_payment(
        &env,
        CONFIRMED,
        "o1",
        "p1",
        Some("10"),
        None,
        Format::CloudEvent,
    )
    .await;
    let event = publisher::event("o1", "f1", None, Planning, &now());
    let fields = publisher::entry_fields(FULFILLMENT, &event, "ce-planning", Format::CloudEvent);
    let planning_entry: String = redis::cmd("XADD")
        .arg(&env.stream.stream)
        .arg(&payment_entry)
        .arg(&fields)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XADD");
    assert_eq!(planning_entry, payment_entry, "the tie two publishers get");

    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    let progress = worker.wait_consumed(2).await;
    worker.stop().await;

    assert_eq!(
        env.history("o1").await,
        [
            history_row("pending", "confirmed", "PaymentConfirmed"),
            history_row("confirmed", "processing", "FulfillmentPlanning"),
        ],
        "published payment first, planning next: {progress:?}"
    );
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Replicas on all three streams, one SIGKILLed.

/// Orders per kind in the replica test.
const REPLICA_ORDERS: usize = 30;

/// Appends `entries` (topic, event) to their streams in one MULTI, in every Dapr format in
/// turn: a consumer blocked on the streams is served once all are there.
async fn publish_all(env: &TestEnv, entries: &[(&str, Value)]) {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (i, (topic, event)) in entries.iter().enumerate() {
        let format = Format::ALL[i % Format::ALL.len()];
        let id = uuid::Uuid::new_v4().to_string();
        let fields = publisher::entry_fields(topic, event, &id, format);
        pipe.cmd("XADD")
            .arg(stream_key(env, topic))
            .arg("*")
            .arg(fields)
            .ignore();
    }
    let _: () = pipe
        .query_async(&mut env.redis.clone())
        .await
        .expect("XADD");
}

fn fulfillment(order: &str, status: FulfillmentStatus) -> (&'static str, Value) {
    let event = publisher::event(order, &format!("f-{order}"), None, status, &now());
    (FULFILLMENT, event)
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_three_streams_and_a_killed_one_loses_and_repeats_nothing() {
    let env = TestEnv::new().await;
    let names = |kind: &str| -> Vec<String> {
        (0..REPLICA_ORDERS)
            .map(|i| format!("{kind}-{i:02}"))
            .collect()
    };
    // paid: a payment, then a whole fulfillment; retried: a declined card then an accepted
    // one; shipped: already confirmed, a whole fulfillment.
    let (paid, retried, shipped) = (names("paid"), names("retried"), names("shipped"));
    let pending: Vec<&str> = paid.iter().chain(&retried).map(String::as_str).collect();
    env.seed_orders(&pending, "pending").await;
    let confirmed: Vec<&str> = shipped.iter().map(String::as_str).collect();
    env.seed_orders(&confirmed, "confirmed").await;

    // The victim's database stalls, so it certainly holds entries when it is killed.
    let proxy = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let settings = [("TOPICS", ALL_TOPICS), ("BATCH_SIZE", "5")];
    let mut victim = env.spawn_process(
        "victim",
        &env.redis_url,
        &proxy.url_for(&env.database_url).expect("proxied URL"),
        &settings,
    );
    eventually("the victim joined the group", async || {
        env.has_consumer("victim").await
    })
    .await;
    proxy.stall();

    // First wave: one event per order, on all three streams.
    let mut first = Vec::new();
    for i in 0..REPLICA_ORDERS {
        first.push((
            CONFIRMED,
            payment_event(
                CONFIRMED,
                &paid[i],
                &format!("p-{}", paid[i]),
                Some("25.00"),
                None,
            ),
        ));
        first.push((
            FAILED,
            payment_event(
                FAILED,
                &retried[i],
                &format!("p1-{}", retried[i]),
                None,
                Some("card_declined"),
            ),
        ));
        first.push(fulfillment(&shipped[i], Planning));
    }
    publish_all(&env, &first).await;
    eventually("the victim holds entries of each stream", async || {
        for key in three_streams(&env) {
            if pending_for_on(&env, &key, "victim").await == 0 {
                return false;
            }
        }
        true
    })
    .await;
    let mut survivors: Vec<_> = ["w2", "w3"]
        .iter()
        .map(|name| env.spawn_process(name, &env.redis_url, &env.database_url, &settings))
        .collect();
    eventually("the survivors joined the group", async || {
        env.has_consumer("w2").await && env.has_consumer("w3").await
    })
    .await;
    kill(&mut victim).await;
    proxy.restore();
    for key in three_streams(&env) {
        let held = pending_for_on(&env, &key, "victim").await;
        assert!(held > 0, "the victim died holding entries of {key}");
    }
    eventually(
        "the first wave applied, the victim's entries claimed",
        async || {
            env.history_count().await == 3 * REPLICA_ORDERS as i64 && nothing_pending(&env).await
        },
    )
    .await;

    // Second wave: whole fulfillments, step by step across orders (an order's events far
    // apart), and the accepted cards half-way.
    let mut second = Vec::new();
    for (step, status) in FulfillmentStatus::LIFECYCLE.into_iter().enumerate() {
        for i in 0..REPLICA_ORDERS {
            second.push(fulfillment(&paid[i], status));
            if step > 1 {
                second.push(fulfillment(&shipped[i], status));
            }
        }
        if step == 4 {
            for order in &retried {
                second.push((
                    CONFIRMED,
                    payment_event(
                        CONFIRMED,
                        order,
                        &format!("p2-{order}"),
                        Some("25.00"),
                        None,
                    ),
                ));
            }
        }
    }
    publish_all(&env, &second).await;
    let expected_rows = (4 + 2 + 3) * REPLICA_ORDERS as i64;
    eventually("everything applied and acked", async || {
        env.history_count().await >= expected_rows && nothing_pending(&env).await
    })
    .await;
    for worker in &mut survivors {
        terminate(worker).await;
    }

    assert_three_kinds(&env, (&paid, &retried, &shipped), expected_rows).await;
    for key in three_streams(&env) {
        assert_eq!(pending_on(&env, &key).await, Some(0), "{key}");
        assert!(dead_letters_of(&env, &key).await.is_empty(), "{key}");
    }
    env.cleanup().await;
}
