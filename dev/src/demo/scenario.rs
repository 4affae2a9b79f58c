//! The demo's orders and the events published for them: every order's payment, then its
//! fulfillment lifecycle, plus the cases worth seeing (a card declined then another accepted, a
//! failed payment, two warehouses, a cancellation, a pick retry, a duplicate and an out-of-order
//! event), each with the final status the rules must reach. `order-worker-dev replicas` feeds the
//! fulfillment part alone ([`build`]).

use crate::publisher::Format;
use order_worker::FulfillmentStatus::{self, *};
use order_worker::{OrderStatus, PaymentStatus};

/// The fewest orders that hold every fulfillment special case.
pub const MIN_ORDERS: usize = 5;

/// The order whose first card is declined and whose second is accepted.
pub const DECLINED: usize = MIN_ORDERS;

/// The fewest orders that hold every special case, payments' included: the last order's
/// payment fails.
pub const MIN_PAID_ORDERS: usize = MIN_ORDERS + 2;

/// One entry to publish.
#[derive(Debug, Clone)]
pub struct Publication {
    pub order_id: String,
    pub fulfillment_id: String,
    pub status: FulfillmentStatus,
    /// The CloudEvent id; the same as another publication's for the deliberate duplicate.
    pub event_id: String,
    pub format: Format,
}

/// One payment verdict to publish, on `payment.confirmed` or `payment.failed`.
#[derive(Debug, Clone)]
pub struct PaymentPublication {
    pub order_id: String,
    pub payment_id: String,
    /// `Confirmed` or `Failed`: which topic it is published on.
    pub verdict: PaymentStatus,
    /// As the payment service writes it: a decimal string.
    pub amount: String,
    /// Why it failed.
    pub reason: Option<&'static str>,
    pub event_id: String,
    pub format: Format,
}

impl PaymentPublication {
    /// The topic it is published on.
    pub fn topic(&self) -> &'static str {
        match self.verdict {
            PaymentStatus::Failed => "payment.failed",
            _ => "payment.confirmed",
        }
    }
}

/// What the demo publishes and what it expects.
pub struct Scenario {
    /// (order id, expected final status), in display order.
    pub orders: Vec<(String, OrderStatus)>,
    /// The status every order is seeded at.
    pub seeded: OrderStatus,
    /// Payment verdicts, in publishing order, all published before the fulfillment events.
    pub payments: Vec<PaymentPublication>,
    /// Fulfillment events, in publishing order.
    pub publications: Vec<Publication>,
}

fn order_id(i: usize) -> String {
    format!("demo-order-{i:02}")
}

/// The demo's scenario for `order_count` (at least [`MIN_PAID_ORDERS`]) orders, seeded
/// `pending`: every order is paid, then fulfilled as [`build`] has it; order [`DECLINED`] pays
/// after a declined card; the last order's payment fails, and it gets no fulfillment events.
///
/// Why the worker sees each order's payment before its fulfillment events: the payments are
/// published first, and order `i`'s `payment.confirmed` is entry `i` of its stream as its first
/// fulfillment event is entry `i` of the fulfillment stream (the failed order, which has
/// neither, is last). The worker reads up to BATCH_SIZE entries of each stream at a time, so
/// both are in the same batch, where the payment's lower id applies it first.
pub fn with_payments(order_count: usize) -> Scenario {
    let failed = order_count - 1;
    let mut scenario = build(failed);
    scenario.seeded = OrderStatus::Pending;
    scenario
        .orders
        .push((order_id(failed), OrderStatus::Failed));
    for (i, (order_id, _)) in scenario.orders.iter().enumerate() {
        let verdicts: &[(PaymentStatus, Option<&'static str>)] = match i {
            DECLINED => &[
                (PaymentStatus::Failed, Some("card_declined")),
                (PaymentStatus::Confirmed, None),
            ],
            i if i == failed => &[(PaymentStatus::Failed, Some("insufficient_funds"))],
            _ => &[(PaymentStatus::Confirmed, None)],
        };
        for (card, &(verdict, reason)) in verdicts.iter().enumerate() {
            scenario.payments.push(PaymentPublication {
                order_id: order_id.clone(),
                payment_id: format!("{order_id}-p{}", card + 1),
                verdict,
                amount: format!("{}.90", 29 + 10 * (i % 20)),
                reason,
                event_id: uuid::Uuid::new_v4().to_string(),
                format: Format::ALL[scenario.payments.len() % Format::ALL.len()],
            });
        }
    }
    scenario
}

/// The fulfillment part alone for `order_count` (at least [`MIN_ORDERS`]) orders, seeded
/// `confirmed` (already paid): what `order-worker-dev replicas` feeds.
pub fn build(order_count: usize) -> Scenario {
    // Per order, its fulfillments' status sequences, in the order they happen.
    let mut plans: Vec<Vec<(String, FulfillmentStatus)>> = Vec::new();
    let mut orders = Vec::new();
    for i in 0..order_count {
        let id = order_id(i);
        let single = |statuses: &[FulfillmentStatus]| -> Vec<(String, FulfillmentStatus)> {
            statuses.iter().map(|s| (format!("{id}-f1"), *s)).collect()
        };
        let (steps, expected) = match i {
            // Two warehouses: one ships first, so the order is partially shipped for a while.
            0 => {
                let (north, south) = (format!("{id}-north"), format!("{id}-south"));
                let steps = [
                    (&north, Planning),
                    (&south, Planning),
                    (&north, Packing),
                    (&north, Shipped),
                    (&south, Packing),
                    (&south, Shipped),
                    (&north, Completed),
                    (&south, Completed),
                ];
                let steps = steps.into_iter().map(|(f, s)| (f.clone(), s)).collect();
                (steps, OrderStatus::Delivered)
            }
            1 => (
                single(&[Pending, Planning, Picking, Cancelled]),
                OrderStatus::Cancelled,
            ),
            2 => (
                single(&[
                    Pending, Planning, Picking, PickFailed, Picking, Picked, Packing, Packed,
                    Ready, Shipped, Completed,
                ]),
                OrderStatus::Delivered,
            ),
            _ => (
                single(&FulfillmentStatus::LIFECYCLE),
                OrderStatus::Delivered,
            ),
        };
        plans.push(steps);
        orders.push((id, expected));
    }

    // Interleave the orders step by step, as a busy fulfillment service would publish.
    let mut publications = Vec::new();
    let longest = plans.iter().map(Vec::len).max().unwrap_or(0);
    for step in 0..longest {
        for (i, plan) in plans.iter().enumerate() {
            if let Some((fulfillment_id, status)) = plan.get(step) {
                publications.push(Publication {
                    order_id: order_id(i),
                    fulfillment_id: fulfillment_id.clone(),
                    status: *status,
                    event_id: uuid::Uuid::new_v4().to_string(),
                    format: Format::ALL[publications.len() % Format::ALL.len()],
                });
            }
        }
    }
    // The same CloudEvent published twice (a publisher retry): applied once.
    if let Some(first) = publications
        .iter()
        .find(|p| p.order_id == order_id(3) && p.format != Format::Raw)
    {
        publications.push(first.clone());
    }
    // An old status arriving after the order shipped: stale, nothing moves backwards.
    publications.push(Publication {
        order_id: order_id(4),
        fulfillment_id: format!("{}-f1", order_id(4)),
        status: Packing,
        event_id: uuid::Uuid::new_v4().to_string(),
        format: Format::CloudEvent,
    });
    Scenario {
        orders,
        seeded: OrderStatus::Confirmed,
        payments: Vec::new(),
        publications,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_holds_one_duplicate_and_ends_with_the_stale_event() {
        let scenario = build(MIN_ORDERS);
        let ids: std::collections::HashSet<&str> = scenario
            .publications
            .iter()
            .map(|p| p.event_id.as_str())
            .collect();
        assert_eq!(
            ids.len() + 1,
            scenario.publications.len(),
            "exactly one duplicate"
        );
        let last = scenario.publications.last().expect("publications");
        assert_eq!(
            (last.order_id.as_str(), last.status),
            ("demo-order-04", Packing)
        );
        for format in Format::ALL {
            assert!(
                scenario.publications.iter().any(|p| p.format == format),
                "{format:?} used"
            );
        }
    }

    #[test]
    fn every_payment_is_read_no_later_than_its_orders_first_fulfillment_event() {
        let scenario = with_payments(30);
        assert_eq!(scenario.orders.len(), 30);
        assert_eq!(scenario.seeded, OrderStatus::Pending);
        // Where each order's entries are in their streams: the worker reads the streams in
        // step, so an entry's position says in which batch it is read at the latest.
        let position = |topic: &str, order: &str| {
            scenario
                .payments
                .iter()
                .filter(|p| p.topic() == topic)
                .position(|p| p.order_id == order)
        };
        for (i, (order, expected)) in scenario.orders.iter().enumerate() {
            let first_fulfillment = scenario
                .publications
                .iter()
                .position(|p| &p.order_id == order);
            match *expected {
                OrderStatus::Failed => {
                    assert_eq!(i, 29, "the failed order is last");
                    assert_eq!(first_fulfillment, None);
                    assert_eq!(position("payment.confirmed", order), None);
                }
                _ => {
                    let confirmed = position("payment.confirmed", order).expect("paid");
                    assert!(
                        confirmed <= first_fulfillment.expect("fulfilled"),
                        "{order}"
                    );
                }
            }
        }
        let declined: Vec<_> = scenario
            .payments
            .iter()
            .filter(|p| p.order_id == order_id(DECLINED))
            .map(|p| (p.payment_id.as_str(), p.verdict, p.reason))
            .collect();
        assert_eq!(
            declined,
            [
                (
                    "demo-order-05-p1",
                    PaymentStatus::Failed,
                    Some("card_declined")
                ),
                ("demo-order-05-p2", PaymentStatus::Confirmed, None),
            ]
        );
        for format in Format::ALL {
            assert!(scenario.payments.iter().any(|p| p.format == format));
        }
    }
}
