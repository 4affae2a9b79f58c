//! order-worker: consumes Dapr's `fulfillment.status_changed` Redis stream directly and keeps
//! each order's status in PostgreSQL right, exactly once in effect.
//!
//! The path of an entry: [`stream::read`] → [`envelope`] (decode) → [`store::apply`] (one
//! transaction per batch, rules in [`fulfillment`]) → [`stream::settle`] (dead-letter, XACK),
//! driven by [`worker`]. [`ops`] holds the operator commands (inspection, dead letters,
//! trimming, replay).

pub mod bench;
pub mod child;
pub mod config;
pub mod dapr;
pub mod demo;
pub mod envelope;
pub mod fulfillment;
pub mod http;
pub mod instruments;
pub mod ops;
pub mod replicas;
pub mod retry;
pub mod servers;
pub mod shutdown;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod verdict;
pub mod worker;
