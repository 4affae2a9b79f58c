//! The demo's orders and the events published for them: every order's fulfillment lifecycle,
//! plus the cases worth seeing (two warehouses, a cancellation, a pick retry, a duplicate and an
//! out-of-order event), each with the final status the rules must reach.

use crate::publisher::Format;
use order_worker::FulfillmentStatus::{self, *};
use order_worker::OrderStatus;

/// The fewest orders that hold every special case.
pub const MIN_ORDERS: usize = 5;

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

/// What the demo publishes and what it expects.
pub struct Scenario {
    /// (order id, expected final status), in display order.
    pub orders: Vec<(String, OrderStatus)>,
    /// In publishing order.
    pub publications: Vec<Publication>,
}

/// Builds the scenario for `order_count` (at least [`MIN_ORDERS`]) orders.
pub fn build(order_count: usize) -> Scenario {
    let order_id = |i: usize| format!("demo-order-{i:02}");
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
}
