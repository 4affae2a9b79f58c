//! The order: its statuses and the one rule every topic shares (an order never moves backwards
//! nor out of a terminal status, unless a topic's own rules say otherwise).

use std::fmt;
use std::str::FromStr;

/// A status string that is not one of the known statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

/// The status among `all` whose wire name is `name`.
pub(crate) fn by_name<T: Copy, const N: usize>(
    all: [T; N],
    name: &str,
    as_str: fn(T) -> &'static str,
) -> Result<T, UnknownStatus> {
    all.into_iter()
        .find(|&status| as_str(status) == name)
        .ok_or_else(|| UnknownStatus(name.to_owned()))
}

/// An order's status, as the order service defines it (and the `orders.status` CHECK allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Processing,
    PartiallyShipped,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
    Failed,
}

impl OrderStatus {
    /// Every status; used by tests and the migration's CHECK test.
    pub const ALL: [OrderStatus; 9] = [
        Self::Pending,
        Self::Confirmed,
        Self::Processing,
        Self::PartiallyShipped,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Refunded,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Processing => "processing",
            Self::PartiallyShipped => "partially_shipped",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
            Self::Failed => "failed",
        }
    }

    /// Progress rank; `None` for the terminal statuses, which this worker never leaves.
    fn rank(self) -> Option<u8> {
        Some(match self {
            Self::Pending => 0,
            Self::Confirmed => 1,
            Self::Processing => 2,
            Self::PartiallyShipped => 3,
            Self::Shipped => 4,
            Self::Delivered => 5,
            Self::Cancelled | Self::Refunded | Self::Failed => return None,
        })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(Self::ALL, s, Self::as_str)
    }
}

/// Whether an order at `current` moves to `target`: never backwards, never out of a terminal
/// status, and `cancelled` only while nothing has shipped (`pending`, `confirmed`, `processing`).
pub fn order_moves(current: OrderStatus, target: OrderStatus) -> bool {
    let Some(from) = current.rank() else {
        return false;
    };
    match target.rank() {
        Some(to) => to > from,
        None => {
            target == OrderStatus::Cancelled && from <= OrderStatus::Processing.rank().unwrap_or(0)
        }
    }
}
