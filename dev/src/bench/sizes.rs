//! The drain at each size (`--orders`; by default 3,000, 10,000 and 100,000 orders, a real
//! backlog after an outage being tens of thousands), each beside the ceiling that matters:
//! PostgreSQL alone applying the worker's batches over the same events, on the same database
//! reset to the same state, in the same run.

use std::path::Path;

use super::ceiling::{self, Ceiling};
use super::drain::{self, Drain};
use super::workload::{Backlog, Workload};

/// The drain at one size and its ceiling.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AtSize {
    pub orders: usize,
    pub drain: Drain,
    /// PostgreSQL alone, set-based as the worker applies (see [`ceiling::set_based`]).
    pub ceiling: Ceiling,
    /// The drain's events/s in percent of the ceiling's.
    pub percent_of_ceiling: f64,
}

/// Drains the workload's fulfillment backlog with `replicas` workers at `batch_size` (see
/// [`drain::phase`]), then applies it with PostgreSQL alone; both must end in the in-order state.
pub async fn phase(
    workload: &mut Workload,
    order_worker: &Path,
    replicas: usize,
    batch_size: u32,
) -> anyhow::Result<AtSize> {
    let orders = workload.orders.len();
    let name = format!("drain at {orders} orders");
    let drain = drain::phase(
        workload,
        Backlog::Fulfillment,
        &name,
        order_worker,
        replicas,
        batch_size,
    )
    .await?;
    workload.reset(Backlog::Fulfillment).await?;
    let ceiling = ceiling::set_based(workload, replicas, batch_size as usize).await?;
    (workload.verify(&format!("PostgreSQL alone at {orders} orders"), true)).await?;
    Ok(AtSize {
        orders,
        percent_of_ceiling: drain.events_per_second / ceiling.events_per_second * 100.0,
        drain,
        ceiling,
    })
}
