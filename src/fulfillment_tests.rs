//! Table-driven tests of the status rules of DESIGN.md §2.
//!
//! Expected values are written out by hand (matrices and tables below) and, for the two
//! matrices, cross-checked against a small restatement of the DESIGN prose, so a typo in a
//! table and a bug in the module cannot cancel each other out.

use super::*;
use FulfillmentStatus as F;
use FulfillmentStep::{Advance, Stale, Unchanged};
use OrderStatus as O;

// ---------------------------------------------------------------------------------------------
// 1. fulfillment_step: every (None + 12 current) × 12 incoming pair.
// ---------------------------------------------------------------------------------------------

/// `fulfillment_step(current, incoming)`: A = Advance, U = Unchanged, S = Stale.
/// Columns are the incoming status in `F::ALL` order: pending, planning, picking, pick_failed,
/// picked, packing, pack_failed, packed, ready, shipped, completed, cancelled.
#[rustfmt::skip]
const STEP_MATRIX: [(Option<F>, &str); 13] = [
    // current                incoming: pend plan pick pkFl pckd pack paFl pakd redy ship comp canc
    (None,                 /* never seen */ "A    A    A    A    A    A    A    A    A    A    A    A"),
    (Some(F::Pending),                      "U    A    A    A    A    A    A    A    A    A    A    A"),
    (Some(F::Planning),                     "S    U    A    A    A    A    A    A    A    A    A    A"),
    (Some(F::Picking),                      "S    S    U    A    A    A    A    A    A    A    A    A"),
    (Some(F::PickFailed),                   "S    S    A    U    A    A    A    A    A    A    A    A"),
    (Some(F::Picked),                       "S    S    S    S    U    A    A    A    A    A    A    A"),
    (Some(F::Packing),                      "S    S    S    S    S    U    A    A    A    A    A    A"),
    (Some(F::PackFailed),                   "S    S    S    S    S    A    U    A    A    A    A    A"),
    (Some(F::Packed),                       "S    S    S    S    S    S    S    U    A    A    A    A"),
    (Some(F::Ready),                        "S    S    S    S    S    S    S    S    U    A    A    A"),
    (Some(F::Shipped),                      "S    S    S    S    S    S    S    S    S    U    A    S"),
    (Some(F::Completed),                    "S    S    S    S    S    S    S    S    S    S    U    S"),
    (Some(F::Cancelled),                    "S    S    S    S    S    S    S    S    S    S    S    U"),
];

fn step_code(code: &str) -> FulfillmentStep {
    match code {
        "A" => Advance,
        "U" => Unchanged,
        "S" => Stale,
        other => panic!("bad step code {other:?}"),
    }
}

/// DESIGN.md §2's lifecycle line, one stage per entry; statuses sharing a stage are retry loops.
const LIFECYCLE_STAGES: [&[F]; 9] = [
    &[F::Pending],
    &[F::Planning],
    &[F::Picking, F::PickFailed],
    &[F::Picked],
    &[F::Packing, F::PackFailed],
    &[F::Packed],
    &[F::Ready],
    &[F::Shipped],
    &[F::Completed],
];

/// The DESIGN prose restated, only to catch typos in `STEP_MATRIX`.
fn step_by_design(current: Option<F>, incoming: F) -> FulfillmentStep {
    let stage = |s: F| LIFECYCLE_STAGES.iter().position(|stage| stage.contains(&s));
    let Some(current) = current else {
        return Advance;
    };
    if current == incoming {
        return Unchanged;
    }
    if matches!(current, F::Completed | F::Cancelled) {
        return Stale;
    }
    match (stage(current), stage(incoming)) {
        (Some(from), Some(to)) if to >= from => Advance,
        (Some(from), None) if incoming == F::Cancelled && from < stage(F::Shipped).unwrap() => {
            Advance
        }
        _ => Stale,
    }
}

#[test]
fn fulfillment_step_every_pair() {
    let currents: Vec<Option<F>> = STEP_MATRIX.iter().map(|(current, _)| *current).collect();
    let all: Vec<Option<F>> = std::iter::once(None).chain(F::ALL.map(Some)).collect();
    assert_eq!(currents, all, "one matrix row per current status, in order");

    let mut failures = Vec::new();
    for (current, row) in STEP_MATRIX {
        let cells: Vec<FulfillmentStep> = row.split_whitespace().map(step_code).collect();
        assert_eq!(cells.len(), F::ALL.len(), "row {current:?}");
        for (incoming, expected) in F::ALL.into_iter().zip(cells) {
            assert_eq!(
                step_by_design(current, incoming),
                expected,
                "matrix typo at {current:?} → {incoming}"
            );
            let got = fulfillment_step(current, incoming);
            if got != expected {
                failures.push(format!(
                    "{current:?} → {incoming}: expected {expected:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fulfillment_step disagrees with DESIGN:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 2. derived_order_status
// ---------------------------------------------------------------------------------------------

/// Fulfillment statuses of one order → the order status they call for (`None`: no change).
const DERIVED: &[(&[F], Option<O>)] = &[
    // No fulfillment known.
    (&[], None),
    // One fulfillment: exactly DESIGN's mapping table.
    (&[F::Pending], None),
    (&[F::Planning], Some(O::Processing)),
    (&[F::Picking], Some(O::Processing)),
    (&[F::PickFailed], Some(O::Processing)),
    (&[F::Picked], Some(O::Processing)),
    (&[F::Packing], Some(O::Processing)),
    (&[F::PackFailed], Some(O::Processing)),
    (&[F::Packed], Some(O::Processing)),
    (&[F::Ready], Some(O::Processing)),
    (&[F::Shipped], Some(O::Shipped)),
    (&[F::Completed], Some(O::Delivered)),
    (&[F::Cancelled], Some(O::Cancelled)),
    // Several fulfillments.
    (&[F::Shipped, F::Packing], Some(O::PartiallyShipped)),
    (&[F::Shipped, F::Shipped], Some(O::Shipped)),
    (&[F::Completed, F::Shipped], Some(O::Shipped)),
    (&[F::Completed, F::Completed], Some(O::Delivered)),
    (&[F::Completed, F::Cancelled], Some(O::Delivered)),
    (&[F::Shipped, F::Cancelled], Some(O::Shipped)),
    (&[F::Cancelled, F::Cancelled], Some(O::Cancelled)),
    (&[F::Cancelled, F::Packing], Some(O::Processing)),
    (&[F::Pending, F::Pending], None),
    (&[F::Pending, F::Picking], Some(O::Processing)),
    (&[F::Pending, F::Shipped], Some(O::PartiallyShipped)),
    (&[F::Pending, F::Cancelled], None),
    (&[F::Completed, F::Packing], Some(O::PartiallyShipped)),
    (&[F::Completed, F::Pending], Some(O::PartiallyShipped)),
    (&[F::PickFailed, F::PackFailed], Some(O::Processing)),
    (&[F::Ready, F::Ready], Some(O::Processing)),
    (
        &[F::Shipped, F::Cancelled, F::Ready],
        Some(O::PartiallyShipped),
    ),
    (
        &[F::Completed, F::Cancelled, F::Completed],
        Some(O::Delivered),
    ),
    (&[F::Completed, F::Shipped, F::Cancelled], Some(O::Shipped)),
    (
        &[F::Cancelled, F::Cancelled, F::Cancelled],
        Some(O::Cancelled),
    ),
];

#[test]
fn derived_order_status_table() {
    for (fulfillments, expected) in DERIVED {
        assert_eq!(
            derived_order_status(fulfillments),
            *expected,
            "{fulfillments:?}"
        );
        // The order of an order's fulfillments does not matter.
        let reversed: Vec<F> = fulfillments.iter().rev().copied().collect();
        assert_eq!(derived_order_status(&reversed), *expected, "{reversed:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. order_moves: every OrderStatus × OrderStatus pair.
// ---------------------------------------------------------------------------------------------

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

/// DESIGN's order rank line; statuses not on it are terminal.
const ORDER_RANKS: [O; 6] = [
    O::Pending,
    O::Confirmed,
    O::Processing,
    O::PartiallyShipped,
    O::Shipped,
    O::Delivered,
];

/// The DESIGN prose restated, only to catch typos in `MOVE_MATRIX`.
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
    assert_eq!(
        currents,
        O::ALL,
        "one matrix row per current status, in order"
    );

    let mut failures = Vec::new();
    for (current, row) in MOVE_MATRIX {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), O::ALL.len(), "row {current}");
        for (target, cell) in O::ALL.into_iter().zip(cells) {
            let expected = match cell {
                "Y" => true,
                "." => false,
                other => panic!("bad move code {other:?}"),
            };
            assert_eq!(
                moves_by_design(current, target),
                expected,
                "matrix typo at {current} → {target}"
            );
            let got = order_moves(current, target);
            if got != expected {
                failures.push(format!(
                    "{current} → {target}: expected {expected}, got {got}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "order_moves disagrees with DESIGN:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 5. reason(), as_str() and FromStr.
// ---------------------------------------------------------------------------------------------

#[test]
fn reason_for_every_fulfillment_status() {
    let table = [
        (F::Pending, "FulfillmentPending"),
        (F::Planning, "FulfillmentPlanning"),
        (F::Picking, "FulfillmentPicking"),
        (F::PickFailed, "FulfillmentPickFailed"),
        (F::Picked, "FulfillmentPicked"),
        (F::Packing, "FulfillmentPacking"),
        (F::PackFailed, "FulfillmentPackFailed"),
        (F::Packed, "FulfillmentPacked"),
        (F::Ready, "FulfillmentReady"),
        (F::Shipped, "FulfillmentShipped"),
        (F::Completed, "FulfillmentCompleted"),
        (F::Cancelled, "FulfillmentCancelled"),
    ];
    assert_eq!(
        table.map(|(status, _)| status),
        F::ALL,
        "every status, once"
    );
    for (status, reason) in table {
        assert_eq!(status.reason(), reason, "{status:?}");
    }
}

#[test]
fn fulfillment_status_wire_names_round_trip() {
    let names = [
        "pending",
        "planning",
        "picking",
        "pick_failed",
        "picked",
        "packing",
        "pack_failed",
        "packed",
        "ready",
        "shipped",
        "completed",
        "cancelled",
    ];
    for (status, name) in F::ALL.into_iter().zip(names) {
        assert_eq!(status.as_str(), name);
        assert_eq!(status.to_string(), name);
        assert_eq!(name.parse::<F>(), Ok(status));
    }
    for unknown in [
        "",
        "unknown",
        "Pending",
        "PICKING",
        "pick-failed",
        " packed",
        "delivered",
        "partially_shipped",
    ] {
        assert_eq!(
            unknown.parse::<F>(),
            Err(UnknownStatus(unknown.to_owned())),
            "{unknown:?}"
        );
    }
}

#[test]
fn order_status_wire_names_round_trip() {
    let names = [
        "pending",
        "confirmed",
        "processing",
        "partially_shipped",
        "shipped",
        "delivered",
        "cancelled",
        "refunded",
        "failed",
    ];
    for (status, name) in O::ALL.into_iter().zip(names) {
        assert_eq!(status.as_str(), name);
        assert_eq!(status.to_string(), name);
        assert_eq!(name.parse::<O>(), Ok(status));
    }
    for unknown in [
        "",
        "unknown",
        "Shipped",
        "partially-shipped",
        "shipped ",
        "completed",
        "picking",
    ] {
        assert_eq!(
            unknown.parse::<O>(),
            Err(UnknownStatus(unknown.to_owned())),
            "{unknown:?}"
        );
    }
}
