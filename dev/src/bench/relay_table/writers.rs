//! The order service's API, as the phase plays it: rows committed one per transaction, on
//! connections of their own, at a steady rate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::super::workload::Workload;
use crate::order_service::OUTBOX_TABLE;

/// Connections writing rows, as the order service's API handlers do concurrently: one alone
/// commits too few rows a second here (each COMMIT waits for its WAL flush), several share
/// flushes (the per-event ceiling's ten commit ~2,400/s on this machine).
pub const WRITERS: usize = 8;

/// The rows' `event_type`, as the order service's compensation events have it.
const EVENT_TYPE: &str = "compensation.reservation_release";

/// One row the phase writes: its event id (the CloudEvent's), its order, its place in the run.
#[derive(Clone)]
pub(super) struct Row {
    pub event_id: String,
    pub order: String,
    pub seq: usize,
}

/// `count` rows, their orders taken in turn from the workload's.
pub(super) fn plan(workload: &Workload, count: usize) -> Vec<Row> {
    (0..count)
        .map(|seq| Row {
            event_id: uuid::Uuid::new_v4().to_string(),
            order: workload.orders[seq % workload.orders.len()].clone(),
            seq,
        })
        .collect()
}

/// Commits `rows` one per transaction at `rate` a second over [`WRITERS`] connections (each
/// order's on one, so its rows commit in the order of their ids, as one order's changes do);
/// returns when each COMMIT returned, by row.
pub(super) async fn write(
    workload: &Workload,
    topic: &str,
    rows: &[Row],
    rate: u32,
) -> anyhow::Result<Vec<Instant>> {
    let mut connections = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        connections.push(workload.db().await?);
    }
    let order_index: HashMap<&str, usize> = (workload.orders.iter().enumerate())
        .map(|(index, order)| (order.as_str(), index))
        .collect();
    let start = Instant::now();
    let mut writers = Vec::with_capacity(WRITERS);
    for (writer, conn) in connections.into_iter().enumerate() {
        let share: Vec<Row> = (rows.iter())
            .filter(|row| order_index[row.order.as_str()] % WRITERS == writer)
            .cloned()
            .collect();
        let topic = topic.to_owned();
        writers.push(tokio::spawn(write_share(conn, topic, share, start, rate)));
    }
    let mut committed = vec![start; rows.len()];
    for writer in writers {
        for (seq, at) in writer.await.context("writer task")?? {
            committed[seq] = at;
        }
    }
    Ok(committed)
}

/// One writer's rows, each at its time in the schedule (row n at `start` + n / `rate`), or at
/// once if the writer is behind it.
async fn write_share(
    mut conn: AsyncPgConnection,
    topic: String,
    rows: Vec<Row>,
    start: Instant,
    rate: u32,
) -> anyhow::Result<Vec<(usize, Instant)>> {
    let mut committed = Vec::with_capacity(rows.len());
    for row in rows {
        let due = start + Duration::from_secs_f64(row.seq as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        insert(&mut conn, &topic, &row).await?;
        committed.push((row.seq, Instant::now()));
    }
    Ok(committed)
}

/// Inserts `row` in a transaction of its own, as the order service's API writes an event.
pub(super) async fn insert(
    conn: &mut AsyncPgConnection,
    topic: &str,
    row: &Row,
) -> anyhow::Result<()> {
    let payload = serde_json::json!({ "order_id": row.order, "seq": row.seq }).to_string();
    diesel::sql_query(format!(
        "INSERT INTO {OUTBOX_TABLE} (topic, event_type, event_id, payload) \
         VALUES ($1, $2, $3::uuid, $4::jsonb)"
    ))
    .bind::<Text, _>(topic)
    .bind::<Text, _>(EVENT_TYPE)
    .bind::<Text, _>(&row.event_id)
    .bind::<Text, _>(payload)
    .execute(conn)
    .await
    .context("inserting a row into the order service's outbox")?;
    Ok(())
}
