//! The order service's own outbox (`RELAY_TABLE`), relayed by the worker as its Dapr sidecar
//! did: rows another writer commits are published in Dapr's format to the stream their topic
//! names, in order per order, marked published; a row that cannot be published is marked
//! failed with the reason and the others flow; `migrate` and `run` refuse a table missing a
//! mapped column. Real PostgreSQL and Redis.

mod support;

use std::collections::{BTreeMap, HashSet};

use diesel_async::SimpleAsyncConnection;
use serde_json::json;
use support::http::{http_port, Metrics};
use support::order_events::Published;
use support::process::{order_worker_output, terminate};
use support::relay_table::TABLE;
use support::{eventually, TestEnv, DEADLINE};

const ORDERS: usize = 6;
const STEPS: usize = 5;

/// The step of `order` at `seq`: which topic it goes to, alternating, so that one order's rows
/// are spread over both streams.
fn row(env: &TestEnv, order: usize, seq: usize) -> (String, String) {
    let topic = if (order + seq).is_multiple_of(2) {
        env.order_events().order_events_topic
    } else {
        env.compensation_topic()
    };
    let payload = json!({"order_id": format!("o-{order}"), "seq": seq, "new_status": "confirmed"});
    (topic, payload.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_another_writer_commits_are_published_in_order_per_order_as_dapr_writes_them() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    // Some rows wait before the relay starts, the rest are committed while it runs.
    for order in 0..ORDERS {
        env.write_outbox(&[row(&env, order, 0)]).await;
    }
    let worker = env.spawn_worker_with(env.relaying_config("w1")).await;
    for seq in 1..STEPS {
        let rows: Vec<_> = (0..ORDERS).map(|order| row(&env, order, seq)).collect();
        env.write_outbox(&rows[..ORDERS / 2]).await;
        env.write_outbox(&rows[ORDERS / 2..]).await;
    }
    eventually("every row marked published", async || {
        env.outbox_table()
            .await
            .iter()
            .all(|row| row.status == "published" && row.published_at.is_some())
    })
    .await;
    worker.stop().await;

    let table = env.outbox_table().await;
    assert_eq!(table.len(), ORDERS * STEPS);
    let published = env.relayed().await;
    assert_eq!(published.len(), ORDERS * STEPS, "each row once");
    let by_event: BTreeMap<&str, &str> = table
        .iter()
        .map(|row| (row.event_id.as_str(), row.topic.as_str()))
        .collect();
    let mut ids = HashSet::new();
    for event in &published {
        assert!(ids.insert(event.id().to_owned()), "{} twice", event.id());
        let topic = by_event[event.id()];
        let envelope = &event.cloud_event;
        assert_eq!(envelope["topic"], topic, "{envelope}");
        assert_eq!(envelope["specversion"], "1.0");
        assert_eq!(envelope["type"], "com.dapr.event.sent");
        assert_eq!(envelope["source"], "order-worker");
        assert_eq!(envelope["pubsubname"], "pubsub-redis");
        assert_eq!(envelope["datacontenttype"], "application/json");
        assert_eq!(event.metadata.as_deref(), Some("{}"));
    }
    assert_in_order_per_order(&published);
    env.cleanup().await;
}

/// Each order's rows reached Redis in the order of their ids (their `seq`), across both
/// streams: entry ids are Redis's clock, which never goes back.
fn assert_in_order_per_order(published: &[Published]) {
    let mut by_order: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for event in published {
        let at: u64 = event.entry_id.split('-').next().unwrap().parse().unwrap();
        let seq = event.event()["seq"].as_u64().expect("seq");
        by_order
            .entry(event.order_id().to_owned())
            .or_default()
            .push((seq, at));
    }
    assert_eq!(by_order.len(), ORDERS);
    for (order, mut steps) in by_order {
        steps.sort_unstable();
        let seqs: Vec<u64> = steps.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (0..STEPS as u64).collect::<Vec<_>>(), "{order}");
        assert!(
            steps.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "{order} out of order: {steps:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_that_cannot_be_published_is_marked_failed_with_the_reason_and_the_rest_flow() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("TEXT").await;
    let events = env.order_events().order_events_topic;
    let good = |order: &str, seq: u32| json!({"order_id": order, "seq": seq}).to_string();
    env.write_outbox(&[
        (events.clone(), good("o-1", 0)),
        (events.clone(), json!({"seq": 1}).to_string()),
        (String::new(), good("o-2", 0)),
        (events.clone(), "not json at all".to_owned()),
        (events.clone(), good("o-1", 1)),
        (events.clone(), good("o-2", 1)),
    ])
    .await;
    let settings = [("RELAY_TABLE", TABLE), ("ORDER_EVENTS", "off")];
    let mut worker = env.spawn_process("w1", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "w1").await;
    eventually("no row left waiting", async || {
        env.outbox_table()
            .await
            .iter()
            .all(|row| row.status == "published" || row.status == "failed")
    })
    .await;
    let table = env.outbox_table().await;
    let statuses: Vec<&str> = table.iter().map(|row| row.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "published",
            "failed",
            "failed",
            "published",
            "published",
            "published"
        ]
    );
    let reason = |i: usize| table[i].last_error.clone().unwrap_or_default();
    assert!(
        reason(1).contains("no order id at `order_id`"),
        "{}",
        reason(1)
    );
    assert!(reason(2).contains("topic is empty"), "{}", reason(2));
    assert!(table[1].attempts == 1 && table[1].published_at.is_none());

    let published = env.published_on(&events).await;
    assert_eq!(published.len(), 4);
    let raw = &published[1].cloud_event;
    assert_eq!(raw["data_base64"], "bm90IGpzb24gYXQgYWxs", "{raw}");
    assert_eq!(raw["datacontenttype"], "application/octet-stream");
    eventually("the failed rows counted", async || {
        Metrics::scrape(port)
            .await
            .total("order_events_outbox_failed_total")
            == 2.0
    })
    .await;
    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    let log = env.process_log("w1");
    let failed: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("OUTBOX_FAILED"))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().all(|line| line.contains("ERROR")),
        "{failed:?}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_and_run_refuse_a_table_missing_a_mapped_column_and_never_alter_it() {
    let env = TestEnv::new().await;
    env.db()
        .await
        .batch_execute(&format!(
            "CREATE TABLE {TABLE} (id BIGSERIAL PRIMARY KEY, topic TEXT, event_type TEXT, event_id UUID, \
             payload JSONB, status TEXT, published_at TIMESTAMPTZ, attempts INT, \
             error_text TEXT, created_at TIMESTAMPTZ)"
        ))
        .await
        .expect("a table without last_error");
    let url = env.database_url.as_str();
    let migrate = |extra: &[(&'static str, &'static str)]| {
        let mut settings = vec![("DATABASE_URL", url), ("RELAY_TABLE", TABLE)];
        settings.extend_from_slice(extra);
        order_worker_output(&["migrate"], &settings)
    };
    let refused = migrate(&[]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    // The line is JSON: its quotes escaped.
    assert!(
        said.contains("no column")
            && said.contains("last_error")
            && said.contains("(RELAY_COLUMN_LAST_ERROR)"),
        "{said}"
    );
    let mapped = migrate(&[("RELAY_COLUMN_LAST_ERROR", "error_text")]);
    assert!(
        mapped.status.success(),
        "{}",
        String::from_utf8_lossy(&mapped.stderr)
    );

    let settings = [("RELAY_TABLE", TABLE)];
    let mut worker = env.spawn_process("w1", &env.redis_url, &env.database_url, &settings);
    let exited = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("run refuses at start-up")
        .expect("exit status");
    assert!(!exited.success());
    assert!(env.process_log("w1").contains("RELAY_COLUMN_LAST_ERROR"));
    let columns = env.outbox_columns().await;
    assert!(
        !columns.contains(&"last_error".to_owned()),
        "never altered: {columns:?}"
    );
    env.cleanup().await;
}
