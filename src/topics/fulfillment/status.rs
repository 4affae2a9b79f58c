//! Fulfillment statuses and the rules that move a fulfillment, and its order with it (docs/architecture.md,
//! "Status rules"). Pure, so every rule is a table-driven test.

use std::fmt;
use std::str::FromStr;

use crate::topics::order::{by_name, OrderStatus, UnknownStatus};

/// A fulfillment's status as the fulfillment service publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FulfillmentStatus {
    Pending,
    Planning,
    Picking,
    PickFailed,
    Picked,
    Packing,
    PackFailed,
    Packed,
    Ready,
    Shipped,
    Completed,
    Cancelled,
}

impl FulfillmentStatus {
    /// Every status, in lifecycle order; used by tests and the demo.
    pub const ALL: [FulfillmentStatus; 12] = [
        Self::Pending,
        Self::Planning,
        Self::Picking,
        Self::PickFailed,
        Self::Picked,
        Self::Packing,
        Self::PackFailed,
        Self::Packed,
        Self::Ready,
        Self::Shipped,
        Self::Completed,
        Self::Cancelled,
    ];

    /// A fulfillment's whole life when nothing goes wrong, in order: the demo, the benchmark and
    /// the tests publish it; it moves an order through processing, shipped and delivered.
    pub const LIFECYCLE: [FulfillmentStatus; 9] = [
        Self::Pending,
        Self::Planning,
        Self::Picking,
        Self::Picked,
        Self::Packing,
        Self::Packed,
        Self::Ready,
        Self::Shipped,
        Self::Completed,
    ];

    /// The wire name (`pick_failed`), also what is stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Planning => "planning",
            Self::Picking => "picking",
            Self::PickFailed => "pick_failed",
            Self::Picked => "picked",
            Self::Packing => "packing",
            Self::PackFailed => "pack_failed",
            Self::Packed => "packed",
            Self::Ready => "ready",
            Self::Shipped => "shipped",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The history `reason` for an order change this status caused: `Fulfillment` + CamelCase.
    pub fn reason(self) -> String {
        let camel: String = self
            .as_str()
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("Fulfillment{camel}")
    }

    /// Position in the lifecycle. The failure loops share the rank of the step they retry,
    /// so `picking ⇄ pick_failed` moves either way. `None` for `cancelled`, which is not on
    /// the line: it is reachable from anything before `shipped`.
    fn rank(self) -> Option<u8> {
        Some(match self {
            Self::Pending => 0,
            Self::Planning => 1,
            Self::Picking | Self::PickFailed => 2,
            Self::Picked => 3,
            Self::Packing | Self::PackFailed => 4,
            Self::Packed => 5,
            Self::Ready => 6,
            Self::Shipped => 7,
            Self::Completed => 8,
            Self::Cancelled => return None,
        })
    }

    /// `completed` and `cancelled` end a fulfillment: nothing moves it afterwards.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    fn has_shipped(self) -> bool {
        matches!(self, Self::Shipped | Self::Completed)
    }
}

impl fmt::Display for FulfillmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FulfillmentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(Self::ALL, s, Self::as_str)
    }
}

/// What an incoming status does to a fulfillment whose recorded status is `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FulfillmentStep {
    /// The fulfillment moves to the incoming status.
    Advance,
    /// Already at that status (the same change published twice with different ids).
    Unchanged,
    /// Older than what is recorded (out of order, or after a terminal status): dropped.
    Stale,
}

/// Decides whether `incoming` moves a fulfillment recorded at `current` (`None`: never seen).
pub fn fulfillment_step(
    current: Option<FulfillmentStatus>,
    incoming: FulfillmentStatus,
) -> FulfillmentStep {
    let Some(current) = current else {
        return FulfillmentStep::Advance;
    };
    if current == incoming {
        return FulfillmentStep::Unchanged;
    }
    if current.is_terminal() {
        return FulfillmentStep::Stale;
    }
    let forward = match (current.rank(), incoming.rank()) {
        // Cancelling is allowed from anything before `shipped`.
        (Some(from), None) => from < FulfillmentStatus::Shipped.rank().unwrap_or(u8::MAX),
        (Some(from), Some(to)) => to >= from,
        // `current` is terminal when it has no rank; handled above.
        (None, _) => false,
    };
    if forward {
        FulfillmentStep::Advance
    } else {
        FulfillmentStep::Stale
    }
}

/// The order status that an order's fulfillments call for, or `None` when they call for no
/// change (all still `pending`, or none known).
///
/// One fulfillment maps as docs/architecture.md's "Status rules" say; several: `shipped` once every non-cancelled
/// one has shipped (`partially_shipped` before that), `delivered` once every non-cancelled one
/// completed, `cancelled` only when all are cancelled.
pub fn derived_order_status(fulfillments: &[FulfillmentStatus]) -> Option<OrderStatus> {
    let live: Vec<FulfillmentStatus> = fulfillments
        .iter()
        .copied()
        .filter(|status| *status != FulfillmentStatus::Cancelled)
        .collect();
    if live.is_empty() {
        return (!fulfillments.is_empty()).then_some(OrderStatus::Cancelled);
    }
    if live.iter().all(|s| *s == FulfillmentStatus::Completed) {
        Some(OrderStatus::Delivered)
    } else if live.iter().all(|s| s.has_shipped()) {
        Some(OrderStatus::Shipped)
    } else if live.iter().any(|s| s.has_shipped()) {
        Some(OrderStatus::PartiallyShipped)
    } else if live.iter().any(|s| *s != FulfillmentStatus::Pending) {
        Some(OrderStatus::Processing)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
