//! Deploying into an existing order service: `migrate` adopts the service's own orders table
//! (UUID ids, a status enum, extra columns, 100,000 rows, another schema) without touching what
//! is the service's, the worker then applies all three topics to it, a table that cannot work is
//! refused with what is wrong, and the service's own writers keep writing alongside.

mod support;

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use order_worker::FulfillmentStatus;
use order_worker::{run_migrations, TableName};
use order_worker_dev::publisher::Format;
use support::payments::*;
use support::TestEnv;

/// What an order service's table holds beyond the worker's columns: kept exactly.
const THEIR_ROWS: i64 = 100_000;

/// An order service's orders table `table` with [`THEIR_ROWS`] pending orders: UUID ids,
/// columns of its own, `status` of type `status_type`, `updated_at` without a time zone.
async fn order_service_table(conn: &mut AsyncPgConnection, table: &str, status_type: &str) {
    let sql = format!(
        "CREATE TABLE {table} (
            id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            customer_id      UUID NOT NULL,
            status           {status_type} NOT NULL DEFAULT 'pending',
            total_cents      BIGINT NOT NULL,
            shipping_address JSONB NOT NULL,
            created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at       TIMESTAMP NOT NULL DEFAULT now()
        );
        INSERT INTO {table} (customer_id, total_cents, shipping_address)
        SELECT gen_random_uuid(), n * 100, jsonb_build_object('city', 'City ' || n)
        FROM generate_series(1, {THEIR_ROWS}) AS n;"
    );
    execute(conn, &sql).await;
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(sql).await.expect(sql);
}

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq)]
struct Fingerprint {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    /// Every row's own columns (not status, updated_at, fulfillment_status), hashed in id order.
    #[diesel(sql_type = Text)]
    theirs: String,
    /// The table's columns and their types, in order.
    #[diesel(sql_type = Text)]
    columns: String,
}

async fn fingerprint(conn: &mut AsyncPgConnection, schema: &str, table: &str) -> Fingerprint {
    diesel::sql_query(format!(
        "SELECT count(*) AS rows,
            md5(string_agg(id::text || customer_id::text || total_cents || shipping_address::text
                || created_at::text, ',' ORDER BY id)) AS theirs,
            (SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
             FROM information_schema.columns
             WHERE table_schema = '{schema}' AND table_name = '{table}') AS columns
         FROM {schema}.{table}"
    ))
    .get_result(conn)
    .await
    .expect("fingerprint")
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

/// The ids of the first `n` orders of `table` (by their total), as PostgreSQL writes them.
async fn some_ids(conn: &mut AsyncPgConnection, table: &str, n: usize) -> Vec<String> {
    let rows: Vec<Id> = diesel::sql_query(format!(
        "SELECT id::text AS id FROM {table} ORDER BY total_cents LIMIT {n}"
    ))
    .load(conn)
    .await
    .expect("ids");
    rows.into_iter().map(|row| row.id).collect()
}

#[derive(diesel::QueryableByName)]
struct Status {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    fulfillment_status: String,
}

async fn status(conn: &mut AsyncPgConnection, table: &str, id: &str) -> (String, String) {
    let row: Status = diesel::sql_query(format!(
        "SELECT status::text AS status, COALESCE(fulfillment_status, '') AS fulfillment_status \
         FROM {table} WHERE id = '{id}'"
    ))
    .get_result(conn)
    .await
    .expect("order row");
    (row.status, row.fulfillment_status)
}

/// Publishes, for each of `paid`, an accepted payment (the first spelled in capitals, as some
/// publisher might) and a whole fulfillment; for each of `declined`, a declined card. Returns
/// how many entries.
async fn publish_orders(env: &TestEnv, paid: &[String], declined: &[String]) -> u64 {
    let mut published = 0;
    for (n, order) in paid.iter().enumerate() {
        let spelled = if n == 0 {
            order.to_uppercase()
        } else {
            order.clone()
        };
        let payment = format!("p-{order}");
        publish_payment(
            env,
            CONFIRMED,
            &spelled,
            &payment,
            Some("10"),
            None,
            Format::CloudEvent,
        )
        .await;
        env.publish_lifecycle(order, &format!("f-{order}"), &FulfillmentStatus::LIFECYCLE)
            .await;
        published += 1 + FulfillmentStatus::LIFECYCLE.len() as u64;
    }
    for order in declined {
        let reason = Some("card_declined");
        publish_payment(
            env,
            FAILED,
            order,
            &format!("p-{order}"),
            None,
            reason,
            Format::CloudEvent,
        )
        .await;
        published += 1;
    }
    published
}

/// Runs one worker over all three topics against `table` until it has consumed `entries`.
async fn drain(env: &TestEnv, table: &str, entries: u64) {
    let mut config = all_topics(env.config("w1"));
    config.connections.orders_table = table.parse().expect("table name");
    let mut worker = env.spawn_worker_with(config).await;
    worker.wait_consumed(entries).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_adopts_an_order_service_table_with_uuid_ids_and_the_worker_applies_to_it() {
    let env = TestEnv::unmigrated().await;
    let mut conn = env.db().await;
    order_service_table(&mut conn, "orders", "VARCHAR(32)").await;
    let before = fingerprint(&mut conn, "public", "orders").await;
    assert_eq!(before.rows, THEIR_ROWS);

    let applied = run_migrations(&env.database_url, &TableName::default())
        .await
        .expect("migrate adopts the table");
    assert!(!applied.is_empty());
    let adopted = fingerprint(&mut conn, "public", "orders").await;
    assert_eq!(adopted.theirs, before.theirs, "every row kept as it was");
    assert_eq!(
        adopted.columns,
        format!("{}, fulfillment_status text", before.columns),
        "the one column added, nothing else changed"
    );
    // Again: nothing to do, nothing changed.
    assert!(run_migrations(&env.database_url, &TableName::default())
        .await
        .expect("migrate again")
        .is_empty());

    let ids = some_ids(&mut conn, "orders", 20).await;
    let (paid, declined) = ids.split_at(10);
    let mut entries = publish_orders(&env, paid, declined).await;
    let (_, bad) = env
        .publish(
            "not-a-uuid",
            "f-bad",
            FulfillmentStatus::Picking,
            Format::CloudEvent,
        )
        .await;
    entries += 1;
    drain(&env, "orders", entries).await;

    for order in paid {
        let want = ("delivered".to_owned(), "completed".to_owned());
        assert_eq!(status(&mut conn, "orders", order).await, want, "{order}");
    }
    for order in declined {
        assert_eq!(
            status(&mut conn, "orders", order).await.0,
            "failed",
            "{order}"
        );
    }
    let after = fingerprint(&mut conn, "public", "orders").await;
    assert_eq!(
        after.theirs, before.theirs,
        "the service's columns untouched"
    );
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let error = &dead[0]["error"];
    assert!(
        error.contains("`order_id` \"not-a-uuid\" is not a UUID"),
        "{error} (event {bad})"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_table_in_another_schema_with_a_status_enum() {
    let env = TestEnv::unmigrated().await;
    let mut conn = env.db().await;
    execute(
        &mut conn,
        "CREATE SCHEMA sales;
         CREATE TYPE sales.order_state AS ENUM ('pending', 'confirmed', 'processing',
             'partially_shipped', 'shipped', 'delivered', 'cancelled', 'refunded', 'failed',
             'on_hold');",
    )
    .await;
    order_service_table(&mut conn, "sales.orders", "sales.order_state").await;
    let before = fingerprint(&mut conn, "sales", "orders").await;

    let output = env
        .order_worker_with(&["migrate"], &[("ORDERS_TABLE", "Sales.Orders")])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("orders table: adopted"), "{stderr}");
    let adopted = fingerprint(&mut conn, "sales", "orders").await;
    assert_eq!(adopted.theirs, before.theirs);
    assert_eq!(
        adopted.columns,
        format!("{}, fulfillment_status text", before.columns)
    );

    let ids = some_ids(&mut conn, "sales.orders", 11).await;
    let (held, rest) = ids.split_first().expect("ids");
    let (paid, declined) = rest.split_at(5);
    execute(
        &mut conn,
        &format!("UPDATE sales.orders SET status = 'on_hold' WHERE id = '{held}'"),
    )
    .await;
    let mut entries = publish_orders(&env, paid, declined).await;
    env.publish(
        held,
        "f-held",
        FulfillmentStatus::Picking,
        Format::CloudEvent,
    )
    .await;
    entries += 1;
    drain(&env, "sales.orders", entries).await;

    for order in paid {
        assert_eq!(
            status(&mut conn, "sales.orders", order).await.0,
            "delivered"
        );
    }
    for order in declined {
        assert_eq!(status(&mut conn, "sales.orders", order).await.0, "failed");
    }
    assert_eq!(status(&mut conn, "sales.orders", held).await.0, "on_hold");
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["error"].contains("has the status \"on_hold\", which the order service set"),
        "{dead:?}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_cannot_work_is_refused_with_what_is_wrong_and_left_untouched() {
    let cases = [
        (
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL, \
             updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            "`id` is integer; the worker needs TEXT, VARCHAR or UUID",
        ),
        (
            "CREATE TABLE orders (id UUID PRIMARY KEY, state TEXT NOT NULL, \
             updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            "`status` is missing; the worker needs TEXT, VARCHAR(17) or longer, or an enum",
        ),
    ];
    for (table, want) in cases {
        let env = TestEnv::unmigrated().await;
        let mut conn = env.db().await;
        execute(&mut conn, table).await;
        let error = run_migrations(&env.database_url, &TableName::default())
            .await
            .expect_err("refused");
        let error = format!("{error:#}");
        assert!(
            error.contains(
                "the orders table `orders` does not fit the worker (nothing in it was changed)"
            ),
            "{error}"
        );
        assert!(error.contains(want), "{error}");

        // The binary says the same, exits 1, and created nothing.
        let output = env.order_worker(&["migrate"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        let created: Vec<Id> = diesel::sql_query(
            "SELECT tablename::text AS id FROM pg_tables WHERE schemaname = 'public' \
             AND tablename <> 'orders'",
        )
        .load(&mut conn)
        .await
        .expect("tables");
        assert!(created.is_empty(), "nothing created beside a refused table");
        env.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_orders_table_setting_is_refused_before_anything_runs() {
    let env = TestEnv::unmigrated().await;
    let output = env
        .order_worker_with(&["migrate"], &[("ORDERS_TABLE", "orders; DROP TABLE x")])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("is not a plain identifier"), "{stderr}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_order_service_writes_its_table_while_the_worker_drains_and_neither_loses_a_change() {
    let env = TestEnv::unmigrated().await;
    let mut conn = env.db().await;
    order_service_table(&mut conn, "orders", "TEXT").await;
    run_migrations(&env.database_url, &TableName::default())
        .await
        .expect("migrate");
    let ids = some_ids(&mut conn, "orders", 60).await;
    let entries = publish_orders(&env, &ids, &[]).await;

    // The service, meanwhile: every third customer cancels; every order's total is adjusted.
    let service = {
        let (ids, url) = (ids.clone(), env.database_url.clone());
        tokio::spawn(async move {
            let mut conn = order_worker::connect_postgres(url).await.expect("connect");
            for (n, id) in ids.iter().enumerate() {
                let cancel = if n % 3 == 0 {
                    "status = 'cancelled', "
                } else {
                    ""
                };
                let sql = format!(
                    "UPDATE orders SET {cancel}total_cents = total_cents + 1, \
                     updated_at = now() WHERE id = '{id}'"
                );
                execute(&mut conn, &sql).await;
            }
        })
    };
    drain(&env, "orders", entries).await;
    service.await.expect("the service's writer");

    #[derive(diesel::QueryableByName)]
    struct Total {
        #[diesel(sql_type = BigInt)]
        total_cents: i64,
    }
    for (n, id) in ids.iter().enumerate() {
        let want = if n % 3 == 0 { "cancelled" } else { "delivered" };
        assert_eq!(status(&mut conn, "orders", id).await.0, want, "{id} (#{n})");
        let total: Total =
            diesel::sql_query(format!("SELECT total_cents FROM orders WHERE id = '{id}'"))
                .get_result(&mut conn)
                .await
                .expect("total");
        assert_eq!(
            total.total_cents % 100,
            1,
            "{id}: the service's update kept"
        );
    }
    env.cleanup().await;
}
