//! The inbox's retention: `processed_events` remembers an event only as long as it can come back
//! (docs/operations.md, "Retention"). Its rows are dropped in short steps through the migration's
//! `prune_processed_events` (each step a transaction of its own, so no lock is held for more
//! than a step), by one replica at a time under an advisory lock.
//!
//! Deleting in steps rather than dropping daily partitions: a partitioned inbox could not keep
//! `(order_id, event_id)` unique (PostgreSQL's unique indexes on a partitioned table must include
//! the partition key), which is what makes a redelivery a `duplicate`; and a day's partition
//! would drop part of an order's record, from which a late event recomputes the whole order.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::shutdown::Shutdown;

/// Rows looked at per step: a step of this many deletes in a few tens of milliseconds.
pub const STEP_ROWS: i32 = 5_000;

/// Serialises the pruning across replicas (an arbitrary constant; "inbx" in ASCII).
const RETENTION_LOCK_KEY: i64 = 0x696e_6278;

/// What one round of pruning did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pruned {
    pub rows: u64,
    pub steps: u32,
    /// The slowest step: as long as any worker's write may have waited on the pruning.
    pub longest_step: Duration,
    /// It walked to the end (shutdown did not cut it short).
    pub finished: bool,
}

/// The inbox as the gauges show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Extent {
    /// PostgreSQL's estimate (`reltuples`, kept by ANALYZE), not a count: counting 100 million
    /// rows would take minutes.
    pub rows_estimate: f64,
    /// The age of the oldest row (none when empty).
    pub oldest: Option<Duration>,
}

#[derive(diesel::QueryableByName)]
struct Step {
    #[diesel(sql_type = BigInt)]
    deleted: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    next_id: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Drops the inbox's rows older than `keep` whose order has nothing newer, unless another
/// replica is at it (then `None`). Stops between steps once `shutdown` fires.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    keep: Duration,
    shutdown: &Shutdown,
) -> diesel::QueryResult<Option<Pruned>> {
    let lock: Locked = diesel::sql_query(format!(
        "SELECT pg_try_advisory_lock({RETENTION_LOCK_KEY}) AS locked"
    ))
    .get_result(conn)
    .await?;
    if !lock.locked {
        return Ok(None);
    }
    let pruned = steps(conn, keep, shutdown).await;
    diesel::sql_query(format!("SELECT pg_advisory_unlock({RETENTION_LOCK_KEY})"))
        .execute(conn)
        .await?;
    pruned.map(Some)
}

async fn steps(
    conn: &mut AsyncPgConnection,
    keep: Duration,
    shutdown: &Shutdown,
) -> diesel::QueryResult<Pruned> {
    let mut pruned = Pruned::default();
    let mut cursor = (DateTime::<Utc>::UNIX_EPOCH, String::new());
    while !shutdown.is_triggered() {
        let started = Instant::now();
        let step: Step = diesel::sql_query(
            "SELECT deleted, next_at, next_id FROM \
             prune_processed_events(make_interval(secs => $1), $2, $3, $4)",
        )
        .bind::<Double, _>(keep.as_secs_f64())
        .bind::<Integer, _>(STEP_ROWS)
        .bind::<Timestamptz, _>(cursor.0)
        .bind::<Text, _>(&cursor.1)
        .get_result(conn)
        .await?;
        pruned.rows += step.deleted as u64;
        pruned.steps += 1;
        pruned.longest_step = pruned.longest_step.max(started.elapsed());
        match (step.next_at, step.next_id) {
            (Some(at), Some(id)) => cursor = (at, id),
            _ => {
                pruned.finished = true;
                break;
            }
        }
    }
    Ok(pruned)
}

#[derive(diesel::QueryableByName)]
struct ExtentRow {
    #[diesel(sql_type = Double)]
    rows_estimate: f64,
    #[diesel(sql_type = Nullable<Double>)]
    oldest_seconds: Option<f64>,
}

/// The inbox's size and oldest row, cheaply: the catalog's estimate, and the first entry of the
/// index by age.
pub async fn extent(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Extent> {
    let row: ExtentRow = diesel::sql_query(
        "SELECT GREATEST(c.reltuples, 0)::float8 AS rows_estimate, \
         (SELECT EXTRACT(EPOCH FROM now() - min(processed_at))::float8 FROM processed_events) \
         AS oldest_seconds \
         FROM pg_class c WHERE c.oid = 'processed_events'::regclass",
    )
    .get_result(conn)
    .await?;
    Ok(Extent {
        rows_estimate: row.rows_estimate,
        oldest: row
            .oldest_seconds
            .map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
    })
}
