//! Every kind of entry that can never apply lands in the dead-letter stream with its original
//! fields and the reason, is acked, and does not hold up the good events around it.

mod support;

use order_worker::FulfillmentStatus::*;
use order_worker_dev::publisher::{self, Format};
use support::TestEnv;

/// A stream entry's field/value pairs, as raw bytes.
type Fields = Vec<(String, Vec<u8>)>;

/// (what, fields, a phrase the `error` must contain)
fn poison(stream: &str) -> Vec<(&'static str, Fields, &'static str)> {
    let text = |pairs: &[(&str, &str)]| -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let envelope = |event: serde_json::Value| {
        let fields = publisher::entry_fields(stream, &event, "ce-bad", Format::CloudEvent);
        fields
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect::<Vec<_>>()
    };
    let good = publisher::event("o1", "f1", None, Planning, "2025-12-22T10:54:00Z");
    let mut no_order = good.clone();
    no_order
        .as_object_mut()
        .map(|event| event.remove("order_id"));
    let mut bad_status = good.clone();
    bad_status["new_status"] = "teleported".into();
    vec![
        ("no data field", text(&[("metadata", "{}")]), "data"),
        (
            "not UTF-8",
            vec![("data".to_owned(), vec![0xff, 0xfe, 0x00])],
            "UTF-8",
        ),
        ("not JSON", text(&[("data", "{not json")]), "JSON"),
        ("missing order_id", envelope(no_order), "order_id"),
        ("unknown status", envelope(bad_status), "teleported"),
        ("too large", text(&[("data", &"x".repeat(5_000))]), "limit"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_undecodable_entry_is_dead_lettered_with_its_reason_and_acked() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    let cases = poison(&env.stream.stream);
    let mut poison_ids = Vec::new();
    env.publish("o1", "f1", Planning, Format::CloudEvent).await;
    for (_, fields, _) in &cases {
        let id: String = redis::cmd("XADD")
            .arg(&env.stream.stream)
            .arg("*")
            .arg(fields)
            .query_async(&mut env.redis.clone())
            .await
            .expect("XADD");
        poison_ids.push(id);
    }
    // A fulfillment already recorded for another order: decodes, but can never apply.
    env.publish("o2", "f1", Packing, Format::CloudEvent).await;
    env.publish("o1", "f1", Shipped, Format::CloudEvent).await;

    let mut config = env.config("w1");
    config.max_entry_bytes = 4_096;
    let mut worker = env.spawn_worker_with(config).await;
    let total = cases.len() as u64 + 3;
    let progress = worker.wait_consumed(total).await;
    worker.stop().await;

    assert_eq!(
        progress.applied, 2,
        "the good events around the poison apply: {progress:?}"
    );
    assert_eq!(
        progress.dead_lettered,
        cases.len() as u64 + 1,
        "{progress:?}"
    );
    assert_eq!(env.order_status("o1").await, "shipped");
    assert_eq!(env.order_status("o2").await, "confirmed");
    assert_eq!(env.pending().await, 0, "dead-lettered entries are acked");

    let letters = env.dead_letters().await;
    let raw = env.raw_entries_of(&env.stream.dead_letter_stream()).await;
    assert_eq!(letters.len(), cases.len() + 1, "each lands exactly once");
    for (((what, fields, phrase), (letter, id)), (_, kept)) in
        cases.iter().zip(letters.iter().zip(&poison_ids)).zip(&raw)
    {
        let error = &letter["error"];
        assert!(
            error.contains(phrase),
            "{what}: error {error:?} should mention {phrase:?}"
        );
        assert_eq!(&letter["source_id"], id, "{what}");
        assert_eq!(letter["source_stream"], env.stream.stream, "{what}");
        assert_eq!(letter["group"], env.stream.group, "{what}");
        assert_eq!(letter["consumer"], "w1", "{what}");
        // Byte for byte, the non-UTF-8 field too.
        for (field, value) in fields {
            let original = kept.iter().find(|(name, _)| name == field);
            assert_eq!(
                original.map(|(_, bytes)| bytes),
                Some(value),
                "{what}: original {field}"
            );
        }
    }
    let rejected = &letters[cases.len()]["error"];
    assert!(rejected.contains("belongs to order"), "{rejected}");
    env.cleanup().await;
}
