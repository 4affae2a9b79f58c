//! The order service's outbox (`RELAY_TABLE`) relayed through failures, real servers: a relay
//! that died between its XADDs and marking its rows publishes nothing twice; two replicas, the
//! one relaying SIGKILLed mid-relay, and Redis cut meanwhile: every row once, each order's in
//! order, none lost, and an outage counts no attempt.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use order_worker_dev::fault_proxy::FaultProxy;
use order_worker_dev::publisher;
use serde_json::json;
use support::order_events::Published;
use support::process::{kill, terminate};
use support::relay_table::TABLE;
use support::{eventually, TestEnv};

const LEADS: &str = "relay of outbox_events: this replica relays the outbox now";

/// Rows `0..n` of orders `o-0..o-<orders>`, `seq` the row's place in its order.
fn rows(env: &TestEnv, from: usize, n: usize, orders: usize) -> Vec<(String, String)> {
    (from..from + n)
        .map(|i| {
            let payload = json!({"order_id": format!("o-{}", i % orders), "seq": i / orders});
            (env.compensation_topic(), payload.to_string())
        })
        .collect()
}

async fn all_published(env: &TestEnv) -> bool {
    let table = env.outbox_table().await;
    !table.is_empty() && table.iter().all(|row| row.status == "published")
}

/// Every row published once, each order's rows in the order of their ids.
fn assert_once_in_order(published: &[Published], rows: usize) {
    let ids: HashSet<&str> = published.iter().map(|event| event.id()).collect();
    assert_eq!(ids.len(), published.len(), "an id twice");
    assert_eq!(published.len(), rows, "every row once");
    let mut by_order: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in published {
        let seq = event.event()["seq"].as_u64().expect("seq");
        by_order.entry(event.order_id()).or_default().push(seq);
    }
    for (order, seqs) in by_order {
        let want: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(seqs, want, "{order}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_a_dead_relay_published_without_marking_them_are_not_published_again() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    env.write_outbox(&rows(&env, 0, 40, 4)).await;
    // The dead relay's round: the oldest 15 rows, XADDed as it would, never marked.
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = Text)]
        event_id: String,
        #[diesel(sql_type = Text)]
        payload: String,
    }
    let first: Vec<Waiting> = diesel::sql_query(format!(
        "SELECT event_id::text AS event_id, payload::text AS payload FROM {TABLE} \
         ORDER BY id LIMIT 15"
    ))
    .load(&mut env.db().await)
    .await
    .expect("rows");
    for row in &first {
        let payload: serde_json::Value = serde_json::from_str(&row.payload).expect("JSON");
        let data = json!({"specversion": "1.0", "id": row.event_id, "data": payload});
        let fields = [
            ("data".to_owned(), data.to_string()),
            ("metadata".to_owned(), "{}".to_owned()),
        ];
        publisher::publish(&mut env.redis.clone(), &env.compensation_topic(), &fields)
            .await
            .expect("XADD");
    }
    let worker = env.spawn_worker_with(env.relaying_config("w1")).await;
    eventually("every row marked published", async || {
        all_published(&env).await
    })
    .await;
    worker.stop().await;
    let published = env.published_on(&env.compensation_topic()).await;
    assert_once_in_order(&published, 40);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_one_killed_mid_relay_and_redis_cut_publish_every_row_once_in_order() {
    const ORDERS: usize = 5;
    const ROWS: usize = 400;
    let env = TestEnv::new().await;
    env.create_order_service_outbox("JSONB").await;
    let proxy = FaultProxy::start(&env.redis_addr()).await.expect("proxy");
    let redis_url = proxy.url_for(&env.redis_url).expect("proxy URL");
    let settings = [
        ("RELAY_TABLE", TABLE),
        ("ORDER_EVENTS", "off"),
        ("RELAY_BATCH", "3"),
        ("RELAY_TAKEOVER_INTERVAL", "200ms"),
    ];
    let spawn = |name: &str| env.spawn_process(name, &redis_url, &env.database_url, &settings);
    let mut replicas = vec![("w1", spawn("w1")), ("w2", spawn("w2"))];
    // The order service's API commits rows meanwhile, a few at a time.
    let writer = {
        let env_rows = rows(&env, 0, ROWS, ORDERS);
        let database_url = env.database_url.clone();
        tokio::spawn(write_slowly(database_url, env_rows))
    };
    let leader = |env: &TestEnv, names: &[&str]| {
        names
            .iter()
            .find(|name| env.process_log(name).contains(LEADS))
            .map(|name| name.to_string())
    };
    let mut first = None;
    eventually("a replica relays, rows published", async || {
        first = leader(&env, &["w1", "w2"]);
        first.is_some() && env.published_on(&env.compensation_topic()).await.len() > 20
    })
    .await;
    let first = first.expect("a leader");
    let (_, child) = replicas
        .iter_mut()
        .find(|(name, _)| *name == first)
        .expect("it");
    kill(child).await;
    let other = if first == "w1" { "w2" } else { "w1" };
    eventually("the other replica takes over", async || {
        env.process_log(other).contains(LEADS)
    })
    .await;
    replicas.push(("w3", spawn("w3")));

    proxy.cut();
    let before = env.published_on(&env.compensation_topic()).await.len();
    eventually("rows wait while Redis is away", async || {
        waiting(&env).await > 10
    })
    .await;
    proxy.restore();
    writer.await.expect("writer");
    eventually("every row published", async || all_published(&env).await).await;
    let published = env.published_on(&env.compensation_topic()).await;
    assert!(published.len() > before);
    assert_once_in_order(&published, ROWS);
    let table = env.outbox_table().await;
    assert!(
        table.iter().all(|row| row.attempts == 0),
        "an outage counts no attempt"
    );
    for (name, child) in &mut replicas {
        if *name != first {
            assert_eq!(terminate(child).await.code(), Some(0), "{name}");
        }
    }
    env.cleanup().await;
}

/// Rows not published yet.
async fn waiting(env: &TestEnv) -> usize {
    let table = env.outbox_table().await;
    table.iter().filter(|row| row.status != "published").count()
}

/// Commits `rows` two at a time, a few milliseconds apart, on a connection of its own.
async fn write_slowly(database_url: String, rows: Vec<(String, String)>) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(&database_url)
        .await
        .expect("writer connects");
    for pair in rows.chunks(2) {
        let values: Vec<String> = pair
            .iter()
            .map(|(topic, payload)| format!("('{topic}', 'test', '{payload}')"))
            .collect();
        let sql = format!(
            "INSERT INTO {TABLE} (topic, event_type, payload) VALUES {}",
            values.join(", ")
        );
        conn.batch_execute(&sql).await.expect("INSERT");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
