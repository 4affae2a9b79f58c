//! Table-driven: the sample entries (what Dapr writes, version by version and content type by
//! content type), every payload shape, the raw payload key, and every kind of undecodable entry
//! with its exact error.

use super::*;
use crate::envelope::{DEFAULT_MAX_ENTRY_BYTES, *};
use base64::Engine;
use serde_json::{json, Value};

const SAMPLES: &str = include_str!("../../tests/fixtures/dapr-stream-entries.jsonl");
const LIMIT: usize = DEFAULT_MAX_ENTRY_BYTES;
const TIMESTAMP: &str = "2025-12-22T10:54:00Z";
const TRACE: &str = "00-71d2d08ddb7e4d40950fd624e754a6e9-65dbac13134d4e37-01";

/// A stream entry's field/value pairs, as `decode` takes them.
type Fields = Vec<(String, Vec<u8>)>;

/// A decoded fulfillment event, flat: the envelope's part and the event's, to compare whole.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flat {
    event_id: String,
    fulfillment_id: String,
    order_id: String,
    new_status: FulfillmentStatus,
    old_status: Option<String>,
    timestamp: Option<String>,
    trace: TraceContext,
}

/// Decodes an entry of the fulfillment stream, flattened.
fn decode(fields: &[(String, Vec<u8>)], limit: usize) -> Result<Flat, DecodeError> {
    decode_ids(fields, limit, OrderIds::Text)
}

fn decode_ids(
    fields: &[(String, Vec<u8>)],
    limit: usize,
    order_ids: OrderIds,
) -> Result<Flat, DecodeError> {
    let event = super::decode(&fulfillment::STATUS_CHANGED, fields, limit, order_ids)?;
    let f = event
        .change
        .as_any()
        .downcast_ref::<FulfillmentEvent>()
        .expect("a fulfillment event")
        .clone();
    Ok(Flat {
        event_id: event.event_id,
        fulfillment_id: f.fulfillment_id,
        order_id: f.order_id,
        new_status: f.new_status,
        old_status: f.old_status,
        timestamp: f.timestamp,
        trace: event.trace,
    })
}

fn entry(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect()
}

/// The fulfillment service's event, with a field it adds that the worker does not read.
fn event() -> Value {
    json!({"event_type": "fulfillment.status_changed", "fulfillment_id": "f1", "order_id": "o1",
           "old_status": "picking", "new_status": "picked", "timestamp": TIMESTAMP,
           "metadata": {"warehouse_id": "wh-1"}})
}

fn event_with(field: &str, value: Value) -> Value {
    let mut event = event();
    event[field] = value;
    event
}

fn event_without(field: &str) -> Value {
    let mut event = event();
    event.as_object_mut().map(|object| object.remove(field));
    event
}

/// A CloudEvent as Dapr ≥ 1.13 publishes it, with the payload under `key`.
fn cloud_event(key: &str, payload: Value) -> Fields {
    entry(&[
        ("data", &envelope(key, payload).to_string()),
        ("metadata", "{}"),
    ])
}

fn envelope(key: &str, payload: Value) -> Value {
    let mut envelope = json!({"id": "ce-1", "specversion": "1.0", "source": "fulfillment-service",
        "type": "com.dapr.event.sent", "datacontenttype": "application/json",
        "topic": "fulfillment.status_changed", "pubsubname": "pubsub-redis",
        "traceparent": TRACE, "traceid": TRACE, "tracestate": ""});
    envelope[key] = payload;
    envelope
}

fn base64(bytes: impl AsRef<[u8]>) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// What `event()` decodes to.
fn decoded(event_id: &str, trace: Option<&str>) -> Flat {
    Flat {
        event_id: event_id.to_owned(),
        fulfillment_id: "f1".to_owned(),
        order_id: "o1".to_owned(),
        new_status: FulfillmentStatus::Picked,
        old_status: Some("picking".to_owned()),
        timestamp: Some(TIMESTAMP.to_owned()),
        trace: TraceContext {
            traceparent: trace.map(str::to_owned),
            tracestate: None,
        },
    }
}

/// sha256("f1\0picked\02025-12-22T10:54:00Z"), computed outside Rust (`sha256sum`).
const RAW_ID: &str = "raw-80acafb0a0de7718b4cc1b702983c5d540f09cfa68f3b51007067c76e805cf78";

/// The entries of a fixture (JSON lines): each one's labels (`dapr`, …) and its fields.
fn samples(jsonl: &str) -> Vec<(Value, Fields)> {
    jsonl
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let sample: Value = serde_json::from_str(line).expect("sample line is JSON");
            let fields = sample["fields"]
                .as_object()
                .expect("`fields` object")
                .iter()
                .map(|(name, value)| {
                    let value = value.as_str().expect("field values are strings");
                    (name.clone(), value.as_bytes().to_vec())
                })
                .collect();
            (sample, fields)
        })
        .collect()
}

#[test]
fn every_sample_entry_decodes_to_its_event() {
    let trace = |id: &str| Some(format!("00-{id}-01"));
    // (event_id, traceparent = traceid), in the samples file's order.
    let expected = [
        (
            "3b0d8a63-6a0f-4a52-9c6b-1f7d2f1c0a01",
            trace("71d2d08ddb7e4d40950fd624e754a6e9-65dbac13134d4e37"),
        ),
        (
            "3b0d8a63-6a0f-4a52-9c6b-1f7d2f1c0a02",
            trace("eb456e5d6d254924a048f78bc2e64509-1ed913eede5f49b5"),
        ),
        // sha256("f6c1…1e55\0planning\02025-12-22T10:54:00Z"), computed with `sha256sum`.
        (
            "raw-63b854384f7d44b82141efcd2f9b83e0b5e57057467935cb1d736ebb25d4c8d5",
            None,
        ),
        (
            "3b0d8a63-6a0f-4a52-9c6b-1f7d2f1c0a03",
            trace("cfda044da02346bbbb9a0627b73f3980-d71efdf889024df4"),
        ),
        (
            "3b0d8a63-6a0f-4a52-9c6b-1f7d2f1c0a04",
            trace("5eb6b9c2d2344fc08a93d6ec160c758d-fb675e6752d842fa"),
        ),
    ];
    let samples = samples(SAMPLES);
    assert_eq!(samples.len(), expected.len(), "one expectation per sample");
    for ((sample, mut fields), (event_id, trace)) in samples.into_iter().zip(expected) {
        let what = &sample["dapr"];
        let want = Flat {
            event_id: event_id.to_owned(),
            fulfillment_id: "f6c1d0aa-7a40-4b8e-8f3e-0b9a3c2d1e55".to_owned(),
            order_id: "8a1f0c52-4d7e-4c1b-9a51-2b7f3f0d9e11".to_owned(),
            new_status: FulfillmentStatus::Planning,
            old_status: Some("pending".to_owned()),
            timestamp: Some(TIMESTAMP.to_owned()),
            trace: TraceContext {
                traceparent: trace,
                tracestate: None,
            },
        };
        assert_eq!(decode(&fields, LIMIT), Ok(want.clone()), "{what}");
        fields.reverse();
        assert_eq!(decode(&fields, LIMIT), Ok(want), "{what}, fields reversed");
    }
}

#[test]
fn every_payload_shape_decodes() {
    let raw = event().to_string();
    let cases: Vec<(&str, Fields, Flat)> = vec![
        (
            "data as an object, metadata {}",
            cloud_event("data", event()),
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "data as an object, no metadata (Dapr < 1.13)",
            entry(&[("data", &envelope("data", event()).to_string())]),
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "data as a JSON string (text/plain)",
            cloud_event("data", Value::String(raw.clone())),
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "data_base64 (application/octet-stream)",
            cloud_event("data_base64", base64(&raw)),
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "data null, data_base64 set",
            {
                let mut envelope = envelope("data_base64", base64(&raw));
                envelope["data"] = Value::Null;
                entry(&[("data", &envelope.to_string())])
            },
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "CloudEvent, metadata not JSON: ignored",
            entry(&[
                ("data", &envelope("data", event()).to_string()),
                ("metadata", "{oops"),
            ]),
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "CloudEvent, rawPayload false",
            entry(&[
                ("data", &envelope("data", event()).to_string()),
                ("metadata", r#"{"rawPayload":"false"}"#),
            ]),
            decoded("ce-1", Some(TRACE)),
        ),
        (
            "CloudEvent with empty and malformed trace context: dropped",
            {
                let mut envelope = envelope("data", event());
                envelope["traceparent"] = json!("");
                envelope["traceid"] = json!(7);
                entry(&[("data", &envelope.to_string())])
            },
            decoded("ce-1", None),
        ),
        (
            "CloudEvent of an older Dapr, with traceid only, and a tracestate: both kept",
            {
                let mut envelope = envelope("data", event());
                envelope
                    .as_object_mut()
                    .expect("object")
                    .remove("traceparent");
                envelope["tracestate"] = json!("congo=t61rcWkgMzE");
                entry(&[("data", &envelope.to_string())])
            },
            Flat {
                trace: TraceContext {
                    traceparent: Some(TRACE.to_owned()),
                    tracestate: Some("congo=t61rcWkgMzE".to_owned()),
                },
                ..decoded("ce-1", None)
            },
        ),
        (
            "raw payload, rawPayload true",
            entry(&[("data", &raw), ("metadata", r#"{"rawPayload":"true"}"#)]),
            decoded(RAW_ID, None),
        ),
        (
            "raw payload, rawPayload True (Go's ParseBool) among other metadata",
            entry(&[
                (
                    "metadata",
                    r#"{"contentType":"application/json","rawPayload":"True"}"#,
                ),
                ("data", &raw),
            ]),
            decoded(RAW_ID, None),
        ),
        (
            "plain event JSON, no metadata",
            entry(&[("data", &raw)]),
            decoded(RAW_ID, None),
        ),
        (
            "plain event JSON, metadata not JSON",
            entry(&[("data", &raw), ("metadata", "not json")]),
            decoded(RAW_ID, None),
        ),
        (
            "plain event without event_type, old_status null, unknown fields",
            entry(&[(
                "data",
                &json!({"fulfillment_id": "f1", "order_id": "o1", "new_status": "picked",
                        "old_status": null, "timestamp": TIMESTAMP, "extra": [1, 2]})
                .to_string(),
            )]),
            Flat {
                old_status: None,
                ..decoded(RAW_ID, None)
            },
        ),
        (
            "ids are arbitrary strings",
            entry(&[(
                "data",
                &event_with("order_id", json!("ORD-42/é ✓")).to_string(),
            )]),
            Flat {
                order_id: "ORD-42/é ✓".to_owned(),
                ..decoded(RAW_ID, None)
            },
        ),
    ];
    for (what, fields, expected) in cases {
        assert_eq!(decode(&fields, LIMIT), Ok(expected), "{what}");
    }
}

#[test]
fn the_raw_payload_key_is_stable_and_covers_its_three_inputs() {
    let key = |event: Value| {
        decode(&entry(&[("data", &event.to_string())]), LIMIT)
            .map(|event| event.event_id)
            .expect("decodes")
    };
    assert_eq!(key(event()), RAW_ID, "the same in every process and run");
    assert_eq!(key(event()), key(event()));
    for (field, value) in [
        ("fulfillment_id", json!("f2")),
        ("new_status", json!("packed")),
        ("timestamp", json!("2025-12-22T10:54:01Z")),
    ] {
        assert_ne!(
            key(event_with(field, value)),
            RAW_ID,
            "{field} is in the key"
        );
    }
    for (field, value) in [
        ("order_id", json!("o2")),
        ("old_status", json!("planning")),
        ("metadata", json!({})),
    ] {
        assert_eq!(key(event_with(field, value)), RAW_ID, "{field} is not");
    }
    assert_eq!(
        key(event_without("timestamp")),
        key(event_with("timestamp", json!(""))),
        "an absent timestamp counts as empty"
    );
}

// In files of their own: undecodable entries, and the publishers' structs with every field.
mod errors;
mod vectors;

/// With a UUID `orders.id`, every usual spelling of a UUID names one order, written as
/// PostgreSQL writes it; anything else is not an order that can exist.
#[test]
fn a_uuid_order_id_is_checked_and_written_as_postgresql_writes_it() {
    const CANONICAL: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let accepted = [
        CANONICAL,
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ];
    for spelling in accepted {
        let fields = cloud_event("data", event_with("order_id", json!(spelling)));
        let flat = decode_ids(&fields, LIMIT, OrderIds::Uuid).expect(spelling);
        assert_eq!(flat.order_id, CANONICAL, "{spelling}");
        // A TEXT id is taken as it is.
        let flat = decode_ids(&fields, LIMIT, OrderIds::Text).expect(spelling);
        assert_eq!(flat.order_id, spelling);
    }
    for refused in [
        "o1",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
    ] {
        let fields = cloud_event("data", event_with("order_id", json!(refused)));
        let error = decode_ids(&fields, LIMIT, OrderIds::Uuid).expect_err(refused);
        assert_eq!(error, DecodeError::NotAUuid(refused.to_owned()));
        assert_eq!(
            error.to_string(),
            format!("`order_id` {refused:?} is not a UUID, and the orders table's `id` column is a UUID")
        );
    }
}
