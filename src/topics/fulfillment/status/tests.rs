//! Table-driven tests of the status rules (docs/architecture.md, "Status rules").
//!
//! Expected values are written out by hand; the two matrices are also checked against a short
//! restatement of the rules' prose, so a typo in a table cannot hide a bug in the module.

use super::*;
use crate::topics::order::order_moves;
use FulfillmentStatus as F;
use FulfillmentStep::{Advance, Stale, Unchanged};
use OrderStatus as O;

// 1. fulfillment_step over every (None + 12 current) × 12 incoming pair.

/// `fulfillment_step(current, incoming)`: A = Advance, U = Unchanged, S = Stale.
/// Columns are the incoming status in `F::ALL` order: pending, planning, picking, pick_failed,
/// picked, packing, pack_failed, packed, ready, shipped, completed, cancelled.
#[rustfmt::skip]
const STEP_MATRIX: [(Option<F>, &str); 13] = [
    // current \ incoming:  pend plan pick pkFl pckd pack paFl pakd redy ship comp canc
    (None,                 "A    A    A    A    A    A    A    A    A    A    A    A"),
    (Some(F::Pending),     "U    A    A    A    A    A    A    A    A    A    A    A"),
    (Some(F::Planning),    "S    U    A    A    A    A    A    A    A    A    A    A"),
    (Some(F::Picking),     "S    S    U    A    A    A    A    A    A    A    A    A"),
    (Some(F::PickFailed),  "S    S    A    U    A    A    A    A    A    A    A    A"),
    (Some(F::Picked),      "S    S    S    S    U    A    A    A    A    A    A    A"),
    (Some(F::Packing),     "S    S    S    S    S    U    A    A    A    A    A    A"),
    (Some(F::PackFailed),  "S    S    S    S    S    A    U    A    A    A    A    A"),
    (Some(F::Packed),      "S    S    S    S    S    S    S    U    A    A    A    A"),
    (Some(F::Ready),       "S    S    S    S    S    S    S    S    U    A    A    A"),
    (Some(F::Shipped),     "S    S    S    S    S    S    S    S    S    U    A    S"),
    (Some(F::Completed),   "S    S    S    S    S    S    S    S    S    S    U    S"),
    (Some(F::Cancelled),   "S    S    S    S    S    S    S    S    S    S    S    U"),
];

fn step_code(step: FulfillmentStep) -> &'static str {
    match step {
        Advance => "A",
        Unchanged => "U",
        Stale => "S",
    }
}

/// The fulfillment lifecycle line, one stage per entry; statuses sharing a stage are retry loops.
#[rustfmt::skip]
const LIFECYCLE_STAGES: [&[F]; 9] = [
    &[F::Pending], &[F::Planning], &[F::Picking, F::PickFailed], &[F::Picked],
    &[F::Packing, F::PackFailed], &[F::Packed], &[F::Ready], &[F::Shipped], &[F::Completed],
];

/// The rules' prose restated, only to catch typos in `STEP_MATRIX`.
fn step_by_design(current: Option<F>, incoming: F) -> FulfillmentStep {
    let stage = |s: F| LIFECYCLE_STAGES.iter().position(|stage| stage.contains(&s));
    let shipped = stage(F::Shipped).unwrap();
    match current {
        None => Advance,
        Some(current) if current == incoming => Unchanged,
        Some(F::Completed | F::Cancelled) => Stale,
        Some(current) => match (stage(current).unwrap(), incoming) {
            (from, F::Cancelled) if from < shipped => Advance,
            (from, _) if stage(incoming).is_some_and(|to| to >= from) => Advance,
            _ => Stale,
        },
    }
}

#[test]
fn fulfillment_step_every_pair() {
    let currents: Vec<Option<F>> = STEP_MATRIX.iter().map(|(current, _)| *current).collect();
    let all: Vec<Option<F>> = std::iter::once(None).chain(F::ALL.map(Some)).collect();
    assert_eq!(currents, all, "one row per current status, in order");

    let mut mismatches = Vec::new();
    for (current, row) in STEP_MATRIX {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), F::ALL.len(), "row {current:?}");
        for (incoming, expected) in F::ALL.into_iter().zip(cells) {
            let design = step_code(step_by_design(current, incoming));
            assert_eq!(design, expected, "matrix typo: {current:?} → {incoming}");
            let got = step_code(fulfillment_step(current, incoming));
            if got != expected {
                mismatches.push((current, incoming, expected, got));
            }
        }
    }
    assert_eq!(mismatches, [], "(current, incoming, prose, got)");
}

// 2. derived_order_status: fulfillment statuses of one order → order status (None: no change).

const DERIVED: &[(&str, Option<O>)] = &[
    ("", None),
    // One fulfillment: exactly the mapping docs/architecture.md's "Status rules" state.
    ("pending", None),
    ("planning", Some(O::Processing)),
    ("picking", Some(O::Processing)),
    ("pick_failed", Some(O::Processing)),
    ("picked", Some(O::Processing)),
    ("packing", Some(O::Processing)),
    ("pack_failed", Some(O::Processing)),
    ("packed", Some(O::Processing)),
    ("ready", Some(O::Processing)),
    ("shipped", Some(O::Shipped)),
    ("completed", Some(O::Delivered)),
    ("cancelled", Some(O::Cancelled)),
    // Several fulfillments.
    ("shipped packing", Some(O::PartiallyShipped)),
    ("shipped shipped", Some(O::Shipped)),
    ("completed shipped", Some(O::Shipped)),
    ("completed completed", Some(O::Delivered)),
    ("completed cancelled", Some(O::Delivered)),
    ("shipped cancelled", Some(O::Shipped)),
    ("cancelled cancelled", Some(O::Cancelled)),
    ("cancelled packing", Some(O::Processing)),
    ("pending pending", None),
    ("pending picking", Some(O::Processing)),
    ("pending shipped", Some(O::PartiallyShipped)),
    ("pending cancelled", None),
    ("completed packing", Some(O::PartiallyShipped)),
    ("completed pending", Some(O::PartiallyShipped)),
    ("pick_failed pack_failed", Some(O::Processing)),
    ("shipped cancelled ready", Some(O::PartiallyShipped)),
    ("completed cancelled completed", Some(O::Delivered)),
    ("completed shipped cancelled", Some(O::Shipped)),
    ("cancelled cancelled cancelled", Some(O::Cancelled)),
];

fn statuses(names: &str) -> Vec<F> {
    names
        .split_whitespace()
        .map(|name| name.parse().unwrap())
        .collect()
}

#[test]
fn derived_order_status_table() {
    for (names, expected) in DERIVED {
        let mut fulfillments = statuses(names);
        let forward = derived_order_status(&fulfillments);
        fulfillments.reverse(); // the order of an order's fulfillments does not matter
        let reversed = derived_order_status(&fulfillments);
        assert_eq!((forward, reversed), (*expected, *expected), "[{names}]");
    }
}

// 3. order_moves over every OrderStatus × OrderStatus pair.

/// `order_moves(current, target)`: Y = moves, . = stays. Columns are the target in `O::ALL`
/// order: pending, confirmed, processing, partially_shipped, shipped, delivered, cancelled,
/// refunded, failed.
#[rustfmt::skip]
const MOVE_MATRIX: [(O, &str); 9] = [
    // current        target: pend conf proc part ship delv canc refd fail
    (O::Pending,             ".    Y    Y    Y    Y    Y    Y    .    ."),
    (O::Confirmed,           ".    .    Y    Y    Y    Y    Y    .    ."),
    (O::Processing,          ".    .    .    Y    Y    Y    Y    .    ."),
    (O::PartiallyShipped,    ".    .    .    .    Y    Y    .    .    ."),
    (O::Shipped,             ".    .    .    .    .    Y    .    .    ."),
    (O::Delivered,           ".    .    .    .    .    .    .    .    ."),
    (O::Cancelled,           ".    .    .    .    .    .    .    .    ."),
    (O::Refunded,            ".    .    .    .    .    .    .    .    ."),
    (O::Failed,              ".    .    .    .    .    .    .    .    ."),
];

/// The order rank line; statuses not on it are terminal.
#[rustfmt::skip]
const ORDER_RANKS: [O; 6] =
    [O::Pending, O::Confirmed, O::Processing, O::PartiallyShipped, O::Shipped, O::Delivered];

/// The rules' prose restated, only to catch typos in `MOVE_MATRIX`.
fn moves_by_design(current: O, target: O) -> bool {
    let rank = |s: O| ORDER_RANKS.iter().position(|r| *r == s);
    match (rank(current), rank(target)) {
        (None, _) => false,
        (Some(from), Some(to)) => to > from,
        (Some(from), None) => target == O::Cancelled && from <= rank(O::Processing).unwrap(),
    }
}

#[test]
fn order_moves_every_pair() {
    let currents: Vec<O> = MOVE_MATRIX.iter().map(|(current, _)| *current).collect();
    assert_eq!(currents, O::ALL, "one row per current status, in order");

    let mut mismatches = Vec::new();
    for (current, row) in MOVE_MATRIX {
        let cells: Vec<bool> = row.split_whitespace().map(|cell| cell == "Y").collect();
        assert_eq!(cells.len(), O::ALL.len(), "row {current}");
        for (target, expected) in O::ALL.into_iter().zip(cells) {
            let design = moves_by_design(current, target);
            assert_eq!(design, expected, "matrix typo: {current} → {target}");
            let got = order_moves(current, target);
            if got != expected {
                mismatches.push((current, target, expected, got));
            }
        }
    }
    assert_eq!(mismatches, [], "(current, target, prose, got)");
}

// 4. Scenarios, in their own file.
mod scenarios;

// 5. reason(), as_str()/Display and FromStr.

const FULFILLMENT_NAMES: [(F, &str, &str); 12] = [
    (F::Pending, "pending", "FulfillmentPending"),
    (F::Planning, "planning", "FulfillmentPlanning"),
    (F::Picking, "picking", "FulfillmentPicking"),
    (F::PickFailed, "pick_failed", "FulfillmentPickFailed"),
    (F::Picked, "picked", "FulfillmentPicked"),
    (F::Packing, "packing", "FulfillmentPacking"),
    (F::PackFailed, "pack_failed", "FulfillmentPackFailed"),
    (F::Packed, "packed", "FulfillmentPacked"),
    (F::Ready, "ready", "FulfillmentReady"),
    (F::Shipped, "shipped", "FulfillmentShipped"),
    (F::Completed, "completed", "FulfillmentCompleted"),
    (F::Cancelled, "cancelled", "FulfillmentCancelled"),
];

const ORDER_NAMES: [(O, &str); 9] = [
    (O::Pending, "pending"),
    (O::Confirmed, "confirmed"),
    (O::Processing, "processing"),
    (O::PartiallyShipped, "partially_shipped"),
    (O::Shipped, "shipped"),
    (O::Delivered, "delivered"),
    (O::Cancelled, "cancelled"),
    (O::Refunded, "refunded"),
    (O::Failed, "failed"),
];

/// Not a status of either enum: case, separators and whitespace matter.
const UNKNOWN: [&str; 6] = ["", "Pending", "SHIPPED", "pick-failed", " packed", "ready "];

#[test]
fn fulfillment_status_names_and_reasons() {
    let listed = FULFILLMENT_NAMES.map(|(status, ..)| status);
    assert_eq!(listed, F::ALL, "every status once");
    for (status, name, reason) in FULFILLMENT_NAMES {
        let shown = (status.as_str(), status.to_string(), status.reason());
        assert_eq!(shown, (name, name.to_owned(), reason.to_owned()));
        assert_eq!(name.parse(), Ok(status));
    }
    let order_only = ["delivered", "partially_shipped", "refunded"];
    for unknown in UNKNOWN.into_iter().chain(order_only) {
        let rejected = Err(UnknownStatus(unknown.to_owned()));
        assert_eq!(unknown.parse::<F>(), rejected);
    }
}

#[test]
fn order_status_names() {
    let listed = ORDER_NAMES.map(|(status, _)| status);
    assert_eq!(listed, O::ALL, "every status once");
    for (status, name) in ORDER_NAMES {
        assert_eq!(
            (status.as_str(), status.to_string()),
            (name, name.to_owned())
        );
        assert_eq!(name.parse(), Ok(status));
    }
    let fulfillment_only = ["completed", "picking", "partially-shipped"];
    for unknown in UNKNOWN.into_iter().chain(fulfillment_only) {
        let rejected = Err(UnknownStatus(unknown.to_owned()));
        assert_eq!(unknown.parse::<O>(), rejected);
    }
}
