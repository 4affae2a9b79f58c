//! A batch reads the inbox through its index by order, however large the inbox and whatever the
//! planner knows of it: an inbox not analyzed yet (restored, or filled faster than autovacuum
//! looks) is never read whole, and no batch statement is JIT-compiled (BENCHMARKS.md, "A
//! regression the 3,000-order rows hide").

mod support;

use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use order_worker::FulfillmentStatus::Planning;
use order_worker_dev::publisher::Format;
use support::TestEnv;

#[derive(QueryableByName)]
struct Scans {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq_scan: i64,
}

/// Sequential scans of the inbox so far, this connection's own included: its pending counts
/// are flushed when it goes idle after the first statement, and read by the second.
async fn inbox_seq_scans(conn: &mut AsyncPgConnection) -> i64 {
    conn.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .expect("flush the statistics");
    diesel::sql_query(
        "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'processed_events'::regclass",
    )
    .get_result::<Scans>(conn)
    .await
    .expect("read the inbox's statistics")
    .seq_scan
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_probe_an_inbox_never_analyzed_by_order() {
    let env = TestEnv::new().await;
    let mut conn = env.db().await;
    // 100,000 rows of 20,000 other orders, and no statistics: autovacuum kept off them.
    conn.batch_execute(
        "ALTER TABLE processed_events SET (autovacuum_enabled = false); \
         INSERT INTO processed_events \
         (event_id, stream_entry_id, outcome, order_id, topic, position, said) \
         SELECT 'old-' || g, '1-' || g, 'applied', 'old-order-' || g % 20000, \
         'fulfillment.status_changed', g, '{}' FROM generate_series(1, 100000) AS g",
    )
    .await
    .expect("fill the inbox");
    let orders: Vec<String> = (0..400).map(|i| format!("o-{i:03}")).collect();
    let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
    env.seed_orders(&ids, "confirmed").await;
    for order in &orders {
        env.publish(order, &format!("f-{order}"), Planning, Format::CloudEvent)
            .await;
    }

    let jit: String = conn_setting(&mut conn, "jit").await;
    assert_eq!(jit, "off", "the worker's connections never JIT-compile");
    let before = inbox_seq_scans(&mut conn).await;
    let streams = [("fulfillment.status_changed", env.stream.stream.clone())];
    let applied =
        order_worker_dev::in_order::apply_in_order(&mut conn, &mut env.redis.clone(), &streams)
            .await
            .expect("applies");
    assert_eq!(applied, 400);
    assert_eq!(
        inbox_seq_scans(&mut conn).await - before,
        0,
        "the batches' reads scanned the whole inbox instead of probing it by order"
    );
    assert_eq!(env.order_status("o-399").await, "processing");
    env.cleanup().await;
}

async fn conn_setting(conn: &mut AsyncPgConnection, name: &str) -> String {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Setting>(conn)
        .await
        .expect("read a setting")
        .value
}
