//! Table-driven: every sample entry from `tests/fixtures` (Dapr's formats, version by version)
//! and every kind of undecodable entry, each with the exact error.

use super::*;
use serde_json::json;

const SAMPLES: &str = include_str!("../tests/fixtures/dapr-stream-entries.jsonl");
const LIMIT: usize = DEFAULT_MAX_ENTRY_BYTES;

/// A stream entry's field/value pairs, as `decode` takes them.
type Fields = Vec<(String, Vec<u8>)>;

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn event_json() -> Value {
    json!({"event_type": "fulfillment.status_changed", "fulfillment_id": "f1", "order_id": "o1",
           "old_status": "picking", "new_status": "picked", "timestamp": "2025-12-22T10:54:00Z"})
}

/// A CloudEvent entry carrying `payload` under `key` (`data` or `data_base64`).
fn cloud_event(key: &str, payload: Value) -> Fields {
    let mut envelope = json!({"id": "ce-1", "specversion": "1.0", "source": "fulfillment-service",
                              "type": "com.dapr.event.sent", "traceparent": "00-aa-bb-01", "traceid": "00-aa-bb-01"});
    envelope[key] = payload;
    fields(&[("data", &envelope.to_string()), ("metadata", "{}")])
}

fn event_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Fields {
    let mut event = event_json();
    if let Some(object) = event.as_object_mut() {
        change(object);
    }
    cloud_event("data", event)
}

#[test]
fn every_sample_decodes_to_the_same_event() {
    let mut lines = 0;
    for line in SAMPLES.lines().filter(|line| !line.trim().is_empty()) {
        lines += 1;
        let sample: Value = serde_json::from_str(line).expect("sample line is JSON");
        let what = sample["dapr"].as_str().unwrap_or("?");
        let entry: Vec<(String, Vec<u8>)> = sample["fields"]
            .as_object()
            .expect("fields object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().expect("string value").as_bytes().to_vec(),
                )
            })
            .collect();
        let event = decode(&entry, LIMIT).unwrap_or_else(|error| panic!("{what}: {error}"));
        assert_eq!(
            event.fulfillment_id, "f6c1d0aa-7a40-4b8e-8f3e-0b9a3c2d1e55",
            "{what}"
        );
        assert_eq!(
            event.order_id, "8a1f0c52-4d7e-4c1b-9a51-2b7f3f0d9e11",
            "{what}"
        );
        assert_eq!(event.new_status, FulfillmentStatus::Planning, "{what}");
        assert_eq!(event.old_status.as_deref(), Some("pending"), "{what}");
        if what.starts_with("rawPayload") {
            assert!(
                event.event_id.starts_with("raw-"),
                "{what}: {}",
                event.event_id
            );
            assert_eq!(event.traceparent, None, "{what}");
        } else {
            assert!(
                event
                    .event_id
                    .starts_with("3b0d8a63-6a0f-4a52-9c6b-1f7d2f1c0a0"),
                "{what}"
            );
            assert!(event.traceparent.is_some(), "{what}");
        }
    }
    assert_eq!(lines, 5, "every sample was checked");
}

#[test]
fn every_payload_shape_decodes() {
    let event = event_json();
    let base64 = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    let cases: Vec<(&str, Fields, &str)> = vec![
        ("data as object", cloud_event("data", event.clone()), "ce-1"),
        (
            "data as JSON string",
            cloud_event("data", Value::String(event.to_string())),
            "ce-1",
        ),
        (
            "data_base64",
            cloud_event("data_base64", Value::String(base64)),
            "ce-1",
        ),
        (
            "CloudEvent without metadata (Dapr < 1.13)",
            cloud_event("data", event.clone())[..1].to_vec(),
            "ce-1",
        ),
        (
            "raw payload flagged in metadata",
            fields(&[
                ("data", &event.to_string()),
                ("metadata", r#"{"rawPayload":"true"}"#),
            ]),
            "raw-",
        ),
        (
            "raw payload, no metadata",
            fields(&[("data", &event.to_string())]),
            "raw-",
        ),
        (
            "raw payload, unreadable metadata",
            fields(&[("data", &event.to_string()), ("metadata", "not json")]),
            "raw-",
        ),
    ];
    for (what, entry, id_prefix) in cases {
        let decoded = decode(&entry, LIMIT).unwrap_or_else(|error| panic!("{what}: {error}"));
        assert!(
            decoded.event_id.starts_with(id_prefix),
            "{what}: {}",
            decoded.event_id
        );
        assert_eq!(
            (
                decoded.fulfillment_id.as_str(),
                decoded.order_id.as_str(),
                decoded.new_status
            ),
            ("f1", "o1", FulfillmentStatus::Picked),
            "{what}"
        );
        assert_eq!(
            decoded.timestamp.as_deref(),
            Some("2025-12-22T10:54:00Z"),
            "{what}"
        );
    }
}

#[test]
fn the_raw_payload_key_is_stable_and_covers_its_three_inputs() {
    let key =
        |event: Value| decode(&fields(&[("data", &event.to_string())]), LIMIT).map(|e| e.event_id);
    let base = key(event_json()).expect("decodes");
    assert_eq!(
        key(event_json()).expect("decodes"),
        base,
        "same event, same key"
    );
    assert_eq!(base.len(), "raw-".len() + 64);
    let mut unrelated = event_json();
    unrelated["old_status"] = "packing".into();
    assert_eq!(
        key(unrelated).expect("decodes"),
        base,
        "old_status is not part of the key"
    );
    for (field, value) in [
        ("fulfillment_id", "f2"),
        ("new_status", "packed"),
        ("timestamp", "2025-12-22T10:55:00Z"),
    ] {
        let mut changed = event_json();
        changed[field] = value.into();
        assert_ne!(
            key(changed).expect("decodes"),
            base,
            "{field} changes the key"
        );
    }
}

#[test]
fn undecodable_entries_fail_with_a_specific_error() {
    let cases: Vec<(&str, Fields, DecodeError)> = vec![
        (
            "no data",
            fields(&[("metadata", "{}")]),
            DecodeError::NoData,
        ),
        (
            "not UTF-8",
            vec![("data".to_owned(), vec![0xff, 0xfe])],
            DecodeError::NotUtf8("data"),
        ),
        (
            "not JSON",
            fields(&[("data", "{oops")]),
            DecodeError::NotJson {
                field: "data",
                reason: "key must be a string at line 1 column 2".to_owned(),
            },
        ),
        (
            "JSON array",
            fields(&[("data", "[1]")]),
            DecodeError::NotObject("data"),
        ),
        (
            "CloudEvent without id",
            fields(&[("data", r#"{"specversion":"1.0","data":{}}"#)]),
            DecodeError::NoCloudEventId,
        ),
        (
            "CloudEvent without payload",
            fields(&[("data", r#"{"specversion":"1.0","id":"x"}"#)]),
            DecodeError::NoCloudEventData,
        ),
        (
            "data is a number",
            cloud_event("data", json!(7)),
            DecodeError::NotObject("data"),
        ),
        (
            "data string is not JSON",
            cloud_event("data", json!("plain text")),
            DecodeError::NotJson {
                field: "data",
                reason: "expected value at line 1 column 1".to_owned(),
            },
        ),
        (
            "bad base64",
            cloud_event("data_base64", json!("***")),
            DecodeError::BadBase64("Invalid symbol 42, offset 0.".to_owned()),
        ),
        (
            "no fulfillment_id",
            event_with(|e| drop(e.remove("fulfillment_id"))),
            DecodeError::MissingField("fulfillment_id"),
        ),
        (
            "no order_id",
            event_with(|e| drop(e.remove("order_id"))),
            DecodeError::MissingField("order_id"),
        ),
        (
            "no new_status",
            event_with(|e| drop(e.remove("new_status"))),
            DecodeError::MissingField("new_status"),
        ),
        (
            "empty order_id",
            event_with(|e| drop(e.insert("order_id".into(), json!("")))),
            DecodeError::MissingField("order_id"),
        ),
        (
            "numeric order_id",
            event_with(|e| drop(e.insert("order_id".into(), json!(42)))),
            DecodeError::NotAString("order_id"),
        ),
        (
            "unknown status",
            event_with(|e| drop(e.insert("new_status".into(), json!("teleported")))),
            DecodeError::UnknownStatus("teleported".to_owned()),
        ),
        (
            "another event type",
            event_with(|e| drop(e.insert("event_type".into(), json!("order.created")))),
            DecodeError::WrongEventType("order.created".to_owned()),
        ),
        (
            "NUL in an id",
            event_with(|e| drop(e.insert("order_id".into(), json!("o\u{0}1")))),
            DecodeError::NulCharacter("order_id"),
        ),
    ];
    for (what, entry, expected) in cases {
        assert_eq!(decode(&entry, LIMIT), Err(expected), "{what}");
    }
}

#[test]
fn the_size_limit_counts_every_field() {
    let entry = cloud_event("data", event_json());
    let size: usize = entry.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(decode(&entry, size).is_ok(), "exactly at the limit is fine");
    assert_eq!(
        decode(&entry, size - 1),
        Err(DecodeError::TooLarge {
            size,
            limit: size - 1
        })
    );
}

#[test]
fn errors_read_as_operators_need_them() {
    let cases = [
        (DecodeError::NoData, "entry has no `data` field"),
        (
            DecodeError::TooLarge {
                size: 1_048_577,
                limit: 1_048_576,
            },
            "entry is 1048577 bytes, over the 1048576-byte limit",
        ),
        (
            DecodeError::UnknownStatus("teleported".to_owned()),
            "`new_status` \"teleported\" is not a known fulfillment status",
        ),
        (
            DecodeError::MissingField("order_id"),
            "event has no `order_id`",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}
