//! What a relay drains: the worker's own outbox (`order_events_outbox`, one stream, rows deleted
//! once published, a refused row held) or the order service's (`RELAY_TABLE`, the stream each
//! row's topic names, rows marked published or failed as the order service's own relay did).
//! One relay publishes either; what differs is only the SQL, built here once.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{
    fence_of, sql_literal as literal, OrderEvents, RelayMapping, RelayTable, TableName,
};

/// The worker's own outbox table, and the channel its trigger notifies on commit.
pub const OWN_TABLE: &str = "order_events_outbox";

/// The own relay's leader lock (a session-level advisory lock; "obox" in ASCII).
pub const LEADER_LOCK: i64 = 0x6f62_6f78;

/// A table a relay drains.
#[derive(Debug, Clone)]
pub struct Source {
    /// The table, as the metrics' `outbox` label names it.
    pub table: String,
    /// What its log lines start with.
    pub label: String,
    /// The advisory lock its one relay holds.
    pub lock: i64,
    /// What commits that write rows notify (the LISTEN channel).
    pub channel: String,
    /// Told apart from other relays' fences on the same stream (the own relay and the order
    /// service's table's both publish `orders.order.status_changed`): `None` for the own relay's,
    /// whose fence keeps the key it always had.
    pub fence_suffix: Option<String>,
    /// The one stream every row goes to; `None`: each row's topic names its stream.
    pub topic: Option<String>,
    pub maxlen: Option<u64>,
    /// The order id's path in a row's JSON payload.
    pub order_id_path: Vec<String>,
    /// Refusals by Redis before a row is failed (held).
    pub max_attempts: u32,
    /// Looked for new rows this often without a notification.
    pub poll: Duration,
    /// How long published rows are kept (with [`Sql::cleanup`]).
    pub retention: Duration,
    pub sql: Sql,
}

/// The statements, each selecting or changing rows by `$1` (ids, or a limit) and `$2`.
#[derive(Debug, Clone)]
pub struct Sql {
    /// Rows waiting, oldest first, `$1` at most, as [`super::rows::Row`].
    pub waiting: String,
    /// Marks rows `$1` (ids) published.
    pub published: String,
    /// Records a refusal of row `$1` with reason `$2`, the row still waiting.
    pub refused: String,
    /// Marks row `$1` failed with reason `$2`.
    pub failed: String,
    /// Marks published the waiting rows of stream `$3` among the oldest `$1` whose event ids
    /// are in `$2`.
    pub found: String,
    /// `waiting`, `failed` (BIGINT) and `oldest` (float8 seconds) of the table.
    pub backlog: String,
    /// For operators: the oldest `$2` rows waiting or failed (failed only when `$1`), as
    /// [`super::Listed`].
    pub listing: String,
    /// Makes failed rows (those of ids `$1`, or all when it is empty) wait again, returning
    /// their ids.
    pub requeue: String,
    /// Deletes at most `$2` rows published more than `$1` seconds ago; `None`: the relay
    /// deletes nothing of the kind (the own outbox's rows go when published).
    pub cleanup: Option<String>,
}

impl Source {
    /// The worker's own outbox.
    pub fn own(settings: &OrderEvents) -> Self {
        let held = "held_since = now(), held_reason = $2 WHERE id = $1";
        Self {
            table: OWN_TABLE.to_owned(),
            label: "order events".to_owned(),
            fence_suffix: None,
            lock: LEADER_LOCK,
            channel: OWN_TABLE.to_owned(),
            topic: Some(settings.order_events_topic.clone()),
            maxlen: settings.order_events_maxlen,
            order_id_path: vec!["order_id".to_owned()],
            max_attempts: 1,
            poll: Duration::from_secs(1),
            retention: Duration::ZERO,
            sql: Sql {
                waiting: "SELECT o.id, o.event_id::text AS event_id, NULL::text AS topic, \
                    o.data::text AS payload, o.traceparent, o.tracestate, o.created_at, \
                    0 AS attempts FROM order_events_outbox o WHERE o.held_since IS NULL AND \
                    NOT EXISTS (SELECT 1 FROM order_events_outbox h WHERE h.held_since IS NOT \
                    NULL AND h.order_id = o.order_id) ORDER BY o.id LIMIT $1"
                    .to_owned(),
                published: "DELETE FROM order_events_outbox WHERE id = ANY($1)".to_owned(),
                refused: format!("UPDATE order_events_outbox SET {held}"),
                failed: format!("UPDATE order_events_outbox SET {held}"),
                found: "DELETE FROM order_events_outbox WHERE id IN (SELECT id FROM \
                    order_events_outbox ORDER BY id LIMIT $1) AND event_id::text = ANY($2) \
                    AND $3::text IS NOT NULL"
                    .to_owned(),
                backlog: "SELECT count(*) FILTER (WHERE held_since IS NULL) AS waiting, \
                    count(*) FILTER (WHERE held_since IS NOT NULL) AS failed, \
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE \
                    held_since IS NULL)), 0)::float8 AS oldest FROM order_events_outbox"
                    .to_owned(),
                listing: listing(
                    "order_events_outbox",
                    ("id", "event_id", "NULL", "data", "created_at"),
                    ("0", "held_reason"),
                    ("held_since IS NULL", "held_since IS NOT NULL"),
                ),
                cleanup: None,
                requeue: "UPDATE order_events_outbox SET held_since = NULL, held_reason = NULL \
                    WHERE held_since IS NOT NULL AND (cardinality($1) = 0 OR id = ANY($1)) \
                    RETURNING id"
                    .to_owned(),
            },
        }
    }

    /// The order service's outbox `RELAY_TABLE`, if one is set.
    pub fn mapped(relay: &RelayTable) -> Option<Self> {
        let table = relay.mapping.relay_table.as_ref()?;
        let name = table.to_string();
        Some(Self {
            lock: lock_of(&name),
            channel: name.clone(),
            label: format!("relay of {name}"),
            fence_suffix: Some(name.clone()),
            table: name,
            topic: None,
            maxlen: None,
            order_id_path: relay
                .relay_order_id_path
                .split('.')
                .map(str::to_owned)
                .collect(),
            max_attempts: relay.relay_max_attempts,
            poll: relay.relay_poll_interval,
            retention: relay.relay_retention.0.unwrap_or_default(),
            sql: mapped_sql(&relay.mapping, relay, &table.quoted()),
        })
    }
}

impl Source {
    /// The key of this relay's fence on `stream`, in the stream's Redis Cluster slot.
    pub fn fence(&self, stream: &str) -> String {
        let fence = fence_of(stream);
        match &self.fence_suffix {
            Some(suffix) => format!("{fence}.{suffix}"),
            None => fence,
        }
    }
}

/// A mapped table's column names, quoted.
struct Columns {
    id: String,
    topic: String,
    event_id: String,
    payload: String,
    status: String,
    published_at: String,
    attempts: String,
    last_error: String,
    created_at: String,
}

impl From<&RelayMapping> for Columns {
    fn from(mapping: &RelayMapping) -> Self {
        Self {
            id: mapping.relay_column_id.quoted(),
            topic: mapping.relay_column_topic.quoted(),
            event_id: mapping.relay_column_event_id.quoted(),
            payload: mapping.relay_column_payload.quoted(),
            status: mapping.relay_column_status.quoted(),
            published_at: mapping.relay_column_published_at.quoted(),
            attempts: mapping.relay_column_attempts.quoted(),
            last_error: mapping.relay_column_last_error.quoted(),
            created_at: mapping.relay_column_created_at.quoted(),
        }
    }
}

/// The statements of a mapped table. Statuses are spliced in as literals, not bound, so that
/// a status column of an enum type takes them.
fn mapped_sql(mapping: &RelayMapping, relay: &RelayTable, table: &str) -> Sql {
    let Columns {
        id,
        topic,
        event_id,
        payload,
        status,
        published_at,
        attempts,
        last_error,
        created_at,
    } = Columns::from(mapping);
    let (failed, pending) = (
        literal(&relay.relay_failed_status),
        literal(&relay.relay_pending_status),
    );
    let (waits, fails, mark_published) = states(&status, &published_at, relay);
    let refuse = format!("{attempts} = COALESCE({attempts}, 0) + 1, {last_error} = $2");
    Sql {
        waiting: format!(
            "SELECT {id}::bigint AS id, {event_id}::text AS event_id, {topic}::text AS topic, \
             {payload}::text AS payload, NULL::text AS traceparent, NULL::text AS tracestate, \
             {created_at}::timestamptz AS created_at, COALESCE({attempts}, 0)::int AS attempts \
             FROM {table} WHERE {waits} ORDER BY {id} LIMIT $1"
        ),
        published: format!("UPDATE {table} SET {mark_published} WHERE {id} = ANY($1)"),
        refused: format!("UPDATE {table} SET {refuse} WHERE {id} = $1"),
        failed: format!("UPDATE {table} SET {refuse}, {status} = {failed} WHERE {id} = $1"),
        found: format!(
            "UPDATE {table} SET {mark_published} WHERE {id} IN (SELECT {id} FROM {table} \
             WHERE {waits} ORDER BY {id} LIMIT $1) AND {event_id}::text = ANY($2) \
             AND {topic}::text = $3"
        ),
        backlog: format!(
            "SELECT count(*) FILTER (WHERE {waits}) AS waiting, \
             count(*) FILTER (WHERE {fails}) AS failed, \
             COALESCE(EXTRACT(EPOCH FROM now() - min({created_at}) FILTER (WHERE {waits})), \
             0)::float8 AS oldest FROM {table}"
        ),
        listing: listing(
            table,
            (&id, &event_id, &topic, &payload, &created_at),
            (&attempts, &last_error),
            (&waits, &fails),
        ),
        requeue: format!(
            "UPDATE {table} SET {status} = {pending}, {attempts} = 0 WHERE {fails} \
             AND (cardinality($1) = 0 OR {id} = ANY($1)) RETURNING {id}::bigint AS id"
        ),
        cleanup: relay.relay_retention.0.map(|_| {
            format!(
                "DELETE FROM {table} WHERE {id} IN (SELECT {id} FROM {table} WHERE \
                 {published_at} < now() - make_interval(secs => $1) LIMIT $2)"
            )
        }),
    }
}

/// What waiting and failed are in a mapped table, and how a row is marked published.
fn states(status: &str, published_at: &str, relay: &RelayTable) -> (String, String, String) {
    let published = literal(&relay.relay_published_status);
    let failed = literal(&relay.relay_failed_status);
    // A row with a publishing time is never published again, whatever its status says (a
    // mistyped RELAY_PUBLISHED_STATUS must not publish the whole history again).
    let waits = format!(
        "{published_at} IS NULL AND {status}::text IS DISTINCT FROM {published} \
         AND {status}::text IS DISTINCT FROM {failed}"
    );
    let fails = format!("{status}::text = {failed}");
    let mark_published = format!("{status} = {published}, {published_at} = now()");
    (waits, fails, mark_published)
}

/// The operators' listing of `table`, from its columns (id, event id, topic, payload, created
/// at), its refusals (attempts, last error) and what waiting and failed mean in it.
fn listing(
    table: &str,
    (id, event_id, topic, payload, created_at): (&str, &str, &str, &str, &str),
    (attempts, last_error): (&str, &str),
    (waits, fails): (&str, &str),
) -> String {
    format!(
        "SELECT {id}::bigint AS id, {event_id}::text AS event_id, {topic}::text AS topic, \
         {payload}::text AS payload, NULL::text AS traceparent, NULL::text AS tracestate, \
         ({fails}) AS failed, COALESCE({attempts}, 0)::int AS \
         attempts, {last_error}::text AS last_error, {created_at}::timestamptz AS created_at, \
         (EXTRACT(EPOCH FROM now() - {created_at}) * 1000)::bigint AS age_ms FROM {table} \
         WHERE (({waits}) AND NOT $1) OR ({fails}) ORDER BY {id} LIMIT $2"
    )
}

/// The statement giving `table` the trigger that notifies its relay (the channel its
/// [`Source::channel`] listens on: the table's name) on each statement that inserts rows
/// (`migrate --relay-trigger`); it can be run again.
pub fn trigger(table: &TableName) -> String {
    let channel = literal(&table.to_string());
    format!(
        "CREATE OR REPLACE FUNCTION order_worker_relay_notify() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify(TG_ARGV[0], ''); RETURN NULL; END $$; \
         CREATE OR REPLACE TRIGGER order_worker_relay_notify AFTER INSERT ON {} \
         FOR EACH STATEMENT EXECUTE FUNCTION order_worker_relay_notify({channel})",
        table.quoted()
    )
}

/// The leader lock of a mapped table's relay: stable across replicas and builds, and apart
/// from the own relay's.
fn lock_of(table: &str) -> i64 {
    let digest = Sha256::digest(format!("order-worker relay {table}").as_bytes());
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}
