//! The relay's queries: who leads, the rows waiting, and what happens to them once published
//! (deleted) or refused for good (held, with the reason).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Double, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// The relay's leader lock (a session-level advisory lock; "obox" in ASCII): one replica relays
/// at a time, and PostgreSQL frees it the moment that replica's session ends.
pub const LEADER_LOCK: i64 = 0x6f62_6f78;

/// The channel the outbox's trigger notifies on commit.
const CHANNEL: &str = "order_events_outbox";

/// A row waiting to be published.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Row {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Jsonb)]
    pub data: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    pub traceparent: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub tracestate: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

impl Row {
    /// The status the order moved to: the metrics' label.
    pub fn new_status(&self) -> &str {
        self.data["new_status"].as_str().unwrap_or("unknown")
    }
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

/// Takes the leader lock if it is free; true if this session holds it now.
pub async fn try_lead(conn: &mut AsyncPgConnection) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let sql = format!("SELECT pg_try_advisory_lock({LEADER_LOCK}) AS locked");
    Ok(diesel::sql_query(sql)
        .get_result::<Locked>(conn)
        .await?
        .locked)
}

/// From now on, every commit that writes rows notifies this session.
pub async fn listen(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("LISTEN {CHANNEL}")).await
}

/// The oldest `limit` rows waiting, in id order (each order's in the order of its changes),
/// skipping the orders a held row stops.
pub async fn waiting(conn: &mut AsyncPgConnection, limit: u32) -> diesel::QueryResult<Vec<Row>> {
    diesel::sql_query(
        "SELECT o.id, o.event_id::text AS event_id, o.order_id, o.data, o.traceparent, \
         o.tracestate, o.created_at FROM order_events_outbox o \
         WHERE o.held_since IS NULL AND NOT EXISTS (SELECT 1 FROM order_events_outbox h \
         WHERE h.held_since IS NOT NULL AND h.order_id = o.order_id) \
         ORDER BY o.id LIMIT $1",
    )
    .bind::<BigInt, _>(i64::from(limit))
    .load(conn)
    .await
}

/// Deletes published rows.
pub async fn delete(conn: &mut AsyncPgConnection, ids: &[i64]) -> diesel::QueryResult<usize> {
    diesel::sql_query("DELETE FROM order_events_outbox WHERE id = ANY($1)")
        .bind::<Array<BigInt>, _>(ids)
        .execute(conn)
        .await
}

/// Deletes the rows whose events are among `event_ids` (read back from the stream: published
/// by a relay that died before deleting them), looking among the oldest `within` rows, where a
/// round's rows always are.
pub async fn delete_published(
    conn: &mut AsyncPgConnection,
    event_ids: &[String],
    within: usize,
) -> diesel::QueryResult<usize> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "DELETE FROM order_events_outbox WHERE id IN (SELECT id FROM order_events_outbox \
         ORDER BY id LIMIT $1) AND event_id::text = ANY($2)",
    )
    .bind::<BigInt, _>(within as i64)
    .bind::<Array<Text>, _>(event_ids)
    .execute(conn)
    .await
}

/// Holds a row Redis refuses for good: it stays, with the reason, and its order's later rows
/// wait behind it.
pub async fn hold(
    conn: &mut AsyncPgConnection,
    id: i64,
    reason: &str,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "UPDATE order_events_outbox SET held_since = now(), held_reason = $2 WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await
}

/// The outbox as the gauges show it.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    pub waiting: u64,
    pub held: u64,
    /// How long the oldest row not held has waited.
    pub oldest: Duration,
}

pub async fn backlog(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Backlog> {
    #[derive(diesel::QueryableByName)]
    struct Seen {
        #[diesel(sql_type = BigInt)]
        waiting: i64,
        #[diesel(sql_type = BigInt)]
        held: i64,
        #[diesel(sql_type = Double)]
        oldest: f64,
    }
    let seen: Seen = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE held_since IS NULL) AS waiting, \
         count(*) FILTER (WHERE held_since IS NOT NULL) AS held, \
         COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE held_since IS NULL)), 0)::float8 AS oldest \
         FROM order_events_outbox",
    )
    .get_result(conn)
    .await?;
    Ok(Backlog {
        waiting: seen.waiting.max(0) as u64,
        held: seen.held.max(0) as u64,
        oldest: Duration::from_secs_f64(seen.oldest.max(0.0)),
    })
}
