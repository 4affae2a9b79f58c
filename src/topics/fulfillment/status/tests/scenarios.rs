//! Scenarios: one order's events folded through the status rules the way the worker applies
//! them (each fulfillment's recorded status, a history row on every order change).

use super::*;
use std::collections::BTreeMap;

struct Outcome {
    order: O,
    /// One code per event: A = Advance, U = Unchanged, S = Stale.
    steps: String,
    /// `from→to Reason`, one per order change.
    history: Vec<String>,
    /// Each fulfillment's recorded status, `id:status`.
    fulfillments: String,
}

/// Applies events `id:new_status` (bare `new_status`: fulfillment `f1`) starting at `order`.
fn fold(mut order: O, events: &str) -> Outcome {
    let mut recorded: BTreeMap<&str, F> = BTreeMap::new();
    let (mut steps, mut history) = (Vec::new(), Vec::new());
    for event in events.split_whitespace() {
        let (id, name) = event.split_once(':').unwrap_or(("f1", event));
        let incoming: F = name.parse().unwrap();
        let step = fulfillment_step(recorded.get(id).copied(), incoming);
        steps.push(step_code(step));
        if step != Advance {
            continue;
        }
        recorded.insert(id, incoming);
        let all: Vec<F> = recorded.values().copied().collect();
        if let Some(target) = derived_order_status(&all) {
            if order_moves(order, target) {
                history.push(format!("{order}→{target} {}", incoming.reason()));
                order = target;
            }
        }
    }
    let fulfillments: Vec<String> = recorded.iter().map(|(id, s)| format!("{id}:{s}")).collect();
    let (steps, fulfillments) = (steps.join(" "), fulfillments.join(" "));
    Outcome {
        order,
        steps,
        history,
        fulfillments,
    }
}

struct Scenario {
    name: &'static str,
    start: O,
    events: &'static str,
    steps: &'static str,
    history: &'static [&'static str],
    order: O,
    fulfillments: &'static str,
}

const LIFECYCLE: &str = "pending planning picking picked packing packed ready shipped completed";
const LIFECYCLE_HISTORY: &[&str] = &[
    "confirmed→processing FulfillmentPlanning",
    "processing→shipped FulfillmentShipped",
    "shipped→delivered FulfillmentCompleted",
];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "full lifecycle in order",
        start: O::Confirmed,
        events: LIFECYCLE,
        steps: "A A A A A A A A A",
        history: LIFECYCLE_HISTORY,
        order: O::Delivered,
        fulfillments: "f1:completed",
    },
    Scenario {
        name: "every event delivered twice: no extra history",
        start: O::Confirmed,
        events: "pending pending planning planning picking picking picked picked packing packing \
                 packed packed ready ready shipped shipped completed completed",
        steps: "A U A U A U A U A U A U A U A U A U",
        history: LIFECYCLE_HISTORY,
        order: O::Delivered,
        fulfillments: "f1:completed",
    },
    Scenario {
        name: "shipped overtakes packing: packing/packed stale, no backwards move",
        start: O::Confirmed,
        events: "planning picking shipped packing packed completed",
        steps: "A A A S S A",
        history: LIFECYCLE_HISTORY,
        order: O::Delivered,
        fulfillments: "f1:completed",
    },
    Scenario {
        name: "cancelled after shipped is stale",
        start: O::Confirmed,
        events: "planning shipped cancelled",
        steps: "A A S",
        history: &[
            "confirmed→processing FulfillmentPlanning",
            "processing→shipped FulfillmentShipped",
        ],
        order: O::Shipped,
        fulfillments: "f1:shipped",
    },
    Scenario {
        name: "cancelled before shipped cancels a processing order; later events stale",
        start: O::Confirmed,
        events: "planning picking cancelled shipped completed",
        steps: "A A A S S",
        history: &[
            "confirmed→processing FulfillmentPlanning",
            "processing→cancelled FulfillmentCancelled",
        ],
        order: O::Cancelled,
        fulfillments: "f1:cancelled",
    },
    Scenario {
        name: "cancelled while the order is pending",
        start: O::Pending,
        events: "pending cancelled",
        steps: "A A",
        history: &["pending→cancelled FulfillmentCancelled"],
        order: O::Cancelled,
        fulfillments: "f1:cancelled",
    },
    Scenario {
        name: "two fulfillments ship one after the other",
        start: O::Confirmed,
        events: "f1:planning f2:planning f1:packing f2:picking f1:shipped f2:shipped \
                 f1:completed f2:completed",
        steps: "A A A A A A A A",
        history: &[
            "confirmed→processing FulfillmentPlanning",
            "processing→partially_shipped FulfillmentShipped",
            "partially_shipped→shipped FulfillmentShipped",
            "shipped→delivered FulfillmentCompleted",
        ],
        order: O::Delivered,
        fulfillments: "f1:completed f2:completed",
    },
    Scenario {
        name: "one of two cancelled after the other shipped: the order has shipped",
        start: O::Confirmed,
        events: "f1:planning f2:planning f1:shipped f2:cancelled f2:ready",
        steps: "A A A A S",
        history: &[
            "confirmed→processing FulfillmentPlanning",
            "processing→partially_shipped FulfillmentShipped",
            "partially_shipped→shipped FulfillmentCancelled",
        ],
        order: O::Shipped,
        fulfillments: "f1:shipped f2:cancelled",
    },
    Scenario {
        name: "refunded order never moves (fulfillment still tracked)",
        start: O::Refunded,
        events: "pending planning picking picked packing packed ready shipped completed cancelled",
        steps: "A A A A A A A A A S",
        history: &[],
        order: O::Refunded,
        fulfillments: "f1:completed",
    },
    Scenario {
        name: "pick_failed ⇄ picking and pack_failed ⇄ packing loops stay processing",
        start: O::Confirmed,
        events: "planning picking pick_failed picking pick_failed picking picked \
                 packing pack_failed packing pack_failed",
        steps: "A A A A A A A A A A A",
        history: &["confirmed→processing FulfillmentPlanning"],
        order: O::Processing,
        fulfillments: "f1:pack_failed",
    },
];

#[test]
fn scenarios() {
    for s in SCENARIOS {
        let out = fold(s.start, s.events);
        assert_eq!(out.steps, s.steps, "{}: steps", s.name);
        assert_eq!(out.history, s.history, "{}: history", s.name);
        assert_eq!(out.order, s.order, "{}: order", s.name);
        assert_eq!(out.fulfillments, s.fulfillments, "{}: fulfillments", s.name);
    }
}
