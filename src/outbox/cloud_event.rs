//! An outbox row as a Dapr publisher writes it to the stream (DESIGN §1, §2c): the CloudEvent
//! in the entry's `data`, and back again (its `id`), which is how a relay taking over finds what
//! an earlier one published. Pure.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::rows::Row;
use super::source::Source;
use crate::config::OrderEvents;

/// What every envelope says of its publisher.
pub struct Envelope<'a> {
    pub source: &'a str,
    pub pubsub_name: &'a str,
}

impl<'a> From<&'a OrderEvents> for Envelope<'a> {
    fn from(settings: &'a OrderEvents) -> Self {
        Self {
            source: &settings.app_id,
            pubsub_name: &settings.pubsub_name,
        }
    }
}

/// A row ready to go: its stream, what orders it among the others, and the entry's `data`.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub row: &'a Row,
    pub stream: &'a str,
    /// Its order's id: rows of one order go out in id order, those behind a refused one wait.
    /// A payload that is not JSON names no order: such a row is an order of its own.
    pub order: String,
    /// The metrics' label: the event's `new_status`, when it has one.
    pub new_status: String,
    pub data: String,
}

/// The row as it is published, or why it never can be (an empty topic, no order id).
pub fn prepare<'a>(
    row: &'a Row,
    source: &'a Source,
    envelope: &Envelope<'_>,
) -> Result<Outgoing<'a>, String> {
    let stream = match (&source.topic, &row.topic) {
        (Some(topic), _) => topic.as_str(),
        (None, Some(topic)) if !topic.trim().is_empty() => topic.as_str(),
        (None, _) => return Err("the row's topic is empty: no stream to publish it to".to_owned()),
    };
    let Some(payload) = &row.payload else {
        return Err("the row's payload is NULL".to_owned());
    };
    let json = serde_json::from_str::<Value>(payload).ok();
    let order = match &json {
        Some(event) => order_id(event, &source.order_id_path).ok_or_else(|| {
            format!(
                "no order id at `{}` in the payload (RELAY_ORDER_ID_PATH)",
                source.order_id_path.join(".")
            )
        })?,
        None => format!("row {}", row.id),
    };
    let new_status = json
        .as_ref()
        .and_then(|event| event["new_status"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    let data = entry_data(row, stream, json, envelope);
    Ok(Outgoing {
        row,
        stream,
        order,
        new_status,
        data,
    })
}

/// The id at `path` in `event`: a string, or a number as its text.
pub fn order_id(event: &Value, path: &[String]) -> Option<String> {
    let found = path.iter().try_fold(event, |at, key| at.get(key))?;
    match found {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The entry's `data`: the CloudEvent around the row's event, as Dapr's sidecar builds it (a
/// JSON payload embedded as `data`, anything else as `data_base64`, `traceid` a copy of
/// `traceparent`), with the row's event id as its `id`, so every attempt publishes the same id.
pub fn entry_data(row: &Row, topic: &str, json: Option<Value>, envelope: &Envelope<'_>) -> String {
    let mut event = Map::new();
    let mut put = |key: &str, value: Value| {
        event.insert(key.to_owned(), value);
    };
    put("specversion", json!("1.0"));
    put("id", json!(row.event_id));
    put("source", json!(envelope.source));
    put("type", json!("com.dapr.event.sent"));
    put("topic", json!(topic));
    put("pubsubname", json!(envelope.pubsub_name));
    put("time", json!(row.created_at.to_rfc3339()));
    if let Some(traceparent) = &row.traceparent {
        put("traceparent", json!(traceparent));
        put("traceid", json!(traceparent));
    }
    put("tracestate", json!(row.tracestate.as_deref().unwrap_or("")));
    match json {
        Some(data) => {
            put("datacontenttype", json!("application/json"));
            put("data", data);
        }
        None => {
            let raw = row.payload.as_deref().unwrap_or("").as_bytes();
            put("datacontenttype", json!("application/octet-stream"));
            put(
                "data_base64",
                json!(base64::engine::general_purpose::STANDARD.encode(raw)),
            );
        }
    }
    Value::Object(event).to_string()
}

/// The CloudEvent `id` of an entry's `data`, if it is a CloudEvent with one.
pub fn event_id(data: &[u8]) -> Option<String> {
    let Ok(Value::Object(mut event)) = serde_json::from_slice(data) else {
        return None;
    };
    match event.remove("id") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::config::{RelayTable, TableName};
    use crate::envelope::open;

    const EVENT_ID: &str = "6f1c1a52-8c0e-4f43-9d55-1b0e2a5c2f10";

    fn row(traceparent: Option<&str>) -> Row {
        let data = json!({"event_type": "orders.order.status_changed", "order_id": "o-1",
            "old_status": "pending", "new_status": "confirmed", "reason": "PaymentConfirmed",
            "timestamp": "2026-12-07T10:54:00.000000Z"});
        Row {
            id: 7,
            event_id: EVENT_ID.to_owned(),
            topic: None,
            payload: Some(data.to_string()),
            traceparent: traceparent.map(str::to_owned),
            tracestate: None,
            created_at: chrono::Utc
                .with_ymd_and_hms(2026, 12, 7, 10, 54, 0)
                .unwrap(),
            attempts: 0,
        }
    }

    const ENVELOPE: Envelope<'static> = Envelope {
        source: "order-worker",
        pubsub_name: "pubsub-redis",
    };

    fn own() -> Source {
        Source::own(&OrderEvents::default())
    }

    fn mapped() -> Source {
        let mut relay = RelayTable {
            relay_order_id_path: "order.id".to_owned(),
            ..RelayTable::default()
        };
        relay.mapping.relay_table = Some("outbox_events".parse::<TableName>().unwrap());
        Source::mapped(&relay).expect("a table")
    }

    fn published(row: &Row, source: &Source) -> Value {
        let outgoing = prepare(row, source, &ENVELOPE).expect("publishable");
        serde_json::from_str(&outgoing.data).expect("JSON")
    }

    #[test]
    fn a_dapr_subscriber_reads_the_entry_as_one_of_its_publishers_wrote_it() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let source = own();
        let row = row(Some(parent));
        let outgoing = prepare(&row, &source, &ENVELOPE).expect("publishable");
        assert_eq!(
            (outgoing.order.as_str(), outgoing.stream),
            ("o-1", "orders.order.status_changed")
        );
        let event: Value = serde_json::from_str(&outgoing.data).expect("JSON");
        for (field, want) in [
            ("specversion", "1.0"),
            ("type", "com.dapr.event.sent"),
            ("datacontenttype", "application/json"),
            ("source", "order-worker"),
            ("topic", "orders.order.status_changed"),
            ("pubsubname", "pubsub-redis"),
            ("id", EVENT_ID),
            ("traceparent", parent),
            ("traceid", parent),
            ("time", "2026-12-07T10:54:00+00:00"),
        ] {
            assert_eq!(event[field], json!(want), "{field}");
        }
        assert_eq!(event["data"]["new_status"], "confirmed");
        // The worker's own decoder, which reads Dapr's format, opens it as any other entry.
        let fields = [("data".to_owned(), outgoing.data.into_bytes())];
        let opened = open(&fields, usize::MAX).expect("opens");
        assert_eq!(opened.id.as_deref(), Some(EVENT_ID));
        assert_eq!(opened.trace.traceparent.as_deref(), Some(parent));
    }

    #[test]
    fn without_a_trace_the_envelope_carries_none() {
        let event = published(&row(None), &own());
        assert!(event.get("traceparent").is_none() && event.get("traceid").is_none());
    }

    #[test]
    fn a_mapped_row_goes_to_its_topic_s_stream_ordered_by_the_id_at_its_path() {
        let source = mapped();
        let mut row = row(None);
        row.topic = Some("compensation.reservation_release".to_owned());
        row.payload = Some(json!({"order": {"id": 42}, "sku": "x"}).to_string());
        let outgoing = prepare(&row, &source, &ENVELOPE).expect("publishable");
        assert_eq!(outgoing.stream, "compensation.reservation_release");
        assert_eq!(outgoing.order, "42");
        let event: Value = serde_json::from_str(&outgoing.data).unwrap();
        assert_eq!(event["topic"], "compensation.reservation_release");
        assert_eq!(event["data"]["sku"], "x");
    }

    #[test]
    fn a_payload_that_is_not_json_goes_as_data_base64_and_bad_rows_say_why() {
        let source = mapped();
        let mut row = row(None);
        row.topic = Some("t".to_owned());
        row.payload = Some("plain text".to_owned());
        let event = published(&row, &source);
        assert_eq!(event["datacontenttype"], "application/octet-stream");
        assert_eq!(event["data_base64"], "cGxhaW4gdGV4dA==");
        assert!(event.get("data").is_none());

        row.payload = Some(json!({"order_id": "o-1"}).to_string());
        let why = prepare(&row, &source, &ENVELOPE).unwrap_err();
        assert!(why.contains("no order id at `order.id`"), "{why}");
        row.topic = Some(" ".to_owned());
        let why = prepare(&row, &source, &ENVELOPE).unwrap_err();
        assert!(why.contains("topic is empty"), "{why}");
    }

    #[test]
    fn the_id_is_read_back_from_what_was_published_and_nothing_else() {
        let data = published(&row(None), &own()).to_string();
        assert_eq!(event_id(data.as_bytes()).as_deref(), Some(EVENT_ID));
        for other in [
            &b"not json"[..],
            b"[]",
            br#"{"id": 7}"#,
            br#"{"order_id": "o"}"#,
        ] {
            assert_eq!(event_id(other), None);
        }
    }
}
