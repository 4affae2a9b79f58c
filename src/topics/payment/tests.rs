//! The payment rules over every order status, a payment's own steps, and decoding `amount`.

use super::*;
use crate::topics::State;
use OrderStatus as O;
use PaymentStatus::{Confirmed as C, Failed as F};

/// An outcome and where the order moves.
type Effect = (Outcome, Option<O>);

/// Each order status × verdict (others failed / not): outcome and target, as the payment table of docs/architecture.md.
#[test]
fn order_effect_every_order_status() {
    use Outcome::*;
    #[rustfmt::skip]
    let table: [(O, Effect, Effect); 9] = [
        // order               payment.confirmed              payment.failed
        (O::Pending,          (Applied, Some(O::Confirmed)), (Applied, Some(O::Failed))),
        (O::Confirmed,        (Ignored, None),               (Stale, None)),
        (O::Processing,       (Ignored, None),               (Stale, None)),
        (O::PartiallyShipped, (Ignored, None),               (Stale, None)),
        (O::Shipped,          (Ignored, None),               (Stale, None)),
        (O::Delivered,        (Ignored, None),               (Stale, None)),
        (O::Cancelled,        (Conflict, None),              (Ignored, None)),
        (O::Refunded,         (Conflict, None),              (Ignored, None)),
        (O::Failed,           (Applied, Some(O::Confirmed)), (Ignored, None)),
    ];
    assert_eq!(
        table.clone().map(|row| row.0),
        O::ALL,
        "every order status, once"
    );
    for (order, confirmed, failed) in table {
        assert_eq!(
            order_effect(C, order, true),
            confirmed,
            "confirmed, {order}"
        );
        assert_eq!(order_effect(F, order, true), failed, "failed, {order}");
        for verdict in [C, F] {
            let expected = match (verdict, order) {
                // A failed order is confirmed only when every other attempt failed.
                (C, O::Failed) => (Ignored, None),
                _ => order_effect(verdict, order, true),
            };
            assert_eq!(
                order_effect(verdict, order, false),
                expected,
                "{verdict}, {order}, another payment not failed"
            );
        }
    }
}

#[test]
fn a_payment_moves_pending_to_confirmed_or_failed_and_confirmed_is_final() {
    use PaymentStatus::Pending as P;
    let table = [
        (P, C, Step::Advance),
        (P, F, Step::Advance),
        (F, C, Step::Advance),
        (F, F, Step::Unchanged),
        (C, C, Step::Unchanged),
        (C, F, Step::Stale),
    ];
    for (current, incoming, step) in table {
        assert_eq!(
            payment_step(current, incoming),
            step,
            "{current} → {incoming}"
        );
    }
}

fn event(payment: &str, order: &str, status: PaymentStatus) -> PaymentEvent {
    PaymentEvent {
        payment_id: payment.to_owned(),
        order_id: order.to_owned(),
        status,
        amount: Some("129.90".to_owned()),
        currency: Some("EUR".to_owned()),
        reason: (status == F).then(|| "card_declined".to_owned()),
        order_number: Some("ORD-0042".to_owned()),
        reported_status: (status == C).then(|| "completed".to_owned()),
        metadata: None,
        timestamp: None,
    }
}

/// The payment `id` as the events left it.
fn row<'a>(state: &'a State, id: &str) -> &'a Payment {
    state.rows.payments.get(id).expect(id)
}

/// Folds `events` into an order at `order`, as the batch apply does; returns the outcomes and
/// the order's status after each.
fn fold(order: O, events: &[PaymentEvent]) -> (Vec<Outcome>, O, State) {
    let mut state = State::default();
    let mut status = order;
    let mut outcomes = Vec::new();
    for event in events {
        let (outcome, moved) = event.apply(status, &mut state);
        if let Some(moved) = moved {
            status = moved.to;
        }
        outcomes.push(outcome);
    }
    (outcomes, status, state)
}

#[test]
fn a_declined_card_then_an_accepted_one_confirms_the_order() {
    let (outcomes, status, state) = fold(O::Pending, &[event("p1", "o1", F), event("p2", "o1", C)]);
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Applied]);
    assert_eq!(status, O::Confirmed);
    assert_eq!(row(&state, "p1").status, F);
    assert_eq!(row(&state, "p2").status, C);
    assert_eq!(
        state
            .rows
            .payments
            .changed()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        ["p1", "p2"]
    );
}

/// The row keeps what the verdicts said: the latest one's status field and reason, an order
/// number or amount a later verdict leaves out.
#[test]
fn a_retried_payment_keeps_its_order_number_and_takes_the_latest_status_and_reason() {
    let declined = event("p1", "o1", F);
    let accepted = PaymentEvent {
        amount: None,
        currency: None,
        order_number: None,
        ..event("p1", "o1", C)
    };
    let (_, _, state) = fold(O::Pending, &[declined, accepted]);
    assert_eq!(
        *row(&state, "p1"),
        Payment {
            order_id: "o1".to_owned(),
            status: C,
            amount: Some("129.90".to_owned()),
            currency: Some("EUR".to_owned()),
            reason: None,
            order_number: Some("ORD-0042".to_owned()),
            reported_status: Some("completed".to_owned()),
        }
    );
}

#[test]
fn a_failed_order_with_a_confirmed_payment_is_not_confirmed_again_by_another() {
    let (outcomes, status, _) = fold(
        O::Pending,
        &[
            event("p1", "o1", C),
            event("p2", "o1", F),
            event("p3", "o1", C),
        ],
    );
    assert_eq!(
        outcomes,
        [Outcome::Applied, Outcome::Stale, Outcome::Ignored]
    );
    assert_eq!(status, O::Confirmed);
}

#[test]
fn a_late_failure_of_a_confirmed_payment_changes_nothing() {
    let (outcomes, status, state) = fold(O::Pending, &[event("p1", "o1", C), event("p1", "o1", F)]);
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Stale]);
    assert_eq!(status, O::Confirmed);
    assert_eq!(row(&state, "p1").status, C);
}

#[test]
fn a_confirmed_payment_for_a_cancelled_order_is_a_conflict_and_still_recorded() {
    let (outcomes, status, state) = fold(O::Cancelled, &[event("p1", "o1", C)]);
    assert_eq!(outcomes, [Outcome::Conflict]);
    assert_eq!(status, O::Cancelled);
    assert_eq!(row(&state, "p1").status, C, "kept, so it can be refunded");
}

#[test]
fn a_payment_of_another_order_is_rejected() {
    let (outcomes, _, _) = fold(O::Pending, &[event("p1", "o1", F), event("p1", "o2", C)]);
    assert!(
        matches!(&outcomes[1], Outcome::Rejected(reason) if reason.contains("belongs to order \"o1\"")),
        "{outcomes:?}"
    );
}

#[test]
fn amounts_are_exact_decimals_from_numbers_or_strings() {
    // JSON text as the publisher wrote it → the decimal kept, digit for digit.
    let good = [
        ("129.90", "129.90"),
        (r#""129.90""#, "129.90"),
        (
            "12345678901234567890.123456789",
            "12345678901234567890.123456789",
        ),
        ("-5", "-5"),
        (r#"".5""#, ".5"),
        (r#""1e3""#, "1e3"),
    ];
    for (json, text) in good {
        let value: Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(amount(Some(&value)), Ok(Some(text.to_owned())), "{json}");
    }
    assert_eq!(amount(None), Ok(None));
    for bad in [
        json!("12,50"),
        json!("NaN"),
        json!("Infinity"),
        json!(""),
        json!("."),
        json!("1e"),
        json!(true),
        json!({"v": 1}),
    ] {
        assert!(
            matches!(amount(Some(&bad)), Err(DecodeError::NotADecimal(_))),
            "{bad}"
        );
    }
}

use serde_json::json;
