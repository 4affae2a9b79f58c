// TEMPORARY STUB until the decoder lands.
use crate::fulfillment::FulfillmentStatus;
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentEvent {
    pub event_id: String,
    pub fulfillment_id: String,
    pub order_id: String,
    pub new_status: FulfillmentStatus,
    pub old_status: Option<String>,
    pub timestamp: Option<String>,
    pub traceparent: Option<String>,
    pub traceid: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("stub")]
    Stub,
}
pub fn decode(
    _fields: &[(String, Vec<u8>)],
    _max_bytes: usize,
) -> Result<FulfillmentEvent, DecodeError> {
    Err(DecodeError::Stub)
}
