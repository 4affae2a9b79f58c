//! `order-worker replay`: a range runs through decode → apply again, idempotently (already
//! applied events come back `duplicate`), a dry run writes nothing, and `--order-id` and
//! RFC 3339 bounds select the right entries. `--dead-letter` is in `replay_dead_letter.rs`.

mod support;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use order_worker::ops::replay::{self, Counts, RangeRequest, ReplayReport};
use order_worker::schema::{order_fulfillments, order_status_history, orders, processed_events};
use order_worker::FulfillmentStatus::{self, *};
use order_worker::StreamId;
use order_worker::{TableName, Tables};
use order_worker_dev::publisher::{self, Format};
use support::ops::{stderr, stdout};
use support::TestEnv;

/// Every row count the apply path writes to: inbox, history, fulfillments, orders.
async fn row_counts(env: &TestEnv) -> [i64; 4] {
    let mut conn = env.db().await;
    [
        processed_events::table
            .count()
            .get_result(&mut conn)
            .await
            .expect("count"),
        order_status_history::table
            .count()
            .get_result(&mut conn)
            .await
            .expect("count"),
        order_fulfillments::table
            .count()
            .get_result(&mut conn)
            .await
            .expect("count"),
        orders::table
            .count()
            .get_result(&mut conn)
            .await
            .expect("count"),
    ]
}

type OrderRow = (
    String,
    String,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
);

/// Every order as stored, `updated_at` included: a write that changes nothing still shows.
async fn orders_snapshot(env: &TestEnv) -> Vec<OrderRow> {
    orders::table
        .select((
            orders::id,
            orders::status,
            orders::fulfillment_status,
            orders::updated_at,
        ))
        .order(orders::id)
        .load(&mut env.db().await)
        .await
        .expect("orders")
}

/// Replays the test's whole stream (or `from..=to`) through the library, as the command does.
async fn replay_lib(
    env: &TestEnv,
    from: StreamId,
    to: StreamId,
    order_id: Option<&str>,
    page_size: usize,
    dry_run: bool,
) -> ReplayReport {
    let mut pg = order_worker::connect_postgres(env.database_url.clone())
        .await
        .expect("connect");
    let tables = Tables::inspect(&mut pg, &TableName::default())
        .await
        .expect("the tables");
    let request = RangeRequest {
        topic: order_worker::topic("fulfillment.status_changed").expect("topic"),
        stream: &env.stream.stream,
        from,
        to,
        order_id,
        max_entry_bytes: order_worker::DEFAULT_MAX_ENTRY_BYTES,
        page_size,
        tables: &tables,
    };
    replay::replay_range(&mut env.redis.clone(), &mut pg, &request, dry_run)
        .await
        .expect("replay")
}

/// XADDs a CloudEvent for `order` at the explicit id `id`; returns the id.
async fn publish_at(env: &TestEnv, id: &str, order: &str, status: FulfillmentStatus) -> String {
    let event = publisher::event(
        order,
        &format!("f-{order}"),
        None,
        status,
        "2023-11-14T22:13:20Z",
    );
    let event_id = uuid::Uuid::new_v4().to_string();
    let fields = publisher::entry_fields(&env.stream.stream, &event, &event_id, Format::CloudEvent);
    redis::cmd("XADD")
        .arg(&env.stream.stream)
        .arg(id)
        .arg(&fields)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XADD")
}

/// The number in the `name` row of the text summary table.
fn summary_count(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        match cells.as_slice() {
            [first, count] if *first == name => count.parse().ok(),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_a_processed_range_reports_every_event_duplicate_and_changes_nothing() {
    let env = TestEnv::new().await;
    let (orders, published) = env.seed_lifecycles(20).await;
    let mut worker = env.spawn_worker("w1").await;
    worker.wait_consumed(published).await;
    worker.stop().await;
    env.assert_all_delivered(&orders).await;
    let (history, snapshot, rows) = (
        env.history_count().await,
        orders_snapshot(&env).await,
        row_counts(&env).await,
    );

    // As an operator does, through the binary; small pages would not change a thing, so the
    // library run below uses them to cross page boundaries.
    let output = env.order_worker(&["replay", "--from", "0"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(summary_count(&text, "duplicate"), Some(published), "{text}");
    for other in [
        "applied",
        "stale",
        "ignored",
        "unknown_order",
        "rejected",
        "undecodable",
    ] {
        assert_eq!(summary_count(&text, other), Some(0), "{other}: {text}");
    }
    assert!(text.contains("order transitions written: none"), "{text}");

    let report = replay_lib(&env, StreamId::MIN, StreamId::MAX, None, 7, false).await;
    let expected = Counts {
        duplicate: published,
        ..Counts::default()
    };
    assert_eq!((report.read, &report.counts), (published, &expected));
    assert!(report.transitions.is_empty() && report.problems.is_empty());

    assert_eq!(env.history_count().await, history);
    assert_eq!(orders_snapshot(&env).await, snapshot);
    assert_eq!(row_counts(&env).await, rows);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_writes_nothing_yet_reports_what_a_replay_then_does() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    env.publish_lifecycle("o1", "f1", &[Planning, Shipped])
        .await;
    env.publish("ghost", "f9", Planning, Format::CloudEvent)
        .await;
    let poison = env
        .xadd(&[("data".to_owned(), "{not json".to_owned())])
        .await;
    env.publish_lifecycle("o2", "f2", &[Planning]).await;
    let before = (row_counts(&env).await, orders_snapshot(&env).await);

    // Pages of 2: o1's Shipped (page 1) must see its Planning (page 0) of the same dry run.
    let dry = replay_lib(&env, StreamId::MIN, StreamId::MAX, None, 2, true).await;
    let expected = Counts {
        applied: 3,
        unknown_order: 1,
        undecodable: 1,
        ..Counts::default()
    };
    assert_eq!((dry.read, dry.replayed, &dry.counts), (5, 4, &expected));
    let moves: Vec<(&str, &str, &str)> = dry
        .transitions
        .iter()
        .map(|t| (t.order_id.as_str(), t.from.as_str(), t.to.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            ("o1", "confirmed", "processing"),
            ("o1", "processing", "shipped"),
            ("o2", "confirmed", "processing")
        ]
    );
    let problems: Vec<(&str, Option<&str>)> = dry
        .problems
        .iter()
        .map(|p| (p.outcome, p.order_id.as_deref()))
        .collect();
    assert_eq!(
        problems,
        [("unknown_order", Some("ghost")), ("undecodable", None)]
    );
    assert_eq!(dry.problems[0].reason, "order \"ghost\" does not exist");
    assert_eq!(dry.problems[1].entry_id, poison);
    assert_eq!(
        (row_counts(&env).await, orders_snapshot(&env).await),
        before,
        "a dry run writes nothing"
    );

    // The binary's dry run says so, and writes nothing either.
    let output = env
        .order_worker(&["replay", "--from", "0", "--dry-run"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("order transitions would write: 3"), "{text}");
    let publishes = "status changes would publish on orders.order.status_changed: 3";
    assert!(text.contains(publishes), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(row_counts(&env).await, before.0);
    assert_eq!(env.outbox_rows().await, 0, "a dry run publishes nothing");

    // The real replay does what the dry run said, and a second one is all duplicates.
    let done = replay_lib(&env, StreamId::MIN, StreamId::MAX, None, 2, false).await;
    assert_eq!(
        (&done.counts, &done.transitions),
        (&dry.counts, &dry.transitions)
    );
    assert_eq!(env.order_status("o1").await, "shipped");
    assert_eq!(env.order_status("o2").await, "processing");
    assert_eq!(env.history_count().await, 3);
    // Its status changes wait in the outbox for the workers' relay; a replay of duplicates
    // adds none.
    assert_eq!((done.published, env.outbox_rows().await), (3, 3));
    let again = replay_lib(&env, StreamId::MIN, StreamId::MAX, None, 500, false).await;
    assert_eq!((again.published, env.outbox_rows().await), (0, 3));
    let expected = Counts {
        duplicate: 3,
        unknown_order: 1,
        undecodable: 1,
        ..Counts::default()
    };
    assert_eq!(again.counts, expected);
    assert_eq!(env.history_count().await, 3);
    assert!(
        env.dead_letters().await.is_empty(),
        "replay never dead-letters"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn order_id_and_rfc3339_bounds_select_the_right_entries() {
    let env = TestEnv::new().await;
    // 2023-11-14T22:13:20Z is 1700000000000 ms. No orders exist, so every replayed event is
    // listed (unknown_order) with its entry id, which shows exactly what was selected.
    let at_20 = publish_at(&env, "1700000000000-0", "o1", Planning).await;
    let at_21 = publish_at(&env, "1700000001000-0", "o1", Picking).await;
    let at_21_o2 = publish_at(&env, "1700000001000-1", "o2", Planning).await;
    let at_22 = publish_at(&env, "1700000002000-0", "o1", Picked).await;
    let at_22_o2 = publish_at(&env, "1700000002000-5", "o2", Picking).await;
    let at_23 = publish_at(&env, "1700000003000-0", "o1", Packing).await;

    let selected = |report: &ReplayReport| -> Vec<String> {
        report.problems.iter().map(|p| p.entry_id.clone()).collect()
    };
    let parse = |raw: &str| order_worker::parse_boundary(raw).expect("from");
    let parse_to = |raw: &str| replay::parse_to(raw).expect("to");

    // `--to` as a time takes its whole millisecond (both entries of 22 s).
    let report = replay_lib(
        &env,
        parse("2023-11-14T22:13:21Z"),
        parse_to("2023-11-14T22:13:22Z"),
        None,
        500,
        true,
    )
    .await;
    assert_eq!(
        selected(&report),
        [at_21.clone(), at_21_o2.clone(), at_22, at_22_o2.clone()]
    );

    let report = replay_lib(
        &env,
        parse("2023-11-14T23:13:20.500+01:00"),
        parse_to("2023-11-14T22:13:21.999Z"),
        Some("o1"),
        1,
        true,
    )
    .await;
    assert_eq!(selected(&report), [at_21]);
    assert_eq!(report.read, 2, "o2's entry was read, then filtered out");

    // The same through the binary, as JSON; without --to the range runs to the end.
    let output = env
        .order_worker(&[
            "replay",
            "--from",
            "2023-11-14T22:13:20Z",
            "--order-id",
            "o2",
            "--json",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let ids: Vec<&str> = json["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["entry_id"].as_str())
        .collect();
    assert_eq!(ids, [at_21_o2.as_str(), at_22_o2.as_str()], "{json}");
    assert_eq!(json["counts"]["unknown_order"], 2, "{json}");
    let whole = replay_lib(&env, StreamId::MIN, StreamId::MAX, None, 500, true).await;
    let whole = selected(&whole);
    assert_eq!((whole.len(), &whole[0], &whole[5]), (6, &at_20, &at_23));

    let reversed = env
        .order_worker(&[
            "replay",
            "--from",
            "2023-11-14T22:13:22Z",
            "--to",
            "1700000001000-0",
        ])
        .await;
    assert_eq!(reversed.status.code(), Some(1), "{}", stderr(&reversed));
    assert!(
        stderr(&reversed).contains("is before --from"),
        "{}",
        stderr(&reversed)
    );
    let bad = env.order_worker(&["replay", "--from", "yesterday"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
    env.cleanup().await;
}
