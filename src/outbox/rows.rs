//! The relay's queries, on the statements of its [`Source`]: who leads, the rows waiting, and
//! what happens to them once published or refused.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
// The derive of a row that embeds another calls the trait by its bare name.
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::source::Source;

/// A row waiting to be published, whichever table it is in.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Row {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    /// The stream it goes to; `None`: the source's one stream.
    #[diesel(sql_type = Nullable<Text>)]
    pub topic: Option<String>,
    /// The event, as text (JSON, or not when its writer wrote something else).
    #[diesel(sql_type = Nullable<Text>)]
    pub payload: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub traceparent: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub tracestate: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// Refusals so far.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// Names the session after the replica, so `pg_stat_activity` (and `order-worker outbox`) says
/// which one relays.
pub async fn name_session(conn: &mut AsyncPgConnection, replica: &str) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT set_config('application_name', $1, false)")
        .bind::<Text, _>(format!("order-worker relay {replica}"))
        .execute(conn)
        .await
        .map(drop)
}

/// Takes the source's leader lock if it is free; true if this session holds it now.
pub async fn try_lead(conn: &mut AsyncPgConnection, source: &Source) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    Ok(
        diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<BigInt, _>(source.lock)
            .get_result::<Locked>(conn)
            .await?
            .locked,
    )
}

/// From now on, every commit that notifies the source's channel wakes this session.
pub async fn listen(conn: &mut AsyncPgConnection, source: &Source) -> diesel::QueryResult<()> {
    let channel = source.channel.replace('"', "");
    conn.batch_execute(&format!("LISTEN \"{channel}\"")).await
}

/// The oldest `limit` rows waiting, in id order (each order's in the order of its changes).
pub async fn waiting(
    conn: &mut AsyncPgConnection,
    source: &Source,
    limit: u32,
) -> diesel::QueryResult<Vec<Row>> {
    diesel::sql_query(&source.sql.waiting)
        .bind::<BigInt, _>(i64::from(limit))
        .load(conn)
        .await
}

/// Marks published rows so (deleting them from the own outbox).
pub async fn published(
    conn: &mut AsyncPgConnection,
    source: &Source,
    ids: &[i64],
) -> diesel::QueryResult<usize> {
    diesel::sql_query(&source.sql.published)
        .bind::<Array<BigInt>, _>(ids)
        .execute(conn)
        .await
}

/// Marks published the rows of `stream` whose events are among `event_ids` (read back from the
/// stream: published by a relay that died before marking them), looking among the oldest
/// `within` rows waiting, where a round's rows always are.
pub async fn found_published(
    conn: &mut AsyncPgConnection,
    source: &Source,
    stream: &str,
    event_ids: &[String],
    within: usize,
) -> diesel::QueryResult<usize> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(&source.sql.found)
        .bind::<BigInt, _>(within as i64)
        .bind::<Array<Text>, _>(event_ids)
        .bind::<Text, _>(stream)
        .execute(conn)
        .await
}

/// Records a refusal of row `id` with the reason: failed for good (held, in the own outbox:
/// its order's later rows wait behind it), or to be tried again.
pub async fn refused(
    conn: &mut AsyncPgConnection,
    source: &Source,
    id: i64,
    reason: &str,
    failed: bool,
) -> diesel::QueryResult<usize> {
    let sql = if failed {
        &source.sql.failed
    } else {
        &source.sql.refused
    };
    diesel::sql_query(sql)
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(reason)
        .execute(conn)
        .await
}

/// A source's table as the gauges show it.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    pub waiting: u64,
    /// Failed rows (held, in the own outbox).
    pub failed: u64,
    /// How long the oldest row waiting has waited.
    pub oldest: Duration,
}

pub async fn backlog(
    conn: &mut AsyncPgConnection,
    source: &Source,
) -> diesel::QueryResult<Backlog> {
    #[derive(diesel::QueryableByName)]
    struct Seen {
        #[diesel(sql_type = BigInt)]
        waiting: i64,
        #[diesel(sql_type = BigInt)]
        failed: i64,
        #[diesel(sql_type = Double)]
        oldest: f64,
    }
    let seen: Seen = diesel::sql_query(&source.sql.backlog)
        .get_result(conn)
        .await?;
    Ok(Backlog {
        waiting: seen.waiting.max(0) as u64,
        failed: seen.failed.max(0) as u64,
        oldest: Duration::from_secs_f64(seen.oldest.max(0.0)),
    })
}

/// A row as operators see it (`order-worker outbox` with RELAY_TABLE).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Listed {
    /// (Not named `row`: the derive's own parameter is.)
    #[diesel(embed)]
    pub stored: Row,
    #[diesel(sql_type = Bool)]
    pub failed: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub age_ms: i64,
}

/// The oldest `limit` rows waiting or failed (failed only with `failed_only`), in id order.
pub async fn listing(
    conn: &mut AsyncPgConnection,
    source: &Source,
    failed_only: bool,
    limit: u32,
) -> diesel::QueryResult<Vec<Listed>> {
    diesel::sql_query(&source.sql.listing)
        .bind::<Bool, _>(failed_only)
        .bind::<BigInt, _>(i64::from(limit))
        .load(conn)
        .await
}

/// Why a requeue's transaction did not commit: a dry run (rolled back, with what it would
/// have requeued) or a failure.
enum Undone {
    DryRun(Vec<i64>),
    Failed(diesel::result::Error),
}

impl From<diesel::result::Error> for Undone {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(error)
    }
}

/// Makes the failed rows `ids` (all failed rows when empty) wait again, to be published in
/// their turn; with `dry_run`, the same statement rolled back: the ids it would requeue.
pub async fn requeue(
    conn: &mut AsyncPgConnection,
    source: &Source,
    ids: &[i64],
    dry_run: bool,
) -> diesel::QueryResult<Vec<i64>> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let done = conn
        .build_transaction()
        .run(async |conn| {
            let requeued: Vec<Id> = diesel::sql_query(&source.sql.requeue)
                .bind::<Array<BigInt>, _>(ids)
                .load(conn)
                .await?;
            let mut requeued: Vec<i64> = requeued.into_iter().map(|row| row.id).collect();
            requeued.sort_unstable();
            if dry_run {
                return Err(Undone::DryRun(requeued));
            }
            Ok(requeued)
        })
        .await;
    match done {
        Ok(requeued) | Err(Undone::DryRun(requeued)) => Ok(requeued),
        Err(Undone::Failed(error)) => Err(error),
    }
}

/// Deletes at most `limit` rows published longer than the source's retention ago; how many.
pub async fn clean(
    conn: &mut AsyncPgConnection,
    source: &Source,
    limit: u32,
) -> diesel::QueryResult<usize> {
    let Some(sql) = &source.sql.cleanup else {
        return Ok(0);
    };
    diesel::sql_query(sql)
        .bind::<Double, _>(source.retention.as_secs_f64())
        .bind::<BigInt, _>(i64::from(limit))
        .execute(conn)
        .await
}
