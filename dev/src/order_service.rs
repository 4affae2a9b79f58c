//! The order service's own outbox table, shaped as it documents it (`outbox_events(id, topic,
//! event_type, event_id, payload, status, published_at, attempts, last_error, created_at)`):
//! what the worker relays with `RELAY_TABLE`, created by the tests and the benchmark alike.

/// The table's name in the order service's schema (and `RELAY_TABLE`'s example).
pub const OUTBOX_TABLE: &str = "outbox_events";

/// `CREATE TABLE` for the order service's outbox named `table`, its payload column of type
/// `payload` (`JSONB`, or `TEXT` where it may hold what is not JSON). The order service's new
/// rows are `PENDING` (upper case), which the relay takes as waiting like any status but its
/// published and failed ones.
pub fn create_outbox_sql(table: &str, payload: &str) -> String {
    format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, topic VARCHAR(255) NOT NULL, \
         event_type VARCHAR(255) NOT NULL, event_id UUID NOT NULL DEFAULT gen_random_uuid(), \
         payload {payload} NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'PENDING', \
         published_at TIMESTAMPTZ, attempts INT NOT NULL DEFAULT 0, last_error TEXT, \
         created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
}
