//! The batch semantics without a database: stream order inside a batch, duplicates inside one
//! batch and against the inbox, one history row per real transition.

use super::*;
use crate::topics::names::FULFILLMENT;
use crate::topics::{FulfillmentEvent, FulfillmentStatus::*, Processed};

fn event(id: &str, order: &str, fulfillment: &str, status: FulfillmentStatus) -> Event {
    Event {
        event_id: id.to_owned(),
        topic: crate::topics::by_name(FULFILLMENT).expect("served"),
        trace: Default::default(),
        change: Box::new(FulfillmentEvent {
            fulfillment_id: fulfillment.to_owned(),
            order_id: order.to_owned(),
            new_status: status,
            old_status: None,
            metadata: None,
            timestamp: None,
        }),
    }
}

fn loaded(
    orders: &[(&str, OrderStatus)],
    fulfillments: &[(&str, &str, FulfillmentStatus)],
) -> State {
    let mut state = State {
        orders: orders.iter().map(|(id, s)| (id.to_string(), *s)).collect(),
        ..State::default()
    };
    for (f, o, s) in fulfillments {
        state
            .rows
            .fulfillments
            .load(f.to_string(), (o.to_string(), *s));
    }
    state
}

/// The fulfillments `plan` writes: id, order, status.
fn written(plan: &Plan) -> Vec<(&str, &str, FulfillmentStatus)> {
    let changed = plan.rows.fulfillments.changed();
    changed.map(|(id, (o, s))| (id, o.as_str(), *s)).collect()
}

fn run(events: &[Event], state: State) -> Plan {
    let entry_ids: Vec<String> = (0..events.len()).map(|i| format!("1-{i}")).collect();
    let batch: Vec<Incoming<'_>> = events
        .iter()
        .zip(&entry_ids)
        .map(|(event, entry_id)| Incoming { entry_id, event })
        .collect();
    plan(&batch, state)
}

fn names(plan: &Plan) -> Vec<&'static str> {
    plan.outcomes.iter().map(Outcome::as_str).collect()
}

#[test]
fn outcomes_for_each_kind_of_event() {
    let cases: &[(&str, Vec<Event>, Vec<&str>)] = &[
        (
            "forward",
            vec![event("e1", "o1", "f1", Planning)],
            vec!["applied"],
        ),
        (
            "same id twice in one batch",
            vec![
                event("e1", "o1", "f1", Planning),
                event("e1", "o1", "f1", Planning),
            ],
            vec!["applied", "duplicate"],
        ),
        (
            "same status, new id",
            vec![
                event("e1", "o1", "f1", Planning),
                event("e2", "o1", "f1", Planning),
            ],
            vec!["applied", "ignored"],
        ),
        (
            "older status after newer, same batch",
            vec![
                event("e1", "o1", "f1", Shipped),
                event("e2", "o1", "f1", Packing),
            ],
            vec!["applied", "stale"],
        ),
        (
            "unknown order",
            vec![event("e1", "nope", "f1", Planning)],
            vec!["unknown_order"],
        ),
        (
            "fulfillment of another order",
            vec![event("e1", "o1", "f-of-o2", Planning)],
            vec!["rejected"],
        ),
    ];
    for (name, events, expected) in cases {
        let state = loaded(
            &[
                ("o1", OrderStatus::Confirmed),
                ("o2", OrderStatus::Confirmed),
            ],
            &[("f-of-o2", "o2", Pending)],
        );
        assert_eq!(&names(&run(events, state)), expected, "{name}");
    }
}

#[test]
fn an_event_already_in_the_inbox_is_a_duplicate_and_writes_nothing() {
    let mut state = loaded(&[("o1", OrderStatus::Confirmed)], &[]);
    state.processed.insert("o1", "e1");
    let plan = run(&[event("e1", "o1", "f1", Planning)], state);
    assert_eq!(names(&plan), ["duplicate"]);
    assert!(plan.processed.is_empty() && written(&plan).is_empty());
    assert!(plan.orders.is_empty() && plan.transitions.is_empty());
}

#[test]
fn an_event_id_under_another_order_is_another_event_unless_the_inbox_is_keyed_by_event_id() {
    let orders = [
        ("o1", OrderStatus::Confirmed),
        ("o2", OrderStatus::Confirmed),
    ];
    // e1 recorded for o1; then e1 for o2, twice in the batch.
    let batch = [
        event("e1", "o2", "f2", Planning),
        event("e1", "o2", "f2", Planning),
    ];
    for (processed, expected) in [
        (Processed::default(), ["applied", "duplicate"]),
        (Processed::by_event_id(), ["duplicate", "duplicate"]),
    ] {
        let mut state = loaded(&orders, &[]);
        state.processed = processed;
        state.processed.insert("o1", "e1");
        assert_eq!(names(&run(&batch, state)), expected);
    }
}

#[test]
fn several_events_of_one_order_apply_in_stream_order_with_one_row_per_transition() {
    let events = [
        event("e1", "o1", "f1", Planning),
        event("e2", "o1", "f1", Picking),
        event("e3", "o1", "f1", Shipped),
        event("e4", "o1", "f1", Completed),
    ];
    let plan = run(&events, loaded(&[("o1", OrderStatus::Confirmed)], &[]));
    let transitions: Vec<(OrderStatus, OrderStatus, &str, &str)> = plan
        .transitions
        .iter()
        .map(|t| (t.from, t.to, t.reason.as_str(), t.event_id.as_str()))
        .collect();
    assert_eq!(
        transitions,
        [
            (
                OrderStatus::Confirmed,
                OrderStatus::Processing,
                "FulfillmentPlanning",
                "e1"
            ),
            (
                OrderStatus::Processing,
                OrderStatus::Shipped,
                "FulfillmentShipped",
                "e3"
            ),
            (
                OrderStatus::Shipped,
                OrderStatus::Delivered,
                "FulfillmentCompleted",
                "e4"
            ),
        ]
    );
    // One row per order and per fulfillment, at their final state.
    assert_eq!(
        plan.orders,
        [OrderUpdate {
            order_id: "o1".to_owned(),
            status: OrderStatus::Delivered,
            fulfillment_status: Some(Completed),
        }]
    );
    assert_eq!(written(&plan), [("f1", "o1", Completed)]);
    assert_eq!(plan.processed.len(), 4);
}

#[test]
fn a_terminal_order_records_the_fulfillment_but_never_moves() {
    let plan = run(
        &[event("e1", "o1", "f1", Shipped)],
        loaded(&[("o1", OrderStatus::Refunded)], &[("f1", "o1", Packing)]),
    );
    assert_eq!(names(&plan), ["applied"]);
    assert!(plan.transitions.is_empty());
    assert_eq!(plan.orders[0].status, OrderStatus::Refunded);
    assert_eq!(plan.orders[0].fulfillment_status, Some(Shipped));
}

#[test]
fn the_order_status_derives_from_every_fulfillment_loaded_and_in_the_batch() {
    // "north" shipped in an earlier batch; "south" ships now: the order is fully shipped.
    let plan = run(
        &[event("e1", "o1", "south", Shipped)],
        loaded(
            &[("o1", OrderStatus::PartiallyShipped)],
            &[("north", "o1", Shipped), ("south", "o1", Packed)],
        ),
    );
    assert_eq!(plan.transitions.len(), 1);
    assert_eq!(plan.transitions[0].to, OrderStatus::Shipped);
}

#[test]
fn unknown_order_and_rejected_events_are_not_recorded_in_the_inbox() {
    let plan = run(
        &[
            event("e1", "nope", "f1", Planning),
            event("e2", "o1", "f2", Planning),
        ],
        loaded(&[("o1", OrderStatus::Confirmed)], &[("f2", "o9", Pending)]),
    );
    assert_eq!(names(&plan), ["unknown_order", "rejected"]);
    assert!(plan.processed.is_empty());
}

#[test]
fn two_fulfillments_in_one_batch_ship_partially_then_fully() {
    let events = [
        event("e1", "o1", "north", Planning),
        event("e2", "o1", "south", Planning),
        event("e3", "o1", "north", Shipped),
        event("e4", "o1", "south", Shipped),
    ];
    let plan = run(&events, loaded(&[("o1", OrderStatus::Confirmed)], &[]));
    let path: Vec<OrderStatus> = plan.transitions.iter().map(|t| t.to).collect();
    assert_eq!(
        path,
        [
            OrderStatus::Processing,
            OrderStatus::PartiallyShipped,
            OrderStatus::Shipped
        ]
    );
}

/// Each history row carries the metadata of the event that moved the order (JSON text), and
/// none when it had none.
#[test]
fn a_history_row_keeps_its_events_metadata() {
    let mut shipped = event("e2", "o1", "f1", Shipped);
    let metadata = serde_json::json!({"warehouse_id": "wh-hcm-01", "carrier": "GHN"});
    shipped.change = Box::new(FulfillmentEvent {
        fulfillment_id: "f1".to_owned(),
        order_id: "o1".to_owned(),
        new_status: Shipped,
        old_status: None,
        metadata: Some(metadata),
        timestamp: None,
    });
    let plan = run(
        &[event("e1", "o1", "f1", Planning), shipped],
        loaded(&[("o1", OrderStatus::Confirmed)], &[]),
    );
    let rows: Vec<_> = plan
        .transitions
        .iter()
        .map(|t| (t.event_id.as_str(), t.metadata.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("e1", None),
            (
                "e2",
                Some(r#"{"carrier":"GHN","warehouse_id":"wh-hcm-01"}"#)
            )
        ]
    );
}
