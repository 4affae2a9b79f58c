//! What a batch of events does to the orders it touches, computed in memory between the
//! statement that loads their state and the statements that write it.
//!
//! Pure, so the batch semantics (stream order, duplicates inside one batch, several events of one
//! order, one history row per real transition) are tested without a database.

use crate::envelope::TraceContext;
use crate::stream::position::Position;
use crate::topics::{Event, FulfillmentStatus, OrderStatus, Ordered, Outcome, Rows, State};

/// One decoded event and the stream entry it came from, in stream order.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub entry_id: &'a str,
    pub event: &'a Event,
}

impl Incoming<'_> {
    /// Where the event stands among every subscribed stream's events.
    pub fn position(&self) -> Position {
        Position::new(self.entry_id, self.event.topic.stage())
    }
}

/// A `processed_events` row: the event's outcome, and what it said, where it stands and which
/// order it is of, so its order can be recomputed if an older event turns up late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub event_id: String,
    pub entry_id: String,
    pub outcome: &'static str,
    pub order_id: String,
    pub topic: &'static str,
    pub position: Position,
    /// A JSON object.
    pub said: String,
}

impl InboxRow {
    pub(super) fn new(incoming: &Incoming<'_>, outcome: &Outcome) -> Self {
        let event = incoming.event;
        Self {
            event_id: event.event_id.clone(),
            entry_id: incoming.entry_id.to_owned(),
            outcome: outcome.as_str(),
            order_id: event.change.order_id().to_owned(),
            topic: event.topic.name(),
            position: incoming.position(),
            said: serde_json::Value::Object(event.change.said()).to_string(),
        }
    }
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
    /// The event's `metadata` as JSON text (serde_json's: one spelling for one value, so a row
    /// read back compares equal to the same row planned again).
    pub metadata: Option<String>,
}

/// A step of an order's current status, published as `orders.order.status_changed` through
/// the outbox: what changed, and the entry that caused it (its trace continues in the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub order_id: String,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub reason: String,
    pub topic: &'static str,
    pub entry_id: String,
    pub trace: TraceContext,
}

impl StatusChange {
    /// `from → to`, caused by `incoming`.
    pub(super) fn new(
        incoming: &Incoming<'_>,
        from: OrderStatus,
        to: OrderStatus,
        reason: &str,
    ) -> Self {
        Self {
            order_id: incoming.event.change.order_id().to_owned(),
            from,
            to,
            reason: reason.to_owned(),
            topic: incoming.event.topic.name(),
            entry_id: incoming.entry_id.to_owned(),
            trace: incoming.event.trace.clone(),
        }
    }
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
    /// The inbox rows of the events recorded.
    pub processed: Vec<InboxRow>,
    /// The topics' own rows as the events leave them: those changed are written.
    pub rows: Rows,
    pub orders: Vec<OrderUpdate>,
    /// The history rows to insert.
    pub transitions: Vec<Transition>,
    /// The steps each order's current status takes, in order: one outbox row each. The same
    /// as `transitions` but for a recomputed order, which publishes one step (where it stood
    /// → where it stands now) and none for the history it rewrites.
    pub changes: Vec<StatusChange>,
    /// Orders recomputed for a late event: their events' inbox rows, rewritten…
    pub rerecorded: Vec<InboxRow>,
    /// …and their history rows that in-order processing would not have written (deleted).
    pub history_dropped: Vec<Transition>,
    /// Orders recomputed from their recorded events for a late event.
    pub recomputed: Vec<String>,
    /// Orders with a late event that were changed by someone else since the worker last moved
    /// them: the late event was applied to them as they are.
    pub changed_outside: Vec<String>,
    /// Statements the transaction sent, BEGIN and COMMIT included.
    pub statements: usize,
}

/// Folds the batch's events, in stream order, over the loaded state.
pub fn plan(batch: &[Incoming<'_>], mut state: State) -> Plan {
    let mut plan = Plan::default();
    let mut touched = Ordered::default();
    for incoming in batch {
        let event = incoming.event;
        let moved_before = plan.transitions.len();
        let outcome = decide(incoming, &mut state, &mut plan.transitions);
        if let Some(t) = plan.transitions.get(moved_before) {
            let change = StatusChange::new(incoming, t.from, t.to, &t.reason);
            plan.changes.push(change);
        }
        if outcome.is_recorded() {
            state
                .processed
                .insert(event.change.order_id(), &event.event_id);
            plan.processed.push(InboxRow::new(incoming, &outcome));
        }
        if outcome == Outcome::Applied {
            touched.insert(event.change.order_id());
        }
        plan.outcomes.push(outcome);
    }
    let changed = &state.changed;
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
    plan.rows = state.rows;
    plan
}

/// One event against the state so far: the checks every topic shares, then its own rules.
fn decide(
    incoming: &Incoming<'_>,
    state: &mut State,
    transitions: &mut Vec<Transition>,
) -> Outcome {
    let event = incoming.event;
    if state
        .processed
        .contains(event.change.order_id(), &event.event_id)
    {
        return Outcome::Duplicate;
    }
    let order_id = event.change.order_id();
    if let Some(status) = state.foreign.get(order_id) {
        return Outcome::Rejected(format!(
            "order {order_id:?} has the status {status:?}, which the order service set and the \
             worker's rules do not know: nothing was changed (replay it once the order is in a \
             status the rules know)"
        ));
    }
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
            metadata: event.change.metadata().map(ToString::to_string),
        });
    }
    outcome
}

#[cfg(test)]
mod tests;
