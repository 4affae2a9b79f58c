//! `fulfillment.status_changed`: the fulfillment service's status changes, which move the
//! fulfillment and, derived from all of an order's fulfillments, the order.

mod status;
mod table;

use serde_json::{Map, Value};

use super::order::{order_moves, OrderStatus};
use super::{Change, Move, Outcome, Row, State, StreamKey, Topic};
use crate::envelope::{DecodeError, Payload};
pub use status::FulfillmentStatus;
use status::{derived_order_status, fulfillment_step, FulfillmentStep};
pub use table::TABLE;

pub const STATUS_CHANGED: StatusChanged = StatusChanged;

/// The topic's name, Dapr's and the default of `STREAM`.
pub const NAME: &str = "fulfillment.status_changed";

/// The start of each fulfillment event's log line, in the words of the order service's logs:
/// operators grep it, and the replica tooling counts events by it.
pub const PROCESSING_EVENT: &str = "Processing fulfillment status changed event";

/// The `fulfillment.status_changed` topic.
pub struct StatusChanged;

impl Topic for StatusChanged {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `STREAM`: the worker served this topic alone first.
    fn stream_key(&self) -> StreamKey {
        StreamKey::Base
    }

    /// After the payment: an order is fulfilled once paid.
    fn stage(&self) -> u8 {
        2
    }

    fn fields(&self) -> &'static [&'static str] {
        &[
            "event_type",
            "fulfillment_id",
            "order_id",
            "new_status",
            "old_status",
            "metadata",
            "timestamp",
        ]
    }

    fn other_names(&self) -> &'static [&'static str] {
        &["fulfillments.fulfillment.status_changed"]
    }

    fn decode(&self, payload: Payload) -> Result<Box<dyn Change>, DecodeError> {
        payload.expect_event_type(self.name())?;
        let fulfillment_id = payload.required("fulfillment_id")?;
        let order_id = payload.order_id()?;
        let new_status = payload.required("new_status")?;
        let new_status = new_status
            .parse()
            .map_err(|_| DecodeError::UnknownStatus(new_status))?;
        Ok(Box::new(FulfillmentEvent {
            fulfillment_id,
            order_id,
            new_status,
            old_status: payload.text("old_status")?,
            metadata: payload.value("metadata").cloned(),
            timestamp: payload.text("timestamp")?,
        }))
    }
}

/// The fulfillment service's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentEvent {
    pub fulfillment_id: String,
    pub order_id: String,
    pub new_status: FulfillmentStatus,
    /// As the publisher saw it; informative only, since the worker keeps its own record.
    pub old_status: Option<String>,
    /// Where it happens (`{"warehouse_id": …, "carrier": …}`), any JSON as the publisher sent
    /// it: kept in the history row of the move the event causes, for operators.
    pub metadata: Option<Value>,
    pub timestamp: Option<String>,
}

impl Change for FulfillmentEvent {
    fn order_id(&self) -> &str {
        &self.order_id
    }

    fn row(&self) -> Option<Row<'_>> {
        Some(Row {
            table: &TABLE,
            id: &self.fulfillment_id,
        })
    }

    fn identity(&self) -> Vec<&str> {
        vec![
            &self.fulfillment_id,
            self.new_status.as_str(),
            self.timestamp.as_deref().unwrap_or(""),
        ]
    }

    #[cfg(test)]
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn said(&self) -> Map<String, Value> {
        let mut said = Map::new();
        said.insert("fulfillment_id".into(), self.fulfillment_id.clone().into());
        said.insert("new_status".into(), self.new_status.as_str().into());
        if let Some(metadata) = &self.metadata {
            said.insert("metadata".into(), metadata.clone());
        }
        said
    }

    fn metadata(&self) -> Option<&Value> {
        self.metadata.as_ref()
    }

    fn describe(&self) -> String {
        format!(
            "{}: fulfillment_id={}, order_id={}, new_status={}",
            PROCESSING_EVENT, self.fulfillment_id, self.order_id, self.new_status
        )
    }

    fn apply(&self, order: OrderStatus, state: &mut State) -> (Outcome, Option<Move>) {
        let fulfillments = &mut state.rows.fulfillments;
        let current = match fulfillments.get(&self.fulfillment_id) {
            Some((owner, _)) if *owner != self.order_id => {
                let reason = format!(
                    "fulfillment {:?} belongs to order {:?}, not to order {:?}",
                    self.fulfillment_id, owner, self.order_id
                );
                return (Outcome::Rejected(reason), None);
            }
            Some((_, status)) => Some(*status),
            None => None,
        };
        match fulfillment_step(current, self.new_status) {
            FulfillmentStep::Stale => return (Outcome::Stale, None),
            FulfillmentStep::Unchanged => return (Outcome::Ignored, None),
            FulfillmentStep::Advance => {}
        }
        let row = (self.order_id.clone(), self.new_status);
        fulfillments.set(&self.fulfillment_id, row);
        let siblings: Vec<FulfillmentStatus> = (fulfillments.of_order(&self.order_id))
            .map(|(_, (_, status))| *status)
            .collect();
        state
            .changed
            .fulfillment_status
            .insert(self.order_id.clone(), self.new_status);
        let to = derived_order_status(&siblings).filter(|&target| order_moves(order, target));
        let reason = self.new_status.reason();
        (Outcome::Applied, to.map(|to| Move { to, reason }))
    }
}
