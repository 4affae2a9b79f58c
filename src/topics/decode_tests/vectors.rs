//! The publishers' exact structs, every field they send: the payment service's Go structs (float
//! amounts as Go writes them, `order_number`, `status`, `failure_reason` or an older publisher's
//! `reason`, `metadata`) and the fulfillment service's event with its `metadata`, each in every
//! Dapr format of the samples (`tests/fixtures/publisher-struct-entries.jsonl`). What the worker
//! reads of each, and that what it records of it (`said`) reads back the same, so that a late
//! event's recompute writes the rows the first application wrote.

use super::*;
use crate::topics::payment::{PaymentEvent, FAILED};

const VECTORS: &str = include_str!("../../../tests/fixtures/publisher-struct-entries.jsonl");
/// Each vector is in the fixture once per Dapr format, in the samples' five.
const FORMATS: usize = 5;
const ORDER: &str = "8a1f0c52-4d7e-4c1b-9a51-2b7f3f0d9e11";

/// A decoded event, whichever its topic, to compare whole.
#[derive(Debug, Clone, PartialEq)]
enum Decoded {
    Payment(PaymentEvent),
    Fulfillment(FulfillmentEvent),
}

fn decoded(change: &dyn Change) -> Decoded {
    let any = change.as_any();
    match any.downcast_ref::<PaymentEvent>() {
        Some(payment) => Decoded::Payment(payment.clone()),
        None => Decoded::Fulfillment(
            any.downcast_ref::<FulfillmentEvent>()
                .expect("a payment or fulfillment event")
                .clone(),
        ),
    }
}

/// What `said` leaves out (only the raw payload's key reads it, and that key is recorded).
fn as_recorded(decoded: Decoded) -> Decoded {
    match decoded {
        Decoded::Payment(p) => Decoded::Payment(PaymentEvent {
            timestamp: None,
            ..p
        }),
        Decoded::Fulfillment(f) => Decoded::Fulfillment(FulfillmentEvent {
            old_status: None,
            timestamp: None,
            ..f
        }),
    }
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

/// Each vector's event and its raw payload's key, sha256(id \0 status \0 timestamp) computed
/// outside Rust (`sha256sum`), in the fixture's order.
fn vectors() -> [(&'static str, Decoded); 4] {
    let payment = |payment_id: &str, status, amount: &str, currency: &str| PaymentEvent {
        payment_id: payment_id.to_owned(),
        order_id: ORDER.to_owned(),
        status,
        amount: some(amount),
        currency: some(currency),
        reason: None,
        order_number: some("ORD-20251222-0042"),
        reported_status: None,
        metadata: None,
        timestamp: some(TIMESTAMP),
    };
    let confirmed = "pay-5d2c9e7a-1b3f-4c8d-9e0f-a1b2c3d4e5f6";
    let failed = "pay-0c6e4b1d-8f2a-4e5b-b7c9-d0e1f2a3b4c5";
    let older = "pay-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";
    [
        (
            "raw-5788e6551f50618b2ed31a342f1e354db367f308b8b9fd8038c72c5763775716",
            Decoded::Payment(PaymentEvent {
                reported_status: some("completed"),
                metadata: Some(json!({"gateway": "stripe", "attempt": 1})),
                ..payment(confirmed, PaymentStatus::Confirmed, "129.9", "EUR")
            }),
        ),
        (
            "raw-0038f9c1032b4f8a361a83f882bf9916072b083d58629ffc3ddfabdb97d54d76",
            Decoded::Payment(PaymentEvent {
                reason: some("card_declined"),
                metadata: Some(json!({"gateway": "vnpay", "attempt": 2})),
                ..payment(failed, PaymentStatus::Failed, "1499000", "VND")
            }),
        ),
        (
            "raw-493cbfc0c37a94186f33411a49681608fcc0b2c00f5fc7e674700b96f027eedf",
            Decoded::Payment(PaymentEvent {
                reason: some("insufficient_funds"),
                metadata: Some(json!({})),
                ..payment(older, PaymentStatus::Failed, "1499000", "VND")
            }),
        ),
        (
            "raw-26fb140480e4e8518795c87e0cb7068751b4485a7b55fb6aae461e8499c0c1bc",
            Decoded::Fulfillment(FulfillmentEvent {
                fulfillment_id: "f6c1d0aa-7a40-4b8e-8f3e-0b9a3c2d1e55".to_owned(),
                order_id: ORDER.to_owned(),
                new_status: FulfillmentStatus::Picked,
                old_status: some("picking"),
                metadata: Some(json!({"warehouse_id": "wh-hcm-01", "carrier": "GHN"})),
                timestamp: some(TIMESTAMP),
            }),
        ),
    ]
}

/// Decodes an entry of `topic`'s stream.
fn decode_as(
    topic: &'static dyn Topic,
    fields: &[(String, Vec<u8>)],
) -> Result<Event, DecodeError> {
    crate::topics::decode(topic, fields, LIMIT, OrderIds::Text).map_err(DecodeError::from)
}

/// Decodes `fields` as an entry of the stream of the topic its sample names.
fn decode_sample(sample: &Value, fields: &[(String, Vec<u8>)]) -> Result<Event, DecodeError> {
    let topic = by_name(sample["topic"].as_str().expect("`topic`")).expect("a topic served");
    decode_as(topic, fields)
}

#[test]
fn the_publishers_structs_decode_in_every_dapr_format_with_every_field() {
    let samples = samples(VECTORS);
    let vectors = vectors();
    assert_eq!(
        samples.len(),
        vectors.len() * FORMATS,
        "each vector, each format"
    );
    for (i, (sample, mut fields)) in samples.into_iter().enumerate() {
        let (raw_id, want) = &vectors[i / FORMATS];
        let what = format!("{}, {}", sample["vector"], sample["dapr"]);
        // The CloudEvent's id, or for a raw payload (no `id`) the derived key.
        let data: Value = serde_json::from_slice(&fields[0].1).expect("`data` is JSON");
        let event_id = data["id"].as_str().unwrap_or(raw_id);
        for order in ["as written", "fields reversed"] {
            let event = decode_sample(&sample, &fields).unwrap_or_else(|e| panic!("{what}: {e}"));
            let got = (event.event_id.as_str(), decoded(&*event.change));
            assert_eq!(got, (event_id, want.clone()), "{what}, {order}");
            fields.reverse();
        }
    }
}

#[test]
fn what_is_recorded_of_each_vector_reads_back_the_same() {
    for (sample, fields) in samples(VECTORS) {
        let what = format!("{}, {}", sample["vector"], sample["dapr"]);
        let event = decode_sample(&sample, &fields).expect(&what);
        let said = event.change.said();
        let again = recorded(event.topic, event.event_id, event.change.order_id(), said)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            decoded(&*again.change),
            as_recorded(decoded(&*event.change)),
            "{what}"
        );
    }
    // The failed payment's record, as the inbox keeps it: its reason under the name older
    // publishers used, which `decode` reads after `failure_reason`.
    let (sample, fields) = &samples(VECTORS)[FORMATS];
    let said = decode_sample(sample, fields)
        .expect("decodes")
        .change
        .said();
    assert_eq!(
        Value::Object(said),
        json!({"payment_id": "pay-0c6e4b1d-8f2a-4e5b-b7c9-d0e1f2a3b4c5", "amount": "1499000",
               "currency": "VND", "reason": "card_declined", "order_number": "ORD-20251222-0042",
               "metadata": {"gateway": "vnpay", "attempt": 2}})
    );
}

/// A `payment.failed` raw payload with `fields` added to its required ones.
fn failed_with(fields: Value) -> Result<PaymentEvent, DecodeError> {
    let mut event = json!({"event_type": "payment.failed", "payment_id": "p1", "order_id": "o1"});
    for (name, value) in fields.as_object().expect("an object") {
        event[name] = value.clone();
    }
    let fields = entry(&[("data", &event.to_string())]);
    let event = decode_as(&FAILED, &fields)?;
    match decoded(&*event.change) {
        Decoded::Payment(payment) => Ok(payment),
        other => panic!("not a payment: {other:?}"),
    }
}

#[test]
fn the_reason_is_failure_reason_else_an_older_publishers_reason() {
    let cases = [
        (
            json!({"failure_reason": "card_declined"}),
            Some("card_declined"),
        ),
        (json!({"reason": "expired_card"}), Some("expired_card")),
        (
            json!({"failure_reason": "card_declined", "reason": "expired_card"}),
            Some("card_declined"),
        ),
        // A publisher in between sends both, one empty or null.
        (
            json!({"failure_reason": "", "reason": "expired_card"}),
            Some("expired_card"),
        ),
        (
            json!({"failure_reason": null, "reason": "expired_card"}),
            Some("expired_card"),
        ),
        (
            json!({"failure_reason": "card_declined", "reason": ""}),
            Some("card_declined"),
        ),
        (json!({"failure_reason": "", "reason": null}), None),
        (json!({}), None),
    ];
    for (fields, reason) in cases {
        let payment = failed_with(fields.clone()).expect("decodes");
        assert_eq!(payment.reason.as_deref(), reason, "{fields}");
    }
}

#[test]
fn a_stored_field_that_is_no_string_or_holds_nul_is_refused_naming_it() {
    for field in [
        "failure_reason",
        "reason",
        "order_number",
        "status",
        "currency",
    ] {
        let nul = failed_with(json!({ field: "a\u{0}b" }));
        assert_eq!(nul, Err(DecodeError::NulCharacter(field)), "{field}");
        let number = failed_with(json!({ field: 7 }));
        assert_eq!(number, Err(DecodeError::NotAString(field)), "{field}");
    }
    assert_eq!(
        DecodeError::NulCharacter("order_number").to_string(),
        "`order_number` contains a NUL character, which PostgreSQL cannot store"
    );
}

/// `metadata` is any JSON, kept as the publisher sent it (a `json` column keeps what jsonb would
/// refuse, such as a NUL, and numbers' digits); null is none.
#[test]
fn metadata_is_any_json_kept_as_sent_and_null_is_none() {
    let kept = [
        r#"{"warehouse_id":"wh-hcm-01","carrier":"GHN"}"#,
        "{}",
        r#""wh-hcm-01""#,
        r#"["wh-hcm-01","wh-hn-02"]"#,
        "1e3",
        "true",
        r#"{"note":"a\u0000b"}"#,
    ];
    for text in kept {
        let value: Value = serde_json::from_str(text).expect("JSON");
        let fields = cloud_event("data", event_with("metadata", value.clone()));
        let fulfillment = decode_as(&fulfillment::STATUS_CHANGED, &fields).expect(text);
        let payment = failed_with(json!({ "metadata": value })).expect(text);
        for (topic, metadata) in [
            ("fulfillment", fulfillment.change.metadata()),
            ("payment", payment.metadata()),
        ] {
            assert_eq!(metadata, Some(&value), "{topic}, {text}");
        }
    }
    // What the history's `json` column gets: a number's digits as the publisher wrote them
    // (serde_json writes the exponent's sign), not a float's.
    let raw =
        r#"{"fulfillment_id":"f1","order_id":"o1","new_status":"picked","metadata":[1e3,0.10]}"#;
    let event = decode_as(&fulfillment::STATUS_CHANGED, &entry(&[("data", raw)])).expect(raw);
    assert_eq!(
        event.change.metadata().map(ToString::to_string),
        some("[1e+3,0.10]")
    );
    for absent in [
        event_with("metadata", Value::Null),
        event_without("metadata"),
    ] {
        let fields = cloud_event("data", absent);
        let event = decode_as(&fulfillment::STATUS_CHANGED, &fields).expect("decodes");
        assert_eq!(event.change.metadata(), None);
    }
    let payment = failed_with(json!({ "metadata": null })).expect("decodes");
    assert_eq!(payment.metadata, None);
}

#[test]
fn every_field_of_the_publishers_structs_is_one_its_topic_reads() {
    // What `preflight` reports as ignored: nothing of these structs.
    for (sample, fields) in samples(VECTORS) {
        let topic = by_name(sample["topic"].as_str().expect("`topic`")).expect("a topic");
        let opened = crate::envelope::open(&fields, LIMIT).expect("opens");
        let ignored: Vec<&str> = (opened.payload.names())
            .filter(|name| !topic.fields().contains(name))
            .collect();
        assert_eq!(ignored, Vec::<&str>::new(), "{}", sample["vector"]);
    }
}
