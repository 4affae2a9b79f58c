//! Opens one Redis Stream entry as Dapr's `pubsub.redis` component writes it (one of each
//! variant is in `tests/fixtures/dapr-stream-entries.jsonl`), whatever the topic: the CloudEvent's
//! id and trace context, and the publisher's [`Payload`], which the topic then reads.
//!
//! The worker replaced a Dapr sidecar but must read the entries that publishers' sidecars keep
//! writing, whatever their Dapr version and content type: a CloudEvent whose payload is a JSON
//! object, a JSON string or `data_base64`, or a raw payload; with or without the `metadata`
//! field that Dapr 1.13 added. Pure, so every shape is a table-driven test. Whatever cannot be
//! decoded is a [`DecodeError`]: no retry will ever fix the entry, so it is dead-lettered.

use std::collections::HashMap;

use base64::Engine;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Bigger entries are dead-lettered before parsing: one huge entry must not cost a batch the
/// memory and time of parsing it. Far above a real event (under 1 KiB with its envelope).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

// Which JSON document an error is about. The entry's `data` and the CloudEvent's `data` share a
// name, and an operator reading the dead-letter stream must know which one to look at.
pub(crate) const ENTRY_DATA: &str = "`data`";
pub(crate) const CLOUD_EVENT_DATA: &str = "CloudEvent `data`";
pub(crate) const DECODED_BASE64: &str = "decoded `data_base64`";

/// An entry opened: the CloudEvent's part, and the publisher's event.
#[derive(Debug)]
pub struct Opened {
    /// The CloudEvent `id`; `None` for a raw payload (the topic derives a key).
    pub id: Option<String>,
    pub trace: TraceContext,
    pub payload: Payload,
}

/// The publisher's W3C trace context, as the CloudEvent carries it: the worker's span of the
/// event continues that trace, and its log lines name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`, or Dapr's older duplicate `traceid` when that is all there is.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// Why an entry can never be applied. Permanent by construction; the Display text is the
/// `error` field written to the dead-letter stream, so it names the field or value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("entry is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("entry has no `data` field")]
    NoData,
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("{what} is not JSON: {reason}")]
    NotJson { what: &'static str, reason: String },
    #[error("{what} is a JSON {found}, not an object")]
    NotObject {
        what: &'static str,
        found: &'static str,
    },
    #[error("CloudEvent has no `id`")]
    NoId,
    #[error("CloudEvent has neither `data` nor `data_base64`")]
    NoPayload,
    #[error("`data_base64` is not valid base64: {0}")]
    BadBase64(String),
    #[error("`{0}` is not a string")]
    NotAString(&'static str),
    #[error("event has no `{0}`")]
    MissingField(&'static str),
    #[error("`new_status` {0:?} is not a known fulfillment status")]
    UnknownStatus(String),
    #[error("`amount` {0:?} is not a decimal number")]
    NotADecimal(String),
    #[error("`event_type` is {found:?}, expected {expected:?}")]
    WrongEventType {
        found: String,
        expected: &'static str,
    },
    #[error("`{0}` contains a NUL character, which PostgreSQL cannot store")]
    NulCharacter(&'static str),
    #[error("`order_id` {0:?} is not a UUID, and the orders table's `id` column is a UUID")]
    NotAUuid(String),
}

/// What an order id must be to name a row of the orders table: what its `id` column holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrderIds {
    /// Any non-empty string (a `TEXT` or `VARCHAR` column).
    #[default]
    Text,
    /// A UUID in any usual spelling, kept in PostgreSQL's own (lower case, hyphenated), so that
    /// two spellings of one id are one order everywhere the worker compares ids.
    Uuid,
}

impl OrderIds {
    fn accept(self, id: String) -> Result<String, DecodeError> {
        match self {
            Self::Text => Ok(id),
            Self::Uuid => match uuid::Uuid::try_parse(&id) {
                Ok(parsed) => Ok(parsed.hyphenated().to_string()),
                Err(_) => Err(DecodeError::NotAUuid(id)),
            },
        }
    }
}

/// A field that should be a string. Anything else is kept rather than failing the whole
/// parse, because serde's type error would not say which field was wrong.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    String(String),
    Other(IgnoredAny),
}

/// The CloudEvent attributes the worker uses; `source`, `type`, `time`… are not needed.
#[derive(Deserialize)]
struct CloudEvent {
    /// Present in every CloudEvent: what tells one from a raw payload.
    specversion: Option<IgnoredAny>,
    id: Option<Text>,
    /// An object, a JSON string or, for other content types, anything: the shape varies.
    data: Option<Value>,
    data_base64: Option<Text>,
    traceparent: Option<Text>,
    traceid: Option<Text>,
    tracestate: Option<Text>,
}

/// Opens one stream entry. `fields` are its field/value pairs as Redis returned them, in any
/// order (Dapr writes them in Go map order); `max_bytes` bounds their total size.
pub fn open(fields: &[(String, Vec<u8>)], max_bytes: usize) -> Result<Opened, DecodeError> {
    // Every field is held in memory at once, so their total cannot overflow.
    let size: usize = fields
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if size > max_bytes {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    // Dapr writes each field once; should a field repeat, the first one counts.
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let data = field("data").ok_or(DecodeError::NoData)?;
    let data = std::str::from_utf8(data).map_err(|_| DecodeError::NotUtf8(ENTRY_DATA))?;
    let raw = is_raw_payload(field("metadata"));
    // A CloudEvent is read in one pass, its other attributes skipped unread; anything else
    // (a raw payload, an event without an envelope, JSON the pass refuses) through `Value`,
    // whose errors say what is wrong.
    if !raw && data.trim_start().starts_with('{') {
        if let Ok(envelope) = serde_json::from_str::<CloudEvent>(data) {
            if envelope.specversion.is_some() {
                return opened(envelope);
            }
        }
    }
    let body = parse_object(ENTRY_DATA, data)?;
    if raw || !body.contains_key("specversion") {
        return Ok(Opened {
            id: None,
            trace: TraceContext::default(),
            payload: Payload::new(body),
        });
    }
    opened(deserialize(ENTRY_DATA, body)?)
}

/// The id, trace context and payload of a CloudEvent.
fn opened(envelope: CloudEvent) -> Result<Opened, DecodeError> {
    let id = match string("id", envelope.id)? {
        Some(id) if !id.is_empty() => no_nul("id", id)?,
        _ => return Err(DecodeError::NoId),
    };
    let payload = match (envelope.data, envelope.data_base64) {
        (Some(Value::Object(event)), _) => event,
        // Dapr embeds the payload as a string when it did not parse as JSON, or when the
        // publisher declared a non-JSON content type such as text/plain.
        (Some(Value::String(text)), _) => parse_object(CLOUD_EVENT_DATA, &text)?,
        (Some(other), _) => {
            return Err(DecodeError::NotObject {
                what: CLOUD_EVENT_DATA,
                found: kind(&other),
            })
        }
        (None, encoded) => {
            let encoded = string("data_base64", encoded)?.ok_or(DecodeError::NoPayload)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| DecodeError::BadBase64(error.to_string()))?;
            let text =
                String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8(DECODED_BASE64))?;
            parse_object(DECODED_BASE64, &text)?
        }
    };
    Ok(Opened {
        id: Some(id),
        trace: TraceContext {
            traceparent: trace(envelope.traceparent).or(trace(envelope.traceid)),
            tracestate: trace(envelope.tracestate),
        },
        payload: Payload::new(payload),
    })
}

/// The publisher's event object, read field by field with errors that name the field.
#[derive(Debug)]
pub struct Payload {
    fields: Map<String, Value>,
    order_ids: OrderIds,
}

impl Payload {
    fn new(fields: Map<String, Value>) -> Self {
        Self {
            fields,
            order_ids: OrderIds::default(),
        }
    }

    /// An event as the worker recorded it (`processed_events.said`), to be decoded again.
    pub fn recorded(said: Map<String, Value>) -> Self {
        Self::new(said)
    }

    /// Reads `order_id` as `order_ids` says (by default any non-empty string).
    pub fn expecting(self, order_ids: OrderIds) -> Self {
        Self { order_ids, ..self }
    }

    /// The required `order_id`, as the orders table holds such ids.
    pub fn order_id(&self) -> Result<String, DecodeError> {
        self.order_ids.accept(self.required("order_id")?)
    }

    /// Checks `event_type`, when present: an event of another type was published to the wrong
    /// topic. First, because such an event is expected to lack the topic's fields, and its type
    /// is then the useful thing to report.
    pub fn expect_event_type(&self, expected: &'static str) -> Result<(), DecodeError> {
        match self.text("event_type")? {
            Some(found) if found != expected => {
                Err(DecodeError::WrongEventType { found, expected })
            }
            _ => Ok(()),
        }
    }

    /// An optional string: `None` when absent or null; another type is an error naming it.
    pub fn text(&self, name: &'static str) -> Result<Option<String>, DecodeError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(DecodeError::NotAString(name)),
        }
    }

    /// An optional string the worker writes to PostgreSQL, whose TEXT refuses NUL: one such
    /// value would fail its batch's transaction, again at each redelivery.
    pub fn stored_text(&self, name: &'static str) -> Result<Option<String>, DecodeError> {
        self.text(name)?.map(|text| no_nul(name, text)).transpose()
    }

    /// A required string: present, non-empty, and storable in PostgreSQL.
    pub fn required(&self, name: &'static str) -> Result<String, DecodeError> {
        match self.text(name)? {
            Some(text) if !text.is_empty() => no_nul(name, text),
            _ => Err(DecodeError::MissingField(name)),
        }
    }

    /// An optional field as it stands in the JSON, for values that may be a number or a string.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|value| !value.is_null())
    }

    /// Every field the publisher sent, read or not.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

/// Trace context only decorates logs: an empty or malformed one is dropped, never fatal.
fn trace(field: Option<Text>) -> Option<String> {
    match field {
        Some(Text::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    }
}

/// Whether the publisher set `rawPayload` (then `data` is the event itself, even if it looks
/// like a CloudEvent). Dapr reads the flag with Go's `strconv.ParseBool`, so accept what that
/// accepts as true. A `metadata` that is not a JSON object carries no flag.
fn is_raw_payload(metadata: Option<&Vec<u8>>) -> bool {
    // Parsed only when it can hold the flag: most entries' metadata is `{}` or absent.
    let metadata = metadata.filter(|bytes| bytes.windows(10).any(|w| w == b"rawPayload"));
    let metadata =
        metadata.and_then(|bytes| serde_json::from_slice::<HashMap<String, Value>>(bytes).ok());
    let flag = metadata
        .as_ref()
        .and_then(|m| m.get("rawPayload")?.as_str());
    matches!(flag, Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// Parses `text` as a JSON object. Through `Value` first, because serde would read a JSON array
/// into a struct positionally, and an operator needs "not an object" rather than a length error.
fn parse_object(what: &'static str, text: &str) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(DecodeError::NotObject {
            what,
            found: kind(&other),
        }),
        Err(error) => Err(DecodeError::NotJson {
            what,
            reason: error.to_string(),
        }),
    }
}

/// Reads an object into one of the structs above. Their fields accept any JSON value, so this
/// cannot fail in practice; if it ever did, the entry is still undecodable, not a panic.
fn deserialize<T: serde::de::DeserializeOwned>(
    what: &'static str,
    object: Map<String, Value>,
) -> Result<T, DecodeError> {
    serde_json::from_value(Value::Object(object)).map_err(|error| DecodeError::NotJson {
        what,
        reason: error.to_string(),
    })
}

/// Names what was found where an object was expected, for the error message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A CloudEvent attribute: `None` when absent or null; another type is an error naming it.
fn string(name: &'static str, field: Option<Text>) -> Result<Option<String>, DecodeError> {
    match field {
        None => Ok(None),
        Some(Text::String(text)) => Ok(Some(text)),
        Some(Text::Other(_)) => Err(DecodeError::NotAString(name)),
    }
}

/// PostgreSQL's TEXT rejects NUL, and the batch is one transaction: one such id would fail
/// every event in it, again at each redelivery.
fn no_nul(name: &'static str, text: String) -> Result<String, DecodeError> {
    if text.contains('\0') {
        Err(DecodeError::NulCharacter(name))
    } else {
        Ok(text)
    }
}
