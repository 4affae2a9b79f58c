//! Crashes and concurrency: a worker that died between COMMIT and XACK, two workers in one
//! group, and a group that vanished with Redis's data.

mod support;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use order_worker::FulfillmentStatus::*;
use order_worker::{apply_batch, Incoming, TableName, Tables};
use order_worker::{decode, DEFAULT_MAX_ENTRY_BYTES};
use order_worker_dev::publisher::Format;
use redis::streams::StreamReadReply;
use support::payments;
use support::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_commit_and_xack_writes_no_second_history_row() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning, Shipped, Completed])
        .await;

    // What a worker named "pod-a" does before it dies: join the group, read, decode, apply and
    // COMMIT, but no XACK.
    order_worker::ensure_group(&mut env.redis.clone(), &env.stream)
        .await
        .expect("group created");
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&env.stream.group)
        .arg("pod-a")
        .arg("STREAMS")
        .arg(&env.stream.stream)
        .arg(">")
        .query_async(&mut env.redis.clone())
        .await
        .expect("XREADGROUP");
    let entries = &reply.keys[0].ids;
    let events: Vec<_> = entries
        .iter()
        .map(|entry| {
            let fields: Vec<(String, Vec<u8>)> = entry
                .map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        redis::from_redis_value(v.clone()).expect("bytes"),
                    )
                })
                .collect();
            decode(
                order_worker::topic("fulfillment.status_changed").expect("topic"),
                &fields,
                DEFAULT_MAX_ENTRY_BYTES,
                Default::default(),
            )
            .expect("decodes")
        })
        .collect();
    let incoming: Vec<Incoming<'_>> = entries
        .iter()
        .zip(&events)
        .map(|(entry, event)| Incoming {
            entry_id: &entry.id,
            event,
        })
        .collect();
    let mut conn = AsyncPgConnection::establish(&env.database_url)
        .await
        .expect("db");
    let tables = Tables::inspect(&mut conn, &TableName::default())
        .await
        .expect("the tables");
    apply_batch(&mut conn, &tables, &incoming)
        .await
        .expect("committed");
    assert_eq!(env.history("o1").await.len(), 3);
    assert_eq!(env.pending().await, 3, "committed but never acked");

    // pod-a restarts under the same name: it re-reads its pending entries first.
    let mut worker = env.spawn_worker("pod-a").await;
    let progress = worker.wait_consumed(3).await;
    worker.stop().await;

    assert_eq!(
        (progress.duplicate, progress.applied),
        (3, 0),
        "{progress:?}"
    );
    assert_eq!(env.history("o1").await.len(), 3, "no second history row");
    assert_eq!(env.order_status("o1").await, "delivered");
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_in_one_group_never_apply_an_entry_twice() {
    let env = TestEnv::new().await;
    let orders: Vec<String> = (0..60).map(|i| format!("order-{i:03}")).collect();
    let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
    env.seed_orders(&ids, "confirmed").await;
    let lifecycle = [Planning, Picking, Packing, Ready, Shipped, Completed];
    // Interleave orders so both workers' batches hold events of the same orders.
    for status in lifecycle {
        for order in &orders {
            env.publish(order, &format!("f-{order}"), status, Format::CloudEvent)
                .await;
        }
    }
    let total = (orders.len() * lifecycle.len()) as u64;
    // Both take part by construction: pod-a's first batch waits behind a rival's lock on
    // order-000, so pod-a stops reading at its next batch holding that order, and pod-b, started
    // then, has the rest to itself until the lock goes.
    let mut rival = env.lock_order("order-000").await;
    let mut config = env.config("pod-a");
    config.batch_size = 7;
    let a = env.spawn_worker_with(config.clone()).await;
    eventually("pod-a waits for order-000", async || {
        env.lock_waits().await == 1
    })
    .await;
    config.stream.consumer = Some("pod-b".to_owned());
    let b = env.spawn_worker_with(config).await;
    eventually("pod-b consumed while pod-a waits", async || {
        b.progress.borrow().consumed > 0
    })
    .await;
    rival.batch_execute("ROLLBACK").await.expect("let go");
    eventually("both workers consumed everything", async || {
        a.progress.borrow().consumed + b.progress.borrow().consumed >= total
    })
    .await;
    let (a, b) = (a.stop().await, b.stop().await);

    assert_eq!(
        a.consumed + b.consumed,
        total,
        "each entry delivered once: {a:?} {b:?}"
    );
    assert_eq!(a.applied + b.applied, total, "{a:?} {b:?}");
    assert!(a.consumed > 0, "pod-a's batch applied once let go: {a:?}");
    assert_eq!(env.history_count().await, 3 * orders.len() as i64);
    for order in &orders {
        assert_eq!(env.order_status(order).await, "delivered", "{order}");
    }
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_lost_with_redis_data_is_recreated_and_consumption_goes_on() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    let mut worker = env.spawn_worker("w1").await;
    env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    worker.wait_consumed(1).await;

    // Redis lost its data: the stream and the group are gone.
    let _: () = redis::cmd("DEL")
        .arg(&env.stream.stream)
        .query_async(&mut env.redis.clone())
        .await
        .expect("DEL");
    // The worker's next read answers NOGROUP; it recreates the group and reads on. Keep
    // publishing until an entry lands after the group exists again.
    eventually("the group exists again", async || {
        let groups: redis::RedisResult<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&env.stream.stream)
            .query_async(&mut env.redis.clone())
            .await;
        matches!(groups, Ok(redis::Value::Array(ref g)) if !g.is_empty())
    })
    .await;
    env.publish("o1", "f1", Shipped, Format::CloudEvent).await;
    worker.wait_for(|p| p.applied >= 2).await;
    worker.stop().await;

    assert_eq!(env.order_status("o1").await, "shipped");
    assert_eq!(env.pending().await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_stream_lost_with_its_group_is_recreated_and_every_topic_goes_on() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "pending").await;
    let mut worker = env
        .spawn_worker_with(payments::all_topics(env.config("w1")))
        .await;
    let confirm = async |order: &str| {
        payments::publish_payment(
            &env,
            payments::CONFIRMED,
            order,
            order,
            None,
            None,
            Format::CloudEvent,
        )
        .await
    };
    confirm("o1").await;
    worker.wait_consumed(1).await;

    // Only the payment.confirmed stream is lost (the others keep their groups).
    let lost = env.payment_stream(payments::CONFIRMED);
    let _: () = redis::cmd("DEL")
        .arg(&lost)
        .query_async(&mut env.redis.clone())
        .await
        .expect("DEL");
    eventually("the group on the lost stream exists again", async || {
        payments::pending_on(&env, &lost).await.is_some()
    })
    .await;
    confirm("o2").await;
    env.publish("o1", "f1", Planning, Format::Raw).await;
    worker.wait_for(|p| p.applied >= 3).await;
    worker.stop().await;

    assert_eq!(env.order_status("o1").await, "processing");
    assert_eq!(env.order_status("o2").await, "confirmed");
    for key in payments::three_streams(&env) {
        assert_eq!(payments::pending_on(&env, &key).await, Some(0), "{key}");
    }
    env.cleanup().await;
}
