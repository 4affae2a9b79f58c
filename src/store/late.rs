//! Late events: an event older than one already applied to its order (a replica died holding
//! it, and its entry was claimed after newer ones applied). Its order is recomputed from every
//! event recorded for it, in stream order, with the same rules ([`plan`]) as one worker applying
//! them one by one would have used; the difference is written. Pure, so it is property-tested.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::plan::{plan, Incoming, OrderUpdate, Plan, StatusChange, Transition};
use crate::stream::position::Position;
use crate::topics::{Event, OrderStatus, Outcome, State};

/// What the inbox holds of a batch: read with the batch's state, under its orders' locks.
#[derive(Debug, Default)]
pub struct Inbox {
    /// order id → position of its newest recorded event.
    pub newest: HashMap<String, Position>,
    /// event id → (order id, position) of the batch's events already recorded; `None` for rows
    /// recorded before positions were.
    pub recorded: HashMap<String, Option<(String, Position)>>,
}

/// The batch's orders that have a late event: one that stands before the newest recorded for
/// its order, or an earlier copy of a recorded event (the copy the streams hold first is the one
/// in-order processing applies).
pub fn late_orders(batch: &[Incoming<'_>], inbox: &Inbox) -> BTreeSet<String> {
    let mut late = BTreeSet::new();
    for incoming in batch {
        let order_id = incoming.event.change.order_id();
        let position = incoming.position();
        let is_late = match inbox.recorded.get(&incoming.event.event_id) {
            Some(Some((recorded_for, recorded_at))) if recorded_for == order_id => {
                position < *recorded_at
            }
            Some(None) => false,
            // Not recorded, or (the same id) for another order.
            _ => inbox
                .newest
                .get(order_id)
                .is_some_and(|newest| position < *newest),
        };
        if is_late {
            late.insert(order_id.to_owned());
        }
    }
    late
}

/// An event as recorded in the inbox, decoded again.
#[derive(Debug)]
pub struct Recorded {
    pub entry_id: String,
    pub position: Position,
    pub event: Event,
}

/// Everything recorded of one order with a late event.
#[derive(Debug)]
pub struct OrderRecord {
    pub order_id: String,
    /// Its status now (locked).
    pub status: OrderStatus,
    /// Its recorded events, in position order.
    pub events: Vec<Recorded>,
    /// Its `order_status_history` rows, oldest first.
    pub history: Vec<Transition>,
}

impl OrderRecord {
    /// The status the order had before the worker first moved it, if every status it has had
    /// since is one the worker set: each history row is a recorded event's, follows on from the
    /// one before, and the last is where the order stands. `None` when someone else changed it
    /// (the order service: a customer cancelled) or its history predates the record.
    fn untouched_since(&self) -> Option<OrderStatus> {
        let recorded: HashSet<&str> = self
            .events
            .iter()
            .map(|r| r.event.event_id.as_str())
            .collect();
        let by_worker = self
            .history
            .iter()
            .all(|t| recorded.contains(t.event_id.as_str()));
        let unbroken = self.history.windows(2).all(|w| w[0].to == w[1].from);
        let current = self.history.last().is_none_or(|t| t.to == self.status);
        let start = self.history.first().map_or(self.status, |t| t.from);
        (by_worker && unbroken && current).then_some(start)
    }
}

/// The batch's plan: the orders of `records` (those with a late event) recomputed, the others
/// planned as they come, the outcomes in batch order.
pub fn plan_batch(batch: &[Incoming<'_>], state: State, records: &[OrderRecord]) -> Plan {
    let mut refolded = Vec::new();
    let mut changed_outside = Vec::new();
    for record in records {
        let of_order: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].event.change.order_id() == record.order_id)
            .collect();
        let events: Vec<Incoming<'_>> = of_order.iter().map(|&i| batch[i]).collect();
        match refold(record, &events, &state) {
            Some(order) => refolded.push((of_order, order)),
            None => changed_outside.push(record.order_id.clone()),
        }
    }
    // The others, and orders changed outside the worker, apply as they come.
    let recomputed: HashSet<usize> = refolded.iter().flat_map(|(of, _)| of.clone()).collect();
    let rest: Vec<usize> = (0..batch.len())
        .filter(|i| !recomputed.contains(i))
        .collect();
    let events: Vec<Incoming<'_>> = rest.iter().map(|&i| batch[i]).collect();
    let mut merged = plan(&events, state);
    let mut outcomes = vec![Outcome::Duplicate; batch.len()];
    for (&i, outcome) in rest.iter().zip(merged.outcomes.drain(..)) {
        outcomes[i] = outcome;
    }
    for (of_order, order) in refolded {
        for (i, outcome) in of_order.into_iter().zip(order.outcomes) {
            outcomes[i] = outcome;
        }
        let plan = order.plan;
        merged.rerecorded.extend(plan.processed);
        merged.rows.absorb(plan.rows);
        merged
            .recomputed
            .extend(plan.orders.iter().map(|o| o.order_id.clone()));
        merged.orders.extend(plan.orders);
        merged.transitions.extend(plan.transitions);
        merged.changes.extend(order.change);
        merged.history_dropped.extend(order.dropped);
    }
    merged.outcomes = outcomes;
    merged.changed_outside = changed_outside;
    merged
}

/// One order recomputed: the plan of its whole record, the outcomes of the batch's events, the
/// history rows to delete before the plan's new ones are written, and the one step its current
/// status takes, if it moves (subscribers saw where it stood, not the history rewritten).
#[derive(Debug)]
struct Refolded {
    plan: Plan,
    outcomes: Vec<Outcome>,
    dropped: Vec<Transition>,
    change: Option<StatusChange>,
}

/// Recomputes `record`'s order with `batch` (its events in this batch, in position order):
/// every event folded in position order from the status before the worker first moved it.
/// `others` holds the rows its events name that belong to other orders (an event naming one is
/// rejected, as in-order processing rejects it). `None` when the order was changed by someone
/// else: their change stands, and the batch applies to the order as it is.
fn refold(record: &OrderRecord, batch: &[Incoming<'_>], others: &State) -> Option<Refolded> {
    let start = record.untouched_since()?;
    let all = in_position_order(record, batch);
    let order_id = &record.order_id;
    let incoming: Vec<Incoming<'_>> = all.iter().map(|(_, _, incoming)| *incoming).collect();
    let mut plan = plan(&incoming, starting_state(order_id, start, others));

    let mut outcomes = vec![Outcome::Duplicate; batch.len()];
    for ((_, index, _), outcome) in all.iter().zip(&plan.outcomes) {
        if let Some(index) = index {
            outcomes[*index] = outcome.clone();
        }
    }
    // The order is written even if no event moves it now: one that did may have been undone.
    if plan.orders.is_empty() {
        plan.orders.push(OrderUpdate {
            order_id: order_id.clone(),
            status: start,
            fulfillment_status: None,
        });
    }
    // History stays as it is up to the first row in-order processing would not have written,
    // and is rewritten from there: ids stay in stream order, and unchanged rows keep theirs.
    let kept = record
        .history
        .iter()
        .zip(&plan.transitions)
        .take_while(|(was, is)| was == is)
        .count();
    let dropped = record.history[kept..].to_vec();
    let change = step_taken(record, batch, &plan);
    plan.transitions.drain(..kept);
    Some(Refolded {
        plan,
        outcomes,
        dropped,
        change,
    })
}

/// `record`'s events and `batch` together, in position order, each with its position and, for
/// the batch's, its index in `batch`.
fn in_position_order<'a>(
    record: &'a OrderRecord,
    batch: &[Incoming<'a>],
) -> Vec<(Position, Option<usize>, Incoming<'a>)> {
    // A batch event recorded with a later copy takes that copy's place.
    let earlier_copies: HashSet<&str> = batch
        .iter()
        .filter(|incoming| {
            let position = incoming.position();
            record
                .events
                .iter()
                .any(|r| r.event.event_id == incoming.event.event_id && position < r.position)
        })
        .map(|incoming| incoming.event.event_id.as_str())
        .collect();
    // (position, batch index): at one position (a redelivered entry) the record comes first, so
    // the batch's copy is a duplicate.
    let mut all: Vec<(Position, Option<usize>, Incoming<'_>)> = record
        .events
        .iter()
        .filter(|r| !earlier_copies.contains(r.event.event_id.as_str()))
        .map(|r| {
            let incoming = Incoming {
                entry_id: &r.entry_id,
                event: &r.event,
            };
            (r.position, None, incoming)
        })
        .chain(
            batch
                .iter()
                .enumerate()
                .map(|(i, incoming)| (incoming.position(), Some(i), *incoming)),
        )
        .collect();
    all.sort_by_key(|(position, index, _)| (*position, index.is_some()));
    all
}

/// The state a recompute of `order_id` folds from: the order at `start`, and the rows of
/// `others` that belong to other orders.
fn starting_state(order_id: &str, start: OrderStatus, others: &State) -> State {
    State {
        orders: HashMap::from([(order_id.to_owned(), start)]),
        rows: others.rows.of_other_orders(order_id),
        ..State::default()
    }
}

/// The step a recomputed order's current status takes: from where it stood to where the
/// recompute leaves it, caused by the batch's first event of it (the late one or its company),
/// with the reason of the move that leads there ("Recomputed" when the order is back where the
/// worker found it).
fn step_taken(record: &OrderRecord, batch: &[Incoming<'_>], plan: &Plan) -> Option<StatusChange> {
    let now = plan.orders.first()?.status;
    let cause = batch.first()?;
    if now == record.status {
        return None;
    }
    let reason = plan
        .transitions
        .iter()
        .rev()
        .find(|t| t.to == now)
        .map_or("Recomputed", |t| t.reason.as_str());
    Some(StatusChange::new(cause, record.status, now, reason))
}

#[cfg(test)]
mod tests;
