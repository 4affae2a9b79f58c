//! Scenarios: sequences of events folded through the status rules the way the worker applies
//! them (one fulfillment map per order, history on every order change).

use super::*;
use std::collections::BTreeMap;
use FulfillmentStatus as F;
use FulfillmentStep::{Advance, Stale, Unchanged};
use OrderStatus as O;

#[derive(Debug)]
struct Outcome {
    order: O,
    fulfillments: BTreeMap<&'static str, F>,
    /// One code per event: A = Advance, U = Unchanged, S = Stale.
    steps: String,
    history: Vec<(O, O, String)>,
}

/// Applies `(fulfillment_id, new_status)` events of one order, starting at `order`.
fn fold(mut order: O, events: &[(&'static str, F)]) -> Outcome {
    let mut fulfillments = BTreeMap::new();
    let mut steps = Vec::new();
    let mut history = Vec::new();
    for &(id, incoming) in events {
        let step = fulfillment_step(fulfillments.get(id).copied(), incoming);
        steps.push(match step {
            Advance => "A",
            Unchanged => "U",
            Stale => "S",
        });
        if step != Advance {
            continue;
        }
        fulfillments.insert(id, incoming);
        let all: Vec<F> = fulfillments.values().copied().collect();
        if let Some(target) = derived_order_status(&all) {
            if order_moves(order, target) {
                history.push((order, target, incoming.reason()));
                order = target;
            }
        }
    }
    Outcome {
        order,
        fulfillments,
        steps: steps.join(" "),
        history,
    }
}

fn one(statuses: &[F]) -> Vec<(&'static str, F)> {
    statuses.iter().map(|status| ("f1", *status)).collect()
}

fn history(rows: &[(O, O, &str)]) -> Vec<(O, O, String)> {
    rows.iter()
        .map(|(from, to, reason)| (*from, *to, reason.to_string()))
        .collect()
}

const LIFECYCLE: [F; 9] = [
    F::Pending,
    F::Planning,
    F::Picking,
    F::Picked,
    F::Packing,
    F::Packed,
    F::Ready,
    F::Shipped,
    F::Completed,
];

const LIFECYCLE_HISTORY: [(O, O, &str); 3] = [
    (O::Confirmed, O::Processing, "FulfillmentPlanning"),
    (O::Processing, O::Shipped, "FulfillmentShipped"),
    (O::Shipped, O::Delivered, "FulfillmentCompleted"),
];

#[test]
fn scenario_full_lifecycle_in_order() {
    let out = fold(O::Confirmed, &one(&LIFECYCLE));
    assert_eq!(out.steps, "A A A A A A A A A");
    assert_eq!(out.history, history(&LIFECYCLE_HISTORY));
    assert_eq!(out.order, O::Delivered);
    assert_eq!(out.fulfillments["f1"], F::Completed);
}

#[test]
fn scenario_every_event_delivered_twice() {
    let twice: Vec<F> = LIFECYCLE
        .iter()
        .flat_map(|status| [*status, *status])
        .collect();
    let out = fold(O::Confirmed, &one(&twice));
    assert_eq!(out.steps, "A U A U A U A U A U A U A U A U A U");
    assert_eq!(
        out.history,
        history(&LIFECYCLE_HISTORY),
        "redelivery writes no history"
    );
    assert_eq!(out.order, O::Delivered);
}

#[test]
fn scenario_shipped_overtakes_packing() {
    let out = fold(
        O::Confirmed,
        &one(&[
            F::Planning,
            F::Picking,
            F::Shipped,
            F::Packing,
            F::Packed,
            F::Completed,
        ]),
    );
    assert_eq!(
        out.steps, "A A A S S A",
        "packing/packed after shipped are stale"
    );
    assert_eq!(
        out.history,
        history(&LIFECYCLE_HISTORY),
        "no backwards move to processing"
    );
    assert_eq!(out.order, O::Delivered);
}

#[test]
fn scenario_cancelled_after_shipped_is_stale() {
    let out = fold(O::Confirmed, &one(&[F::Planning, F::Shipped, F::Cancelled]));
    assert_eq!(out.steps, "A A S");
    assert_eq!(out.order, O::Shipped);
    assert_eq!(out.fulfillments["f1"], F::Shipped);
    assert_eq!(out.history, history(&LIFECYCLE_HISTORY[..2]));
}

#[test]
fn scenario_cancelled_before_shipped_cancels_processing_order() {
    let out = fold(
        O::Confirmed,
        &one(&[
            F::Planning,
            F::Picking,
            F::Cancelled,
            F::Shipped,
            F::Completed,
        ]),
    );
    assert_eq!(
        out.steps, "A A A S S",
        "cancelled is terminal for the fulfillment"
    );
    assert_eq!(out.order, O::Cancelled);
    assert_eq!(
        out.history,
        history(&[
            (O::Confirmed, O::Processing, "FulfillmentPlanning"),
            (O::Processing, O::Cancelled, "FulfillmentCancelled"),
        ])
    );
}

#[test]
fn scenario_cancelled_while_order_pending() {
    let out = fold(O::Pending, &one(&[F::Pending, F::Cancelled]));
    assert_eq!(out.steps, "A A");
    assert_eq!(
        out.history,
        history(&[(O::Pending, O::Cancelled, "FulfillmentCancelled")])
    );
}

#[test]
fn scenario_two_fulfillments_ship_one_after_the_other() {
    let events = [
        ("f1", F::Planning),
        ("f2", F::Planning),
        ("f1", F::Packing),
        ("f2", F::Picking),
        ("f1", F::Shipped),
        ("f2", F::Shipped),
        ("f1", F::Completed),
        ("f2", F::Completed),
    ];
    let out = fold(O::Confirmed, &events);
    assert_eq!(out.steps, "A A A A A A A A");
    assert_eq!(
        out.history,
        history(&[
            (O::Confirmed, O::Processing, "FulfillmentPlanning"),
            (O::Processing, O::PartiallyShipped, "FulfillmentShipped"),
            (O::PartiallyShipped, O::Shipped, "FulfillmentShipped"),
            (O::Shipped, O::Delivered, "FulfillmentCompleted"),
        ])
    );
    assert_eq!(out.order, O::Delivered);
}

#[test]
fn scenario_one_of_two_fulfillments_cancelled() {
    let events = [
        ("f1", F::Planning),
        ("f2", F::Planning),
        ("f1", F::Shipped),
        ("f2", F::Cancelled),
    ];
    let out = fold(O::Confirmed, &events);
    assert_eq!(
        out.history,
        history(&[
            (O::Confirmed, O::Processing, "FulfillmentPlanning"),
            (O::Processing, O::PartiallyShipped, "FulfillmentShipped"),
            (O::PartiallyShipped, O::Shipped, "FulfillmentCancelled"),
        ]),
        "the last live fulfillment has shipped, so the order has"
    );
}

#[test]
fn scenario_refunded_order_never_moves() {
    let mut statuses = LIFECYCLE.to_vec();
    statuses.push(F::Cancelled);
    let out = fold(O::Refunded, &one(&statuses));
    assert_eq!(
        out.steps, "A A A A A A A A A S",
        "the fulfillment itself is still tracked"
    );
    assert_eq!(out.order, O::Refunded);
    assert!(out.history.is_empty(), "{:?}", out.history);
    let cancelled = fold(O::Refunded, &one(&[F::Planning, F::Cancelled]));
    assert_eq!((cancelled.order, cancelled.history.len()), (O::Refunded, 0));
}

#[test]
fn scenario_pick_and_pack_retry_loops_stay_processing() {
    let statuses = [
        F::Planning,
        F::Picking,
        F::PickFailed,
        F::Picking,
        F::PickFailed,
        F::Picking,
        F::Picked,
        F::Packing,
        F::PackFailed,
        F::Packing,
    ];
    let out = fold(O::Confirmed, &one(&statuses));
    assert_eq!(
        out.steps, "A A A A A A A A A A",
        "retry loops advance both ways"
    );
    assert_eq!(out.order, O::Processing);
    assert_eq!(
        out.history,
        history(&LIFECYCLE_HISTORY[..1]),
        "one history row only"
    );
}
