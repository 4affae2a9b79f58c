//! An outbox row as a Dapr publisher writes it to the stream (DESIGN §1, §2c): the CloudEvent
//! in the entry's `data`, and back again (its `id`), which is how a relay taking over finds what
//! an earlier one published. Pure.

use serde_json::{json, Map, Value};

use super::rows::Row;
use crate::config::OrderEvents;

/// What every envelope says of its publisher.
pub struct Envelope<'a> {
    pub topic: &'a str,
    pub source: &'a str,
    pub pubsub_name: &'a str,
}

impl<'a> From<&'a OrderEvents> for Envelope<'a> {
    fn from(settings: &'a OrderEvents) -> Self {
        Self {
            topic: &settings.order_events_topic,
            source: &settings.app_id,
            pubsub_name: &settings.pubsub_name,
        }
    }
}

/// The entry's `data`: the CloudEvent around the row's event, as Dapr's sidecar builds it for
/// a JSON payload (`data` embedded, `traceid` a copy of `traceparent`), with the row's event id
/// as its `id`, so every attempt publishes the same id.
pub fn entry_data(row: &Row, envelope: &Envelope<'_>) -> String {
    let mut event = Map::new();
    let mut put = |key: &str, value: Value| {
        event.insert(key.to_owned(), value);
    };
    put("specversion", json!("1.0"));
    put("id", json!(row.event_id));
    put("source", json!(envelope.source));
    put("type", json!("com.dapr.event.sent"));
    put("datacontenttype", json!("application/json"));
    put("topic", json!(envelope.topic));
    put("pubsubname", json!(envelope.pubsub_name));
    put("time", json!(row.created_at.to_rfc3339()));
    if let Some(traceparent) = &row.traceparent {
        put("traceparent", json!(traceparent));
        put("traceid", json!(traceparent));
    }
    put("tracestate", json!(row.tracestate.as_deref().unwrap_or("")));
    put("data", row.data.clone());
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
    use crate::envelope::open;

    fn row(traceparent: Option<&str>) -> Row {
        Row {
            id: 7,
            event_id: "6f1c1a52-8c0e-4f43-9d55-1b0e2a5c2f10".to_owned(),
            order_id: "o-1".to_owned(),
            data: json!({"event_type": "orders.order.status_changed", "order_id": "o-1",
                "old_status": "pending", "new_status": "confirmed", "reason": "PaymentConfirmed",
                "timestamp": "2026-12-07T10:54:00.000000Z"}),
            traceparent: traceparent.map(str::to_owned),
            tracestate: None,
            created_at: chrono::Utc
                .with_ymd_and_hms(2026, 12, 7, 10, 54, 0)
                .unwrap(),
        }
    }

    const ENVELOPE: Envelope<'static> = Envelope {
        topic: "orders.order.status_changed",
        source: "order-worker",
        pubsub_name: "pubsub-redis",
    };

    #[test]
    fn a_dapr_subscriber_reads_the_entry_as_one_of_its_publishers_wrote_it() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let data = entry_data(&row(Some(parent)), &ENVELOPE);
        let event: Value = serde_json::from_str(&data).expect("JSON");
        for (field, want) in [
            ("specversion", "1.0"),
            ("type", "com.dapr.event.sent"),
            ("datacontenttype", "application/json"),
            ("source", "order-worker"),
            ("topic", "orders.order.status_changed"),
            ("pubsubname", "pubsub-redis"),
            ("id", "6f1c1a52-8c0e-4f43-9d55-1b0e2a5c2f10"),
            ("traceparent", parent),
            ("traceid", parent),
            ("time", "2026-12-07T10:54:00+00:00"),
        ] {
            assert_eq!(event[field], json!(want), "{field}");
        }
        assert_eq!(event["data"]["new_status"], "confirmed");
        // The worker's own decoder, which reads Dapr's format, opens it as any other entry.
        let fields = [("data".to_owned(), data.into_bytes())];
        let opened = open(&fields, usize::MAX).expect("opens");
        assert_eq!(
            opened.id.as_deref(),
            Some("6f1c1a52-8c0e-4f43-9d55-1b0e2a5c2f10")
        );
        assert_eq!(opened.trace.traceparent.as_deref(), Some(parent));
    }

    #[test]
    fn without_a_trace_the_envelope_carries_none() {
        let event: Value = serde_json::from_str(&entry_data(&row(None), &ENVELOPE)).unwrap();
        assert!(event.get("traceparent").is_none() && event.get("traceid").is_none());
    }

    #[test]
    fn the_id_is_read_back_from_what_was_published_and_nothing_else() {
        let data = entry_data(&row(None), &ENVELOPE);
        assert_eq!(
            event_id(data.as_bytes()).as_deref(),
            Some("6f1c1a52-8c0e-4f43-9d55-1b0e2a5c2f10")
        );
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
