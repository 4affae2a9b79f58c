//! `order-worker outbox`: what waits in `order_events_outbox` to be published as
//! `orders.order.status_changed`, and which replica relays it. Read from PostgreSQL alone (one
//! read-only snapshot, so the counts and the rows agree), never from Redis: it is for when
//! events stop reaching subscribers, and Redis refusing writes is one reason they do. The text
//! output is in [`render`].

mod relay_table;
mod render;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

pub use render::render;

use super::output::rfc3339;
use super::print_report;
use crate::config::{redact_url, OrderEvents, RelayTable, DEFAULT_DATABASE_URL};
use crate::outbox::Source;

/// The session holding the relay's leader lock is the one replica that relays.
use crate::outbox::LEADER_LOCK as RELAY_LOCK;

/// `order-worker outbox` settings: only the database. Redis is not needed, so the command
/// answers while Redis is the thing that fails.
#[derive(Clone, clap::Args)]
pub struct OutboxArgs {
    /// PostgreSQL URL of the orders database (the workers' role can read the outbox).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// How many of the oldest rows to list.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// List only held rows (Redis refused them for good; each stops its order's later rows);
    /// with RELAY_TABLE, only its failed rows.
    #[arg(long)]
    pub held: bool,
    /// Print JSON, for scripts, instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Make failed rows wait again, to be published in their turn: RELAY_TABLE's (status back
    /// to RELAY_PENDING_STATUS, attempts 0) when it is set, else the held rows of the worker's
    /// own outbox. All of them, or those `--id` names. Run it with `--dry-run` first.
    #[arg(long)]
    pub requeue: bool,
    /// With `--requeue`: only these rows (repeatable).
    #[arg(long, requires = "requeue")]
    pub id: Vec<i64>,
    /// With `--requeue`: say which rows it would requeue, and change nothing.
    #[arg(long, requires = "requeue")]
    pub dry_run: bool,
    #[command(flatten)]
    pub relay: RelayTable,
}

impl std::fmt::Debug for OutboxArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("limit", &self.limit)
            .field("held", &self.held)
            .field("json", &self.json)
            .field("requeue", &self.requeue)
            .field("id", &self.id)
            .field("dry_run", &self.dry_run)
            .field("relay", &self.relay)
            .finish()
    }
}

/// Everything `outbox` shows, from one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Outbox {
    /// Rows not published yet and not held (the relay's backlog, as the outbox gauges count).
    pub waiting: u64,
    /// Of `waiting`, the rows of orders that have a held row: they wait until it is dealt with.
    pub behind_held: u64,
    /// Rows Redis refused for good, kept with the reason.
    pub held: u64,
    /// How long the oldest waiting row has waited, by PostgreSQL's clock (`None`: none waits).
    pub oldest_waiting_ms: Option<u64>,
    /// The session holding the relay's lock; `None`: no replica relays now.
    pub relay: Option<RelayHolder>,
    /// Whether `rows` are the held rows only (`--held`).
    pub held_only: bool,
    /// The oldest rows (held ones only with `--held`), oldest first, at most `--limit`.
    pub rows: Vec<OutboxRow>,
}

impl Outbox {
    /// Rows the listing was taken from: every row, or the held ones with `--held`.
    pub fn listed_of(&self) -> u64 {
        if self.held_only {
            self.held
        } else {
            self.waiting + self.held
        }
    }
}

/// The session that relays: its line of `pg_locks` joined with `pg_stat_activity`. What that
/// view hides from a role that is neither the holder's nor `pg_read_all_stats` is `None`.
#[derive(Debug, Clone, Serialize, diesel::QueryableByName)]
pub struct RelayHolder {
    /// The backend's process id (`pg_terminate_backend` takes it).
    #[diesel(sql_type = Integer)]
    pub pid: i32,
    /// `application_name`, when the session set one.
    #[diesel(sql_type = Nullable<Text>)]
    pub application_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub role: Option<String>,
    /// The replica's address (its pod IP); `None` over a Unix socket, or hidden.
    #[diesel(sql_type = Nullable<Text>)]
    pub client_addr: Option<String>,
    /// When the session started (RFC 3339); `None` when hidden from this role.
    #[diesel(sql_type = Nullable<Text>)]
    pub backend_start: Option<String>,
    /// How long ago that was.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub session_age_ms: Option<i64>,
}

/// One row of the outbox, as operators read it: the step it announces, its cause, and why it
/// waits when it does not simply wait its turn.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    /// The CloudEvent id it is (or will be) published with.
    pub event_id: String,
    pub order_id: String,
    pub old_status: Option<String>,
    pub new_status: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
    /// Since it was written, by PostgreSQL's clock.
    pub age_ms: u64,
    /// The consumed entry that made the change: its topic and stream id.
    pub cause_topic: String,
    pub cause_entry_id: String,
    pub held_since: Option<String>,
    pub held_reason: Option<String>,
    /// For a row not held: the held row of the same order it waits behind, if any.
    pub waits_behind: Option<i64>,
}

/// `order-worker outbox`: prints the snapshot. Nobody relaying is reported, not a failure: the
/// command fails only when it cannot read (exit 1).
pub async fn run(args: OutboxArgs) -> anyhow::Result<()> {
    let mut conn = crate::store::connect::connect_or_unreachable(args.database_url.clone()).await?;
    let mapped = Source::mapped(&args.relay);
    if args.requeue {
        let source = mapped.unwrap_or_else(|| Source::own(&OrderEvents::default()));
        let done = relay_table::requeue(&mut conn, &source, &args).await?;
        return print_report(args.json, &done, || relay_table::render_requeued(&done));
    }
    if let Some(source) = mapped {
        let listing = relay_table::list(&mut conn, &source, &args).await?;
        return print_report(args.json, &listing, || relay_table::render_table(&listing));
    }
    let outbox = read(&mut conn, args.limit, args.held).await?;
    print_report(args.json, &outbox, || render(&outbox))
}

/// Reads the snapshot, in one read-only REPEATABLE READ transaction; fails, saying to migrate,
/// when the schema has no outbox yet.
pub async fn read(
    conn: &mut AsyncPgConnection,
    limit: u32,
    held_only: bool,
) -> anyhow::Result<Outbox> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            require_table(conn).await?;
            let counts = counts(conn).await?;
            let relay = relay_holder(conn, RELAY_LOCK).await?;
            let rows = rows(conn, limit, held_only).await?;
            Ok::<_, anyhow::Error>(Outbox {
                waiting: counts.waiting.max(0) as u64,
                behind_held: counts.behind_held.max(0) as u64,
                held: counts.held.max(0) as u64,
                oldest_waiting_ms: counts.oldest_waiting_ms.map(|ms| ms.max(0) as u64),
                relay,
                held_only,
                rows,
            })
        })
        .await
}

/// Fails with what to do when the outbox's migration has not run here: a plain "relation does
/// not exist" would not say.
async fn require_table(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT to_regclass('order_events_outbox') IS NOT NULL AS exists")
            .get_result(conn)
            .await
            .context("looking for the order_events_outbox table")?;
    if !found.exists {
        anyhow::bail!(
            "the database schema is behind this worker: it has no order_events_outbox table \
             (migration 2026-12-07-000014_order_events_outbox); run `order-worker migrate` first"
        );
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    waiting: i64,
    #[diesel(sql_type = BigInt)]
    behind_held: i64,
    #[diesel(sql_type = BigInt)]
    held: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    oldest_waiting_ms: Option<i64>,
}

/// The counts, with "waiting" and "held" meaning what the relay's gauges mean by them.
async fn counts(conn: &mut AsyncPgConnection) -> anyhow::Result<Counts> {
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE held_since IS NULL) AS waiting, \
         count(*) FILTER (WHERE held_since IS NULL AND order_id IN \
           (SELECT order_id FROM order_events_outbox WHERE held_since IS NOT NULL)) AS behind_held, \
         count(*) FILTER (WHERE held_since IS NOT NULL) AS held, \
         (EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE held_since IS NULL)) * 1000)::bigint \
           AS oldest_waiting_ms \
         FROM order_events_outbox",
    )
    .get_result(conn)
    .await
    .context("counting the rows of order_events_outbox")
}

/// `pg_locks` shows a lock on one bigint key as two 32-bit halves (`classid` the high one,
/// `objid` the low one, `objsubid` 1), each an unsigned `oid`.
fn lock_halves(key: i64) -> (i64, i64) {
    let key = key as u64;
    ((key >> 32) as i64, (key & 0xffff_ffff) as i64)
}

/// The session holding the relay's lock `lock` in this database (advisory locks are per
/// database: a relay of another database on the same server holds the same key there).
async fn relay_holder(
    conn: &mut AsyncPgConnection,
    lock: i64,
) -> anyhow::Result<Option<RelayHolder>> {
    let (high, low) = lock_halves(lock);
    let holders: Vec<RelayHolder> = diesel::sql_query(
        "SELECT l.pid, NULLIF(a.application_name, '') AS application_name, \
         a.usename::text AS role, host(a.client_addr) AS client_addr, \
         to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS backend_start, \
         (EXTRACT(EPOCH FROM now() - a.backend_start) * 1000)::bigint AS session_age_ms \
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1 \
         ORDER BY l.pid",
    )
    .bind::<BigInt, _>(high)
    .bind::<BigInt, _>(low)
    .load(conn)
    .await
    .context("looking up who holds the relay's lock (pg_locks)")?;
    // An exclusive lock: one holder at most.
    Ok(holders.into_iter().next())
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    old_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    new_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    age_ms: i64,
    #[diesel(sql_type = Text)]
    cause_topic: String,
    #[diesel(sql_type = Text)]
    cause_entry_id: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    held_since: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    held_reason: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    waits_behind: Option<i64>,
}

/// The oldest `limit` rows in id order (the order the relay publishes them in), held ones
/// only when `held_only`.
async fn rows(
    conn: &mut AsyncPgConnection,
    limit: u32,
    held_only: bool,
) -> anyhow::Result<Vec<OutboxRow>> {
    let stored: Vec<Stored> = diesel::sql_query(
        "SELECT o.id, o.event_id::text AS event_id, o.order_id, \
         o.data->>'old_status' AS old_status, o.data->>'new_status' AS new_status, \
         o.data->>'reason' AS reason, o.created_at, \
         (EXTRACT(EPOCH FROM now() - o.created_at) * 1000)::bigint AS age_ms, \
         o.cause_topic, o.cause_entry_id, o.held_since, o.held_reason, \
         CASE WHEN o.held_since IS NULL THEN (SELECT min(h.id) FROM order_events_outbox h \
           WHERE h.held_since IS NOT NULL AND h.order_id = o.order_id) END AS waits_behind \
         FROM order_events_outbox o WHERE NOT $1 OR o.held_since IS NOT NULL \
         ORDER BY o.id LIMIT $2",
    )
    .bind::<Bool, _>(held_only)
    .bind::<BigInt, _>(i64::from(limit))
    .load(conn)
    .await
    .context("reading the rows of order_events_outbox")?;
    Ok(stored.into_iter().map(OutboxRow::from).collect())
}

impl From<Stored> for OutboxRow {
    fn from(row: Stored) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            order_id: row.order_id,
            old_status: row.old_status,
            new_status: row.new_status,
            reason: row.reason,
            created_at: rfc3339(row.created_at),
            age_ms: row.age_ms.max(0) as u64,
            cause_topic: row.cause_topic,
            cause_entry_id: row.cause_entry_id,
            held_since: row.held_since.map(rfc3339),
            held_reason: row.held_reason,
            waits_behind: row.waits_behind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bigint_key_is_found_by_its_two_halves_as_pg_locks_shows_them() {
        assert_eq!(lock_halves(RELAY_LOCK), (0, 1_868_722_040));
        assert_eq!(lock_halves(-5), (4_294_967_295, 4_294_967_291));
        assert_eq!(lock_halves(0x1_0000_0002), (1, 2));
    }
}
