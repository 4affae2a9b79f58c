//! What a batch of events does to the orders it touches, computed in memory between the
//! statement that loads their state and the statements that write it.
//!
//! Pure, so the batch semantics (stream order, duplicates inside one batch, several events of one
//! order, one history row per real transition) are tested without a database.

use std::collections::{HashMap, HashSet};

use crate::envelope::FulfillmentEvent;
use crate::fulfillment::{
    derived_order_status, fulfillment_step, order_moves, FulfillmentStatus, FulfillmentStep,
    OrderStatus,
};

/// One decoded event and the stream entry it came from, in stream order.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub entry_id: &'a str,
    pub event: &'a FulfillmentEvent,
}

/// What happened to one event. Every event of a batch gets exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The fulfillment moved (and the order with it, if the rules say so).
    Applied,
    /// The event id was already processed: nothing written.
    Duplicate,
    /// Older than what is recorded (out of order, or after a terminal status).
    Stale,
    /// Valid, but the fulfillment is already at that status.
    Ignored,
    /// The order does not exist (yet): left pending, so it is retried.
    UnknownOrder,
    /// Can never apply (the fulfillment belongs to another order): dead-lettered with this reason.
    Rejected(String),
}

impl Outcome {
    /// The name used in logs, the inbox and summaries.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::UnknownOrder => "unknown_order",
            Self::Rejected(_) => "rejected",
        }
    }

    /// Whether the event is recorded in the inbox. Unknown-order and rejected events are not, so
    /// a later delivery (after the order exists, or a requeue after a fix) is applied, not
    /// reported as a duplicate.
    fn is_recorded(&self) -> bool {
        matches!(self, Self::Applied | Self::Stale | Self::Ignored)
    }
}

/// The state of the batch's orders as loaded (under `FOR UPDATE`) from PostgreSQL.
#[derive(Debug, Default)]
pub struct Loaded {
    pub orders: HashMap<String, OrderStatus>,
    /// fulfillment_id → (order_id, status), for every fulfillment of the batch's orders and every
    /// fulfillment the batch names.
    pub fulfillments: HashMap<String, (String, FulfillmentStatus)>,
    /// The batch's event ids already in the inbox.
    pub processed: HashSet<String>,
}

/// An order status change, written as one `order_status_history` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub order_id: String,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub reason: String,
    pub event_id: String,
    pub stream_entry_id: String,
}

/// An order row to update: its final status and fulfillment status after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUpdate {
    pub order_id: String,
    pub status: OrderStatus,
    pub fulfillment_status: FulfillmentStatus,
}

/// Everything the batch writes, and each event's outcome (same index as the input).
#[derive(Debug, Default)]
pub struct Plan {
    pub outcomes: Vec<Outcome>,
    /// (event_id, stream_entry_id, outcome) for the inbox.
    pub processed: Vec<(String, String, &'static str)>,
    /// fulfillment_id → (order_id, final status), only those that moved.
    pub fulfillments: Vec<(String, String, FulfillmentStatus)>,
    pub orders: Vec<OrderUpdate>,
    pub transitions: Vec<Transition>,
}

/// Folds the batch's events, in stream order, over the loaded state.
pub fn plan(batch: &[Incoming<'_>], mut state: Loaded) -> Plan {
    let mut plan = Plan::default();
    // In first-moved order, with a set beside it: a batch moves hundreds of fulfillments.
    let mut moved_fulfillments: Vec<String> = Vec::new();
    let mut moved: HashSet<&str> = HashSet::new();
    let mut touched_orders: HashMap<String, FulfillmentStatus> = HashMap::new();
    let mut order_sequence: Vec<String> = Vec::new();

    for incoming in batch {
        let event = incoming.event;
        let outcome = decide(incoming, &mut state, &mut plan.transitions);
        if outcome == Outcome::Applied {
            if moved.insert(&event.fulfillment_id) {
                moved_fulfillments.push(event.fulfillment_id.clone());
            }
            if touched_orders
                .insert(event.order_id.clone(), event.new_status)
                .is_none()
            {
                order_sequence.push(event.order_id.clone());
            }
        }
        if outcome.is_recorded() {
            state.processed.insert(event.event_id.clone());
            plan.processed.push((
                event.event_id.clone(),
                incoming.entry_id.to_owned(),
                outcome.as_str(),
            ));
        }
        plan.outcomes.push(outcome);
    }

    plan.fulfillments = moved_fulfillments
        .into_iter()
        .filter_map(|id| {
            let (order_id, status) = state.fulfillments.get(&id)?.clone();
            Some((id, order_id, status))
        })
        .collect();
    plan.orders = order_sequence
        .into_iter()
        .filter_map(|order_id| {
            let status = *state.orders.get(&order_id)?;
            let fulfillment_status = *touched_orders.get(&order_id)?;
            Some(OrderUpdate {
                order_id,
                status,
                fulfillment_status,
            })
        })
        .collect();
    plan
}

/// One event against the state so far; updates the state and records a transition if any.
fn decide(
    incoming: &Incoming<'_>,
    state: &mut Loaded,
    transitions: &mut Vec<Transition>,
) -> Outcome {
    let event = incoming.event;
    if state.processed.contains(&event.event_id) {
        return Outcome::Duplicate;
    }
    let Some(&order_status) = state.orders.get(&event.order_id) else {
        return Outcome::UnknownOrder;
    };
    let current = match state.fulfillments.get(&event.fulfillment_id) {
        Some((owner, _)) if *owner != event.order_id => {
            return Outcome::Rejected(format!(
                "fulfillment {:?} belongs to order {:?}, not to order {:?}",
                event.fulfillment_id, owner, event.order_id
            ));
        }
        Some((_, status)) => Some(*status),
        None => None,
    };
    match fulfillment_step(current, event.new_status) {
        FulfillmentStep::Stale => return Outcome::Stale,
        FulfillmentStep::Unchanged => return Outcome::Ignored,
        FulfillmentStep::Advance => {}
    }
    state.fulfillments.insert(
        event.fulfillment_id.clone(),
        (event.order_id.clone(), event.new_status),
    );
    let siblings: Vec<FulfillmentStatus> = state
        .fulfillments
        .values()
        .filter(|(owner, _)| *owner == event.order_id)
        .map(|(_, status)| *status)
        .collect();
    if let Some(target) = derived_order_status(&siblings) {
        if order_moves(order_status, target) {
            state.orders.insert(event.order_id.clone(), target);
            transitions.push(Transition {
                order_id: event.order_id.clone(),
                from: order_status,
                to: target,
                reason: event.new_status.reason(),
                event_id: event.event_id.clone(),
                stream_entry_id: incoming.entry_id.to_owned(),
            });
        }
    }
    Outcome::Applied
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
