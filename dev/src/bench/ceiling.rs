//! PostgreSQL alone: the worker's own statements (`order_worker::apply_batch`, so the ceiling
//! follows every change to them) over the fulfillment backlog's events, decoded by the worker's
//! decoder before the clock starts; no Redis, no decoding and no log line in what is timed.
//! Two shapes: set-based as the worker applies (its batch size, as many transactions at once as
//! its replicas have open), the ceiling a drain is read against; and one transaction per event,
//! the per-event pattern's.

use std::time::Instant;

use anyhow::Context;
use futures_util::future::try_join_all;

use super::workload::Workload;
use order_worker::{apply_batch, decode, Event, Incoming, TableName, Tables};
use order_worker::{WorkerConfig, DEFAULT_MAX_ENTRY_BYTES};

/// What PostgreSQL alone did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ceiling {
    /// Connections at once, each applying its own orders' events.
    pub connections: usize,
    /// Events per transaction.
    pub batch_size: usize,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// The ceiling of `replicas` workers with their defaults at `batch_size`: as many connections as
/// they have transactions open at once (a lane of each batch in flight), `batch_size` events per
/// transaction.
pub async fn set_based(
    workload: &Workload,
    replicas: usize,
    batch_size: usize,
) -> anyhow::Result<Ceiling> {
    let defaults = WorkerConfig::new(workload.connections.clone(), workload.stream.clone());
    measure(
        workload,
        replicas * defaults.transactions_at_once(),
        batch_size,
    )
    .await
}

/// Applies the backlog from `connections` connections, opened before the clock starts, in
/// transactions of `batch_size` events. The orders are dealt out to the connections in turn,
/// each order's events to one connection in stream order: no order's events overtake each
/// other, and no two transactions lock the same order, as in the worker (whose lanes split by
/// order and whose batches in flight write disjoint orders).
pub async fn measure(
    workload: &Workload,
    connections: usize,
    batch_size: usize,
) -> anyhow::Result<Ceiling> {
    let mut opened = Vec::new();
    for _ in 0..connections {
        let mut db = workload.db().await?;
        let tables = Tables::inspect(&mut db, &TableName::default()).await?;
        opened.push((db, tables));
    }
    let lanes = decoded(workload, connections, &opened[0].1)?;
    let incoming: Vec<Vec<Incoming<'_>>> = (lanes.iter())
        .map(|lane| {
            let lane = lane.iter();
            lane.map(|(entry_id, event)| Incoming { entry_id, event })
                .collect()
        })
        .collect();
    let started = Instant::now();
    try_join_all(
        opened
            .iter_mut()
            .zip(&incoming)
            .map(|((db, tables), lane)| async move {
                for batch in lane.chunks(batch_size) {
                    apply_batch(db, tables, batch).await?;
                }
                anyhow::Ok(())
            }),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Ceiling {
        connections,
        batch_size,
        events: workload.events(),
        seconds,
        events_per_second: workload.events() as f64 / seconds,
    })
}

/// The backlog's events as the worker decodes them (order ids as `tables` holds them), each
/// with an entry id that keeps its place in the stream, dealt out to `lanes` lanes by order
/// (the order at index `i` to lane `i % lanes`), each lane in stream order.
fn decoded(
    workload: &Workload,
    lanes: usize,
    tables: &Tables,
) -> anyhow::Result<Vec<Vec<(String, Event)>>> {
    let topic = super::per_event::fulfillment()?;
    let mut dealt: Vec<Vec<(String, Event)>> = (0..lanes).map(|_| Vec::new()).collect();
    for (position, (index, order, status)) in workload.interleaved().enumerate() {
        let fields: Vec<(String, Vec<u8>)> = (workload.entry(order, status).into_iter())
            .map(|(key, value)| (key, value.into_bytes()))
            .collect();
        let event = decode(
            topic,
            &fields,
            DEFAULT_MAX_ENTRY_BYTES,
            tables.orders.order_ids(),
        )
        .context("the benchmark's own event decodes")?;
        dealt[index % lanes].push((format!("{}-0", position + 1), event));
    }
    Ok(dealt)
}
