//! Decoding a stream entry as Dapr's `pubsub.redis` component writes it (DESIGN.md §1) into a
//! validated fulfillment event.
//!
//! Pure, so every publisher variant is covered by table-driven tests: CloudEvents with `data` as
//! an object, a JSON string or `data_base64`; raw payloads; with or without Dapr ≥ 1.13's
//! `metadata` field. Anything else is a [`DecodeError`]: a permanent error, dead-lettered with
//! its message, because no retry will ever make the entry decodable.

use std::collections::HashMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fulfillment::FulfillmentStatus;

/// Entries larger than this are dead-lettered unparsed: one huge entry must not stall a batch.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// The only `event_type` this stream carries.
const EVENT_TYPE: &str = "fulfillment.status_changed";

/// The event, decoded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentEvent {
    /// The idempotency key: the CloudEvent `id`, or for a raw payload `raw-` + a SHA-256 of
    /// (fulfillment_id, new_status, timestamp), the same in every process.
    pub event_id: String,
    pub fulfillment_id: String,
    pub order_id: String,
    pub new_status: FulfillmentStatus,
    /// As published; informative only.
    pub old_status: Option<String>,
    pub timestamp: Option<String>,
    /// The publisher's trace context, put on the event's span.
    pub traceparent: Option<String>,
    pub traceid: Option<String>,
}

/// Why an entry can never be applied. The message is what the dead-letter stream's `error`
/// field says, so it names the field and the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("entry is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("entry has no `data` field")]
    NoData,
    #[error("`{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("`{field}` is not JSON: {reason}")]
    NotJson { field: &'static str, reason: String },
    #[error("`{0}` is not a JSON object")]
    NotObject(&'static str),
    #[error("CloudEvent has no `id`")]
    NoCloudEventId,
    #[error("CloudEvent has neither `data` nor `data_base64`")]
    NoCloudEventData,
    #[error("`data_base64` is not valid base64: {0}")]
    BadBase64(String),
    #[error("event has no `{0}`")]
    MissingField(&'static str),
    #[error("event field `{0}` is not a string")]
    NotAString(&'static str),
    #[error("`{0}` contains a NUL character")]
    NulCharacter(&'static str),
    #[error("`new_status` {0:?} is not a known fulfillment status")]
    UnknownStatus(String),
    #[error("`event_type` is {0:?}, expected {EVENT_TYPE:?}")]
    WrongEventType(String),
}

/// The CloudEvent attributes we use; the others (source, type, time…) are ignored.
#[derive(Deserialize)]
struct CloudEvent {
    id: Option<Value>,
    data: Option<Value>,
    data_base64: Option<Value>,
    traceparent: Option<Value>,
    traceid: Option<Value>,
}

/// Decodes one entry; `fields` are its field/value pairs in any order.
pub fn decode(
    fields: &[(String, Vec<u8>)],
    max_bytes: usize,
) -> Result<FulfillmentEvent, DecodeError> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > max_bytes {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let data = field("data").ok_or(DecodeError::NoData)?;
    let data = std::str::from_utf8(data).map_err(|_| DecodeError::NotUtf8("data"))?;
    let body = parse_object("data", data)?;

    if is_raw(field("metadata")) || !body.contains_key("specversion") {
        let mut event = event_from(body)?;
        event.event_id = raw_key(&event);
        return Ok(event);
    }
    let envelope: CloudEvent =
        serde_json::from_value(Value::Object(body)).map_err(|error| not_json("data", &error))?;
    let id = match envelope.id {
        Some(Value::String(id)) if !id.is_empty() => id,
        _ => return Err(DecodeError::NoCloudEventId),
    };
    let payload = match (envelope.data, envelope.data_base64) {
        (Some(Value::Object(event)), _) => event,
        (Some(Value::String(text)), _) => parse_object("data", &text)?,
        (Some(_), _) => return Err(DecodeError::NotObject("data")),
        (None, Some(Value::String(encoded))) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| DecodeError::BadBase64(error.to_string()))?;
            let text = String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8("data_base64"))?;
            parse_object("data_base64", &text)?
        }
        (None, Some(_)) => return Err(DecodeError::BadBase64("not a string".to_owned())),
        (None, None) => return Err(DecodeError::NoCloudEventData),
    };
    let mut event = event_from(payload)?;
    event.event_id = no_nul("id", id)?;
    event.traceparent = non_empty_string(envelope.traceparent);
    event.traceid = non_empty_string(envelope.traceid);
    Ok(event)
}

/// Dapr ≥ 1.13 marks raw publishes in `metadata`; an unreadable `metadata` says nothing.
fn is_raw(metadata: Option<&Vec<u8>>) -> bool {
    metadata
        .and_then(|bytes| serde_json::from_slice::<HashMap<String, Value>>(bytes).ok())
        .and_then(|metadata| metadata.get("rawPayload").cloned())
        .is_some_and(|raw| raw == Value::String("true".to_owned()))
}

fn parse_object(
    field: &'static str,
    text: &str,
) -> Result<serde_json::Map<String, Value>, DecodeError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(DecodeError::NotObject(field)),
        Err(error) => Err(not_json(field, &error)),
    }
}

fn not_json(field: &'static str, error: &serde_json::Error) -> DecodeError {
    DecodeError::NotJson {
        field,
        reason: error.to_string(),
    }
}

/// Validates the fulfillment service's event; `event_id` is left for the caller to fill.
fn event_from(mut event: serde_json::Map<String, Value>) -> Result<FulfillmentEvent, DecodeError> {
    let mut take = |name: &'static str| -> Result<Option<String>, DecodeError> {
        match event.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => no_nul(name, text).map(Some),
            Some(_) => Err(DecodeError::NotAString(name)),
        }
    };
    let mut required = |name: &'static str| {
        take(name)?
            .filter(|text| !text.is_empty())
            .ok_or(DecodeError::MissingField(name))
    };
    let fulfillment_id = required("fulfillment_id")?;
    let order_id = required("order_id")?;
    let new_status = required("new_status")?;
    let new_status = new_status
        .parse()
        .map_err(|_| DecodeError::UnknownStatus(new_status))?;
    if let Some(event_type) = take("event_type")? {
        if event_type != EVENT_TYPE {
            return Err(DecodeError::WrongEventType(event_type));
        }
    }
    Ok(FulfillmentEvent {
        event_id: String::new(),
        fulfillment_id,
        order_id,
        new_status,
        old_status: take("old_status")?,
        timestamp: take("timestamp")?,
        traceparent: None,
        traceid: None,
    })
}

/// PostgreSQL's TEXT cannot hold NUL: one such id would fail the whole batch's transaction.
fn no_nul(field: &'static str, text: String) -> Result<String, DecodeError> {
    if text.contains('\0') {
        Err(DecodeError::NulCharacter(field))
    } else {
        Ok(text)
    }
}

fn non_empty_string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(text)) if !text.is_empty() && !text.contains('\0') => Some(text),
        _ => None,
    }
}

/// The raw payload's idempotency key: the same event published twice hashes the same.
fn raw_key(event: &FulfillmentEvent) -> String {
    let mut hasher = Sha256::new();
    for part in [
        event.fulfillment_id.as_str(),
        event.new_status.as_str(),
        event.timestamp.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("raw-{:x}", hasher.finalize())
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
