//! The baseline, measured on the same servers in the same run: Dapr's shape (ten handlers, each
//! taking one entry at a time and committing one transaction and one XACK per event). Its
//! ceiling, PostgreSQL alone committing one transaction per event from as many connections, is
//! [`super::ceiling::measure`]'s.

use std::time::Instant;

use anyhow::Context;
use futures_util::future::try_join_all;

use super::workload::Workload;
use order_worker::{apply_batch, Incoming, TableName, Tables};
use order_worker::{decode, Topic, DEFAULT_MAX_ENTRY_BYTES};
use order_worker::{ReadBatch, Reader};

/// The topic the benchmark publishes.
pub(super) fn fulfillment() -> anyhow::Result<&'static dyn Topic> {
    order_worker::topic("fulfillment.status_changed").context("the fulfillment topic")
}

/// Dapr's handler count for `pubsub.redis`.
pub const HANDLERS: usize = 10;

/// Drains the backlog the way Dapr's component does; returns events per second.
pub async fn dapr_shape(workload: &Workload) -> anyhow::Result<f64> {
    let total = workload.events();
    let consumed = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    try_join_all((0..HANDLERS).map(|n| handler(workload, n, total, &consumed))).await?;
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// One handler: XREADGROUP COUNT 1, one transaction, one XACK, until all are consumed.
async fn handler(
    workload: &Workload,
    n: usize,
    total: u64,
    consumed: &std::sync::atomic::AtomicU64,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    let block = std::time::Duration::from_millis(100);
    let mut reader = Reader::connect(
        order_worker::RedisTarget::new(
            &workload.connections.redis_tls,
            &workload.connections.redis_url,
        )?,
        vec![workload.stream.clone()],
        format!("dapr-{n}"),
        block,
    )
    .await?;
    let mut redis = workload.redis.clone();
    let mut db = workload.db().await?;
    let tables = Tables::inspect(&mut db, &TableName::default()).await?;
    let topic = fulfillment()?;
    while consumed.load(Ordering::Relaxed) < total {
        let batch: ReadBatch = reader.next_batch(1, block).await?;
        for entry in &batch.entries {
            let event = decode(
                topic,
                &entry.fields,
                DEFAULT_MAX_ENTRY_BYTES,
                tables.orders.order_ids(),
            )?;
            apply_batch(
                &mut db,
                &tables,
                &[Incoming {
                    entry_id: &entry.id,
                    event: &event,
                }],
            )
            .await?;
            let _: u64 = redis::cmd("XACK")
                .arg(&workload.stream.stream)
                .arg(&workload.stream.group)
                .arg(&entry.id)
                .query_async(&mut redis)
                .await?;
            consumed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
