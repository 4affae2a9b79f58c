//! The publishers' side: stream entries exactly as Dapr's `pubsub.redis` component writes them
//! (one of each variant is in `tests/fixtures/dapr-stream-entries.jsonl`), for the demo and the
//! tests. The worker never publishes to the streams it consumes.

use base64::Engine;
use serde_json::{json, Value};

use order_worker::FulfillmentStatus;

/// How the publisher's Dapr version and content type shape the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Dapr < 1.13: a CloudEvent with `data` as an object, and no `metadata` field.
    CloudEventNoMetadata,
    /// Dapr ≥ 1.13 HTTP publish: CloudEvent with `data` as an object, and `metadata` `{}`.
    CloudEvent,
    /// Content type `text/plain`: the event is a JSON string in `data`.
    CloudEventString,
    /// Content type `application/octet-stream`: the event is in `data_base64`.
    CloudEventBase64,
    /// `rawPayload=true`: the event itself, no envelope.
    Raw,
}

impl Format {
    /// Every format, for tests and the demo that cover them all.
    pub const ALL: [Format; 5] = [
        Self::CloudEventNoMetadata,
        Self::CloudEvent,
        Self::CloudEventString,
        Self::CloudEventBase64,
        Self::Raw,
    ];
}

/// The fulfillment service's event.
pub fn event(
    order_id: &str,
    fulfillment_id: &str,
    old_status: Option<FulfillmentStatus>,
    new_status: FulfillmentStatus,
    timestamp: &str,
) -> Value {
    json!({
        "event_type": "fulfillment.status_changed",
        "fulfillment_id": fulfillment_id,
        "order_id": order_id,
        "old_status": old_status.map(FulfillmentStatus::as_str),
        "new_status": new_status.as_str(),
        "timestamp": timestamp,
        "metadata": {"warehouse_id": "wh-1"},
    })
}

/// The payment service's event on `payment.confirmed` or `payment.failed` (`verdict`:
/// `confirmed` or `failed`); `amount` as the service writes it (a decimal string), `reason` why
/// a payment failed.
pub fn payment_event(
    verdict: &str,
    order_id: &str,
    payment_id: &str,
    amount: Option<&str>,
    reason: Option<&str>,
    timestamp: &str,
) -> Value {
    let mut event = json!({
        "event_type": format!("payment.{verdict}"),
        "payment_id": payment_id,
        "order_id": order_id,
        "currency": "EUR",
        "payment_method": "card",
        "timestamp": timestamp,
    });
    if let Some(amount) = amount {
        event["amount"] = Value::String(amount.to_owned());
    }
    if let Some(reason) = reason {
        event["reason"] = Value::String(reason.to_owned());
    }
    event
}

/// The entry's fields for `event` published as `format`; `cloud_event_id` is the envelope id
/// (unused for [`Format::Raw`]).
pub fn entry_fields(
    topic: &str,
    event: &Value,
    cloud_event_id: &str,
    format: Format,
) -> Vec<(String, String)> {
    let envelope = |content_type: &str, payload: (&str, Value)| {
        let trace = format!(
            "00-{:032x}-{:016x}-01",
            uuid::Uuid::new_v4().as_u128(),
            1u64
        );
        let mut envelope = json!({
            "datacontenttype": content_type,
            "id": cloud_event_id,
            "pubsubname": "pubsub-redis",
            "source": "fulfillment-service",
            "specversion": "1.0",
            "time": event["timestamp"],
            "topic": topic,
            "traceid": trace,
            "traceparent": trace,
            "tracestate": "",
            "type": "com.dapr.event.sent",
        });
        envelope[payload.0] = payload.1;
        envelope.to_string()
    };
    let (data, metadata) = match format {
        Format::CloudEventNoMetadata => {
            (envelope("application/json", ("data", event.clone())), None)
        }
        Format::CloudEvent => (
            envelope("application/json", ("data", event.clone())),
            Some("{}"),
        ),
        Format::CloudEventString => (
            envelope("text/plain", ("data", Value::String(event.to_string()))),
            Some("{}"),
        ),
        Format::CloudEventBase64 => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(event.to_string());
            (
                envelope(
                    "application/octet-stream",
                    ("data_base64", Value::String(encoded)),
                ),
                Some("{}"),
            )
        }
        Format::Raw => (event.to_string(), Some(r#"{"rawPayload":"true"}"#)),
    };
    let mut fields = vec![("data".to_owned(), data)];
    if let Some(metadata) = metadata {
        fields.push(("metadata".to_owned(), metadata.to_owned()));
    }
    fields
}

/// `XADD <stream> * <fields…>`, as the Dapr sidecar does; returns the entry id.
pub async fn publish<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    fields: &[(String, String)],
) -> redis::RedisResult<String> {
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(fields)
        .query_async(conn)
        .await
}
