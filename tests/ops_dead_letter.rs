//! `order-worker dead-letter list|show|purge` on a dead-letter stream filled through the
//! worker's own settle path (and older entries written with explicit ids): purge --before
//! removes only older ones, a dry run removes nothing.

mod support;

use order_worker::ops::dead_letter::{self, DeadLetterSummary};
use order_worker::parse_boundary;
use order_worker::{settle, DeadLetter, Settlement, StreamEntry};
use support::ops::{id, stderr, stdout};
use support::TestEnv;

/// XADDs an entry whose `data` is `bytes` to the test's stream.
async fn add_raw(env: &TestEnv, bytes: &[u8]) -> StreamEntry {
    let fields = vec![("data".to_owned(), bytes.to_vec())];
    let id: String = redis::cmd("XADD")
        .arg(&env.stream.stream)
        .arg("*")
        .arg(&fields)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XADD");
    StreamEntry {
        source: 0,
        id,
        fields,
    }
}

/// Dead-letters `entries` as the worker does, as consumer `w1`.
async fn dead_letter(env: &TestEnv, entries: &[StreamEntry], error: &str) {
    let dead: Vec<DeadLetter<'_>> = entries
        .iter()
        .map(|entry| DeadLetter {
            entry,
            error: error.to_owned(),
            delivery_count: 2,
        })
        .collect();
    let settlement = Settlement {
        stream: &env.stream,
        ack_ids: Vec::new(),
        dead,
    };
    settle(&mut env.redis.clone(), "w1", &settlement)
        .await
        .expect("settle");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_shown_and_purged_by_age_only_below_the_boundary() {
    let env = TestEnv::new().await;
    let dead_stream = env.stream.dead_letter_stream();
    let mut conn = env.redis.clone();
    // Two written in 2023, by an older run.
    for seq in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg(&dead_stream)
            .arg(format!("1700000000000-{seq}"))
            .arg(&[
                ("data", "{not json"),
                ("error", "`data` is not JSON"),
                ("source_id", "1-1"),
            ])
            .arg(&[("delivery_count", "1")])
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    // Three now, read by the worker's group and dead-lettered through the worker's own settle
    // path (one not even UTF-8).
    let mut poison = Vec::new();
    for data in [&b"{x"[..], b"{y", &[0xff, 0xfe]] {
        poison.push(add_raw(&env, data).await);
    }
    env.create_group(&env.stream.group).await;
    assert_eq!(env.read_as(&env.stream.group, "w1", 10).await.len(), 3);
    dead_letter(&env, &poison, "`data` is not JSON: expected value").await;
    assert_eq!(env.pending().await, 0, "settle acked them");

    let (total, letters) = dead_letter::list(&mut conn, &dead_stream, 100)
        .await
        .expect("list");
    assert_eq!(total, 5);
    let source_ids: Vec<Option<&str>> = letters.iter().map(|l| l.source_id.as_deref()).collect();
    let expected: Vec<Option<&str>> = ["1-1", "1-1", &poison[0].id, &poison[1].id, &poison[2].id]
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(source_ids, expected);
    assert_eq!(letters[2].delivery_count, Some(2));
    assert!(letters[0].age_ms > 365 * 24 * 3_600_000, "{:?}", letters[0]);
    assert!(letters[4].age_ms < 3_600_000, "{:?}", letters[4]);

    let shown = dead_letter::show(&mut conn, &dead_stream, id(&letters[4].id))
        .await
        .expect("show");
    for (field, value) in [
        ("data", "\\xff\\xfe"),
        ("error", "`data` is not JSON: expected value"),
        ("source_stream", env.stream.stream.as_str()),
        ("source_id", poison[2].id.as_str()),
        ("group", env.stream.group.as_str()),
        ("consumer", "w1"),
        ("delivery_count", "2"),
    ] {
        assert_eq!(
            shown.fields.get(field).map(String::as_str),
            Some(value),
            "{field}: {shown:?}"
        );
    }
    let error = dead_letter::show(&mut conn, &dead_stream, id("1-0"))
        .await
        .expect_err("none");
    assert!(error.to_string().contains("no dead letter 1-0"), "{error}");

    // By time: only the two from 2023.
    let before_2024 = parse_boundary("2024-01-01T00:00:00Z").expect("time");
    let dry = dead_letter::purge(&mut conn, &dead_stream, before_2024, true)
        .await
        .expect("dry run");
    assert_eq!((dry.matched, dry.deleted, dry.oldest.len()), (2, None, 2));
    assert_eq!(list_ids(&env).await.len(), 5, "a dry run deletes nothing");
    let done = dead_letter::purge(&mut conn, &dead_stream, before_2024, false)
        .await
        .expect("purge");
    assert_eq!(done.deleted, Some(2));
    assert_eq!(list_ids(&env).await, letter_ids(&letters[2..]));

    // By id, as the binary: the boundary itself stays.
    let boundary = letters[4].id.as_str();
    let dry = env
        .order_worker(&["dead-letter", "purge", "--before", boundary, "--dry-run"])
        .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains("dry run: would delete 2, 1 would stay"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(list_ids(&env).await.len(), 3);
    let done = env
        .order_worker(&["dead-letter", "purge", "--before", boundary])
        .await;
    assert!(
        stdout(&done).contains("deleted 2; 1 stay"),
        "{}",
        stdout(&done)
    );
    assert_eq!(list_ids(&env).await, [boundary]);

    let future = env
        .order_worker(&["dead-letter", "purge", "--before", "2999-01-01T00:00:00Z"])
        .await;
    assert_eq!(future.status.code(), Some(1));
    assert!(
        stderr(&future).contains("in the future"),
        "{}",
        stderr(&future)
    );
    assert_eq!(list_ids(&env).await, [boundary]);

    let listed = env.order_worker(&["dead-letter", "list", "--json"]).await;
    let parsed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(parsed[0]["source_id"], poison[2].id.as_str(), "{parsed}");
    let shown = env.order_worker(&["dead-letter", "show", boundary]).await;
    assert!(
        stdout(&shown).contains(&format!("source_id       {}", poison[2].id)),
        "{}",
        stdout(&shown)
    );
    env.cleanup().await;
}

fn letter_ids(letters: &[DeadLetterSummary]) -> Vec<String> {
    letters.iter().map(|letter| letter.id.clone()).collect()
}

async fn list_ids(env: &TestEnv) -> Vec<String> {
    let (_, letters) = dead_letter::list(
        &mut env.redis.clone(),
        &env.stream.dead_letter_stream(),
        100,
    )
    .await
    .expect("list");
    letter_ids(&letters)
}
