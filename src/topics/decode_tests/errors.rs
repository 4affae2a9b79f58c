//! The entries that can never decode: each kind with its exact error and message, the size
//! limit, and no input that panics.

use super::*;

#[test]
fn undecodable_entries_fail_with_a_specific_error() {
    use DecodeError::*;
    let raw = |event: Value| entry(&[("data", &event.to_string())]);
    let ce = |event: Value| cloud_event("data", event);
    let mut cases: Vec<(String, Fields, DecodeError)> = vec![];
    let mut case = |what: &str, fields: Fields, error: DecodeError| {
        cases.push((what.to_owned(), fields, error));
    };
    case("no data", entry(&[("metadata", "{}")]), NoData);
    case(
        "not UTF-8",
        vec![("data".to_owned(), vec![b'{', 0xff, 0xfe])],
        NotUtf8(ENTRY_DATA),
    );
    case(
        "not JSON",
        entry(&[("data", "{oops")]),
        NotJson {
            what: ENTRY_DATA,
            reason: "key must be a string at line 1 column 2".to_owned(),
        },
    );
    case(
        "empty",
        entry(&[("data", "")]),
        NotJson {
            what: ENTRY_DATA,
            reason: "EOF while parsing a value at line 1 column 0".to_owned(),
        },
    );
    let not_object = |what, found| NotObject { what, found };
    case(
        "JSON array",
        entry(&[("data", "[1]")]),
        not_object(ENTRY_DATA, "array"),
    );
    case(
        "JSON string",
        entry(&[("data", r#""hi""#)]),
        not_object(ENTRY_DATA, "string"),
    );
    let envelope_without = |field: &str| {
        let mut envelope = envelope("data", event());
        envelope.as_object_mut().map(|object| object.remove(field));
        entry(&[("data", &envelope.to_string())])
    };
    let envelope_with = |field: &str, value: Value| {
        let mut envelope = envelope("data", event());
        envelope[field] = value;
        entry(&[("data", &envelope.to_string())])
    };
    case("CloudEvent without id", envelope_without("id"), NoId);
    case(
        "CloudEvent with empty id",
        envelope_with("id", json!("")),
        NoId,
    );
    case(
        "CloudEvent with null id",
        envelope_with("id", Value::Null),
        NoId,
    );
    case(
        "CloudEvent with numeric id",
        envelope_with("id", json!(7)),
        NotAString("id"),
    );
    case(
        "CloudEvent id with NUL",
        envelope_with("id", json!("ce\u{0}1")),
        NulCharacter("id"),
    );
    case(
        "CloudEvent without payload",
        envelope_without("data"),
        NoPayload,
    );
    case(
        "CloudEvent data null",
        envelope_with("data", Value::Null),
        NoPayload,
    );
    case(
        "CloudEvent data is a number",
        envelope_with("data", json!(7)),
        not_object(CLOUD_EVENT_DATA, "number"),
    );
    case(
        "CloudEvent data string is not JSON",
        envelope_with("data", json!("plain text")),
        NotJson {
            what: CLOUD_EVENT_DATA,
            reason: "expected value at line 1 column 1".to_owned(),
        },
    );
    case(
        "CloudEvent data string is an array",
        envelope_with("data", json!("[]")),
        not_object(CLOUD_EVENT_DATA, "array"),
    );
    case(
        "bad base64",
        cloud_event("data_base64", json!("***")),
        BadBase64("Invalid symbol 42, offset 0.".to_owned()),
    );
    case(
        "data_base64 is a number",
        cloud_event("data_base64", json!(7)),
        NotAString("data_base64"),
    );
    case(
        "data_base64 is not UTF-8",
        cloud_event("data_base64", base64([0xff, 0xfe])),
        NotUtf8(DECODED_BASE64),
    );
    case(
        "data_base64 is not JSON",
        cloud_event("data_base64", base64("nope")),
        NotJson {
            what: DECODED_BASE64,
            reason: "expected ident at line 1 column 2".to_owned(),
        },
    );
    case(
        "rawPayload wins over a CloudEvent look",
        entry(&[
            ("data", &envelope("data", event()).to_string()),
            ("metadata", r#"{"rawPayload":"1"}"#),
        ]),
        MissingField("fulfillment_id"),
    );
    for field in ["fulfillment_id", "order_id", "new_status"] {
        let kinds = [
            ("missing", event_without(field), MissingField(field)),
            ("empty", event_with(field, json!("")), MissingField(field)),
            ("null", event_with(field, Value::Null), MissingField(field)),
            ("a number", event_with(field, json!(42)), NotAString(field)),
            ("an object", event_with(field, json!({})), NotAString(field)),
        ];
        for (how, event, error) in kinds {
            case(&format!("{field} {how}"), ce(event.clone()), error.clone());
            case(&format!("raw, {field} {how}"), raw(event), error);
        }
    }
    for field in ["event_type", "old_status", "timestamp"] {
        case(
            &format!("{field} a number"),
            ce(event_with(field, json!(1))),
            NotAString(field),
        );
    }
    for field in ["fulfillment_id", "order_id", "new_status"] {
        case(
            &format!("NUL in {field}"),
            ce(event_with(field, json!("a\u{0}b"))),
            NulCharacter(field),
        );
    }
    case(
        "unknown status",
        ce(event_with("new_status", json!("teleported"))),
        UnknownStatus("teleported".to_owned()),
    );
    case(
        "status names are case-sensitive",
        ce(event_with("new_status", json!("Picked"))),
        UnknownStatus("Picked".to_owned()),
    );
    case(
        "another event type, reported before its missing fields",
        raw(json!({"event_type": "order.created", "order_id": "o1"})),
        WrongEventType {
            found: "order.created".to_owned(),
            expected: "fulfillment.status_changed",
        },
    );
    for (what, fields, expected) in cases {
        assert_eq!(decode(&fields, LIMIT), Err(expected), "{what}");
    }
}

#[test]
fn the_size_limit_counts_every_field_and_comes_first() {
    let fields = cloud_event("data", event());
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(
        decode(&fields, size),
        Ok(decoded("ce-1", Some(TRACE))),
        "exactly at the limit is fine"
    );
    let too_large = DecodeError::TooLarge {
        size,
        limit: size - 1,
    };
    assert_eq!(decode(&fields, size - 1), Err(too_large));
    let garbage = entry(&[("data", "not json at all")]);
    assert_eq!(
        decode(&garbage, 10),
        Err(DecodeError::TooLarge {
            size: 19,
            limit: 10
        }),
        "checked before parsing; field names count"
    );
}

#[test]
fn errors_read_as_an_operator_needs_them() {
    use DecodeError::*;
    let cases = [
        (
            TooLarge {
                size: 1_048_577,
                limit: 1_048_576,
            },
            "entry is 1048577 bytes, over the 1048576-byte limit",
        ),
        (NoData, "entry has no `data` field"),
        (NotUtf8(ENTRY_DATA), "`data` is not valid UTF-8"),
        (
            NotUtf8(DECODED_BASE64),
            "decoded `data_base64` is not valid UTF-8",
        ),
        (
            NotJson {
                what: ENTRY_DATA,
                reason: "expected value at line 1 column 1".to_owned(),
            },
            "`data` is not JSON: expected value at line 1 column 1",
        ),
        (
            NotObject {
                what: CLOUD_EVENT_DATA,
                found: "array",
            },
            "CloudEvent `data` is a JSON array, not an object",
        ),
        (NoId, "CloudEvent has no `id`"),
        (NoPayload, "CloudEvent has neither `data` nor `data_base64`"),
        (
            BadBase64("Invalid symbol 42, offset 0.".to_owned()),
            "`data_base64` is not valid base64: Invalid symbol 42, offset 0.",
        ),
        (NotAString("order_id"), "`order_id` is not a string"),
        (MissingField("order_id"), "event has no `order_id`"),
        (
            UnknownStatus("teleported".to_owned()),
            "`new_status` \"teleported\" is not a known fulfillment status",
        ),
        (
            WrongEventType {
                found: "x".to_owned(),
                expected: "fulfillment.status_changed",
            },
            "`event_type` is \"x\", expected \"fulfillment.status_changed\"",
        ),
        (
            NulCharacter("order_id"),
            "`order_id` contains a NUL character, which PostgreSQL cannot store",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn no_input_panics() {
    // Every prefix of every sample's `data`, and every byte of it flipped: truncated and
    // corrupted entries must come back as errors (or events), never as a panic.
    for (_, fields) in samples(SAMPLES) {
        let data = &fields.iter().find(|(k, _)| k == "data").expect("data").1;
        for end in 0..data.len() {
            let prefix = data.get(..end).unwrap_or_default().to_vec();
            let _ = decode(&[("data".to_owned(), prefix)], LIMIT);
        }
        for at in 0..data.len() {
            let mut corrupt = data.clone();
            if let Some(byte) = corrupt.get_mut(at) {
                *byte ^= 0x80;
            }
            let _ = decode(&[("data".to_owned(), corrupt)], LIMIT);
        }
    }
    assert!(decode(&[], 0).is_err());
}

#[test]
fn a_refused_entry_keeps_the_trace_its_envelope_named() {
    let refuse = |fields: &Fields| {
        let topic = &fulfillment::STATUS_CHANGED;
        crate::topics::decode(topic, fields, LIMIT, OrderIds::Text).expect_err("refused")
    };
    // The envelope opened, its payload did not decode: the entry's span still joins the trace.
    let payload = json!({"order_id": "o1", "new_status": "shipped"});
    let refused = refuse(&entry(&[("data", &envelope("data", payload).to_string())]));
    assert_eq!(refused.trace.traceparent.as_deref(), Some(TRACE));
    // Nothing opened: no trace to keep.
    let refused = refuse(&entry(&[("data", "{not json")]));
    assert_eq!(refused.trace, TraceContext::default());
}
