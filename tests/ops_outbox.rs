//! `order-worker outbox`: an empty outbox; rows written by hand listed oldest first with their
//! steps, a held row with its reason (and `--held` keeping only it); the relay named when a
//! session holds its lock in this database and not when one holds it in another; a running
//! worker's relay found under the same lock; a schema without the outbox told to migrate.

mod support;

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use order_worker::ops::outbox;
use support::ops::{stderr, stdout};
use support::process::order_worker_output;
use support::{eventually, TestEnv};

/// The relay's leader lock (src/outbox/rows.rs `LEADER_LOCK`, "obox" in ASCII): 1868722040.
const RELAY_LOCK: i64 = 0x6f62_6f78;

const NOBODY_RELAYS: &str =
    "relay:           no replica relays now: status changes wait in the outbox";

/// `order-worker outbox <args>` on the test's database: its stdout, after checking it exited 0.
async fn outbox_text(env: &TestEnv, args: &[&str]) -> String {
    let args: Vec<&str> = ["outbox"].iter().chain(args).copied().collect();
    let output = env.order_worker(&args).await;
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

/// `order-worker outbox --json <args>`, parsed.
async fn outbox_json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
    serde_json::from_str(&outbox_text(env, &args).await).expect("JSON")
}

/// The lines of the rows table (after its header), each split into its columns.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    let table = text.lines().skip_while(|line| !line.starts_with("  id  "));
    table
        .skip(1)
        .map(|line| line.split("  ").map(str::trim).filter(|c| !c.is_empty()))
        .map(|cells| cells.map(str::to_owned).collect())
        .collect()
}

/// A connection of its own holding the relay's lock, as the leading replica's session does.
async fn hold_relay_lock(database_url: &str, application_name: &str) -> (AsyncPgConnection, i32) {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut conn = order_worker::connect_postgres(database_url.to_owned())
        .await
        .expect("PostgreSQL reachable");
    conn.batch_execute(&format!(
        "SET application_name = '{application_name}'; SELECT pg_advisory_lock({RELAY_LOCK})"
    ))
    .await
    .expect("take the relay's lock");
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut conn)
        .await
        .expect("backend pid")
        .pid;
    (conn, pid)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_outbox_shows_nothing_waiting_and_that_nobody_relays() {
    let env = TestEnv::new().await;
    let text = outbox_text(&env, &[]).await;
    assert!(
        text.starts_with("waiting:         0 (not published yet)\nheld:            0\n"),
        "{text}"
    );
    assert!(text.contains("oldest waiting:  -\n"), "{text}");
    assert!(text.contains(&format!("{NOBODY_RELAYS}\n")), "{text}");
    assert!(
        text.ends_with("oldest rows (0 shown of 0):\n  none\n"),
        "{text}"
    );

    let json = outbox_json(&env, &[]).await;
    assert_eq!(
        (&json["waiting"], &json["held"], &json["behind_held"]),
        (&0.into(), &0.into(), &0.into()),
        "{json}"
    );
    assert!(json["oldest_waiting_ms"].is_null(), "{json}");
    assert!(json["relay"].is_null(), "{json}");
    assert_eq!(json["rows"], serde_json::json!([]), "{json}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_are_listed_oldest_first_and_a_held_row_with_its_reason() {
    let env = TestEnv::new().await;
    let mut db = env.db().await;
    db.batch_execute(
        "INSERT INTO order_events_outbox (order_id, data, cause_topic, cause_entry_id) VALUES \
         ('o-1', '{\"old_status\": \"pending\", \"new_status\": \"confirmed\", \"reason\": \"PaymentConfirmed\"}', \
          'payment.confirmed', '1700000000000-0'), \
         ('o-2', '{\"old_status\": \"confirmed\", \"new_status\": \"processing\", \"reason\": \"FulfillmentPlanning\"}', \
          'fulfillment.status_changed', '1700000000001-0'), \
         ('o-2', '{\"old_status\": \"processing\", \"new_status\": \"shipped\", \"reason\": \"FulfillmentShipped\"}', \
          'fulfillment.status_changed', '1700000000002-0'), \
         ('o-3', '{\"old_status\": \"pending\", \"new_status\": \"failed\", \"reason\": \"PaymentFailed\"}', \
          'payment.failed', '1700000000003-0'); \
         UPDATE order_events_outbox SET created_at = created_at - (5 - id) * interval '1 minute'; \
         UPDATE order_events_outbox SET held_since = now(), held_reason = 'ERR too large for Redis' \
         WHERE order_id = 'o-2' AND data->>'new_status' = 'processing'",
    )
    .await
    .expect("rows written by hand");

    let text = outbox_text(&env, &[]).await;
    assert!(
        text.starts_with(
            "waiting:         3 (not published yet; 1 behind a held row)\nheld:            1 "
        ),
        "{text}"
    );
    assert!(text.contains("oldest waiting:  4m0"), "{text}");
    assert!(text.contains("oldest rows (4 shown of 4):\n"), "{text}");
    let rows = table_rows(&text);
    let seen: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row[1].as_str(),
                row[2].as_str(),
                row[3].as_str(),
                row[5].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "o-1",
                "pending → confirmed",
                "PaymentConfirmed",
                "payment.confirmed/1700000000000-0"
            ),
            (
                "o-2",
                "confirmed → processing",
                "FulfillmentPlanning",
                "fulfillment.status_changed/1700000000001-0"
            ),
            (
                "o-2",
                "processing → shipped",
                "FulfillmentShipped",
                "fulfillment.status_changed/1700000000002-0"
            ),
            (
                "o-3",
                "pending → failed",
                "PaymentFailed",
                "payment.failed/1700000000003-0"
            ),
        ],
        "{text}"
    );
    assert!(rows[0][4].starts_with("4m0"), "the oldest's age: {text}");
    let held_id = &rows[1][0];
    assert_eq!(
        rows[1].last().map(String::as_str),
        Some("ERR too large for Redis"),
        "{text}"
    );
    assert_eq!(
        rows[2].last().cloned(),
        Some(format!("(behind held row {held_id})")),
        "{text}"
    );

    let held = outbox_text(&env, &["--held"]).await;
    assert!(held.contains("held rows (1 shown of 1):\n"), "{held}");
    let rows = table_rows(&held);
    assert_eq!(rows.len(), 1, "{held}");
    assert_eq!(
        (&rows[0][0], rows[0][1].as_str()),
        (held_id, "o-2"),
        "{held}"
    );
    assert_eq!(
        rows[0].last().map(String::as_str),
        Some("ERR too large for Redis")
    );

    let limited = outbox_text(&env, &["--limit", "2"]).await;
    assert!(
        limited.contains("oldest rows (2 shown of 4):\n"),
        "{limited}"
    );
    assert_eq!(table_rows(&limited).len(), 2, "{limited}");

    let json = outbox_json(&env, &[]).await;
    assert_eq!(
        (&json["waiting"], &json["held"]),
        (&3.into(), &1.into()),
        "{json}"
    );
    let row = &json["rows"][1];
    assert_eq!(
        (
            &row["order_id"],
            &row["old_status"],
            &row["new_status"],
            &row["reason"]
        ),
        (
            &"o-2".into(),
            &"confirmed".into(),
            &"processing".into(),
            &"FulfillmentPlanning".into()
        ),
        "{json}"
    );
    assert_eq!(row["held_reason"], "ERR too large for Redis", "{json}");
    assert!(row["held_since"].is_string(), "{json}");
    assert_eq!(json["rows"][2]["waits_behind"], row["id"], "{json}");
    let json = outbox_json(&env, &["--held"]).await;
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["held_only"], true, "{json}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_is_the_session_holding_its_lock_in_this_database_only() {
    let env = TestEnv::new().await;
    // Advisory locks are per database: the same key held in another database of the server
    // (another install's relay) is not this outbox's relay.
    let elsewhere = TestEnv::unmigrated().await;
    let (other_db_holder, _) = hold_relay_lock(&elsewhere.database_url, "elsewhere").await;
    assert!(
        outbox_text(&env, &[]).await.contains(NOBODY_RELAYS),
        "a lock in another database counts"
    );
    // That other database has no outbox: the command says to migrate, and exits 1.
    let behind = env
        .order_worker_with(&["outbox"], &[("DATABASE_URL", &elsewhere.database_url)])
        .await;
    assert_eq!(behind.status.code(), Some(1), "{}", stderr(&behind));
    assert!(
        stderr(&behind).contains(
            "the database schema is behind this worker: it has no order_events_outbox table"
        ) && stderr(&behind).contains("run `order-worker migrate` first"),
        "{}",
        stderr(&behind)
    );

    let (holder, pid) = hold_relay_lock(&env.database_url, "relay-under-test").await;
    let text = outbox_text(&env, &[]).await;
    let relay = text
        .lines()
        .find(|line| line.starts_with("relay:"))
        .unwrap_or_default();
    assert!(
        relay.starts_with(&format!(
            "relay:           pid {pid} (relay-under-test), role "
        )) && relay.contains(", session started "),
        "{text}"
    );
    let json = outbox_json(&env, &[]).await;
    assert_eq!(json["relay"]["pid"], pid, "{json}");
    assert_eq!(
        json["relay"]["application_name"], "relay-under-test",
        "{json}"
    );
    assert!(json["relay"]["backend_start"].is_string(), "{json}");

    drop(holder);
    eventually("the lock is released with its session", async || {
        outbox_text(&env, &[]).await.contains(NOBODY_RELAYS)
    })
    .await;
    drop(other_db_holder);
    elsewhere.cleanup().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_workers_relay_is_found_under_the_lock_it_takes() {
    let env = TestEnv::new().await;
    let mut db = env.db().await;
    let worker = env.spawn_worker("w1").await;
    eventually("the worker's relay leads", async || {
        let seen = outbox::read(&mut db, 1, false).await.expect("outbox read");
        seen.relay.is_some()
    })
    .await;
    let text = outbox_text(&env, &[]).await;
    assert!(text.contains("relay:           pid "), "{text}");
    worker.stop().await;
    eventually("nobody relays once the worker stopped", async || {
        let seen = outbox::read(&mut db, 1, false).await.expect("outbox read");
        seen.relay.is_none()
    })
    .await;
    env.cleanup().await;
}

#[test]
fn outbox_offers_only_the_database_setting_and_never_shows_its_password() {
    let output = order_worker_output(
        &["outbox", "--help"],
        &[("DATABASE_URL", "postgres://app:hunter2@db:5432/orders")],
    );
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    for wanted in [
        "--database-url",
        "--limit",
        "--held",
        "--json",
        "no replica relays",
    ] {
        assert!(help.contains(wanted), "lacks {wanted}: {help}");
    }
    for unused in ["--redis-url", "--stream", "--group", "hunter2"] {
        assert!(!help.contains(unused), "shows {unused}: {help}");
    }
}
