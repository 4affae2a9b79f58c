//! order-worker: consumes Dapr's `fulfillment.status_changed` Redis stream directly and keeps
//! each order's status in PostgreSQL right, exactly once in effect.
//!
//! The path of an entry: [`stream::read`] → [`envelope`] (decode) → [`store::apply`] (one
//! transaction per batch, rules in [`fulfillment`]) → [`stream::settle`] (dead-letter, XACK),
//! driven by [`worker`]. [`ops`] holds the operator commands (inspection, dead letters,
//! trimming, replay).
//!
//! The development tooling (the demo, the benchmark, the replicas run, private servers,
//! Dapr-format publishing) lives in the workspace's `order-worker-dev` crate (`dev/`).

pub mod config;
pub mod envelope;
pub mod fulfillment;
pub mod http;
pub mod instruments;
pub mod ops;
pub mod retry;
pub mod shutdown;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod verdict;
pub mod worker;

/// Made reachable for the development tooling (`order-worker-dev`), which prints its tables as
/// the operator commands do; not part of the worker's own surface.
pub mod dev_support {
    pub use crate::ops::table::Table;
}
