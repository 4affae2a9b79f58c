//! What a batch of events does to the orders it touches, computed in memory between the
//! statement that loads their state and the statements that write it.
//!
//! Pure, so the batch semantics (stream order, duplicates inside one batch, several events of one
//! order, one history row per real transition) are tested without a database.

use crate::topics::{Event, FulfillmentStatus, OrderStatus, Ordered, Outcome, Payment, State};

/// One decoded event and the stream entry it came from, in stream order.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub entry_id: &'a str,
    pub event: &'a Event,
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

/// An order row to update: its final status and, if its events reported one, its latest
/// fulfillment status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUpdate {
    pub order_id: String,
    pub status: OrderStatus,
    pub fulfillment_status: Option<FulfillmentStatus>,
}

/// Everything the batch writes, and each event's outcome (same index as the input).
#[derive(Debug, Default)]
pub struct Plan {
    pub outcomes: Vec<Outcome>,
    /// (event_id, stream_entry_id, outcome) for the inbox.
    pub processed: Vec<(String, String, &'static str)>,
    /// fulfillment_id → (order_id, final status), only those that moved.
    pub fulfillments: Vec<(String, String, FulfillmentStatus)>,
    /// payment_id → the payment as it ends, only those that moved.
    pub payments: Vec<(String, Payment)>,
    pub orders: Vec<OrderUpdate>,
    pub transitions: Vec<Transition>,
}

/// Folds the batch's events, in stream order, over the loaded state.
pub fn plan(batch: &[Incoming<'_>], mut state: State) -> Plan {
    let mut plan = Plan::default();
    let mut touched = Ordered::default();
    for incoming in batch {
        let event = incoming.event;
        let outcome = decide(incoming, &mut state, &mut plan.transitions);
        if outcome.is_recorded() {
            state.processed.insert(event.event_id.clone());
            plan.processed.push((
                event.event_id.clone(),
                incoming.entry_id.to_owned(),
                outcome.as_str(),
            ));
        }
        if outcome == Outcome::Applied {
            touched.insert(event.change.order_id());
        }
        plan.outcomes.push(outcome);
    }
    let changed = &state.changed;
    plan.fulfillments = changed
        .fulfillments
        .iter()
        .filter_map(|id| {
            let (order_id, status) = state.fulfillments.get(id)?.clone();
            Some((id.to_owned(), order_id, status))
        })
        .collect();
    plan.payments = changed
        .payments
        .iter()
        .filter_map(|id| Some((id.to_owned(), state.payments.get(id)?.clone())))
        .collect();
    plan.orders = touched
        .iter()
        .filter_map(|order_id| {
            Some(OrderUpdate {
                order_id: order_id.to_owned(),
                status: *state.orders.get(order_id)?,
                fulfillment_status: changed.fulfillment_status.get(order_id).copied(),
            })
        })
        .collect();
    plan
}

/// One event against the state so far: the checks every topic shares, then its own rules.
fn decide(
    incoming: &Incoming<'_>,
    state: &mut State,
    transitions: &mut Vec<Transition>,
) -> Outcome {
    let event = incoming.event;
    if state.processed.contains(&event.event_id) {
        return Outcome::Duplicate;
    }
    let order_id = event.change.order_id();
    let Some(&from) = state.orders.get(order_id) else {
        return Outcome::UnknownOrder;
    };
    let (outcome, moved) = event.change.apply(from, state);
    if let Some(moved) = moved {
        state.orders.insert(order_id.to_owned(), moved.to);
        transitions.push(Transition {
            order_id: order_id.to_owned(),
            from,
            to: moved.to,
            reason: moved.reason,
            event_id: event.event_id.clone(),
            stream_entry_id: incoming.entry_id.to_owned(),
        });
    }
    outcome
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
