//! `RELAY_TABLE`: the order service's own outbox table, relayed as its Dapr sidecar did, its
//! columns mapped by settings that default to the order service's documented schema
//! `outbox_events(id, topic, event_type, event_id, payload, status, published_at, attempts,
//! last_error, created_at)`.

use std::str::FromStr;
use std::time::Duration;

use super::TableName;

/// Relaying the order service's outbox table.
#[derive(Clone, Debug, clap::Args)]
pub struct RelayTable {
    #[command(flatten)]
    pub mapping: RelayMapping,
    /// Where the order id is in a row's JSON payload (`order_id`, or dotted: `order.id`): rows of
    /// one order are published in the order of their ids.
    #[arg(long, env = "RELAY_ORDER_ID_PATH", default_value = "order_id")]
    pub relay_order_id_path: String,
    /// The status `order-worker outbox --requeue` gives a failed row, to be published again
    /// (the order service's own for a new row).
    #[arg(long, env = "RELAY_PENDING_STATUS", default_value = "pending")]
    pub relay_pending_status: String,
    /// The status a published row is given.
    #[arg(long, env = "RELAY_PUBLISHED_STATUS", default_value = "published")]
    pub relay_published_status: String,
    /// The status a row is given when it is not published for good (RELAY_MAX_ATTEMPTS refusals,
    /// or a row that can never be: an empty topic, no order id).
    #[arg(long, env = "RELAY_FAILED_STATUS", default_value = "failed")]
    pub relay_failed_status: String,
    /// Refusals of a row by Redis before it is marked failed (an outage is waited out and
    /// counts none).
    #[arg(long, env = "RELAY_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub relay_max_attempts: u32,
    /// How long published rows are kept before the relay deletes them, a few hundred at a time
    /// (`30d`, `12h`); `off` leaves them to the order service's own cleanup.
    #[arg(long, env = "RELAY_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub relay_retention: Retention,
    /// How often the relay looks for new rows when no commit notifies it (the order service's
    /// table has no trigger of ours).
    #[arg(long, env = "RELAY_POLL_INTERVAL", default_value = "200ms", value_parser = super::parse_duration)]
    pub relay_poll_interval: Duration,
}

/// Which table, and its columns: what `migrate` checks too.
#[derive(Clone, Debug, clap::Args)]
pub struct RelayMapping {
    /// The order service's outbox table (`table` or `schema.table`): its rows are published to
    /// the stream their topic names, as its Dapr sidecar published them [default: none, nothing
    /// relayed]. `migrate` and start-up check the columns below exist; the table is never
    /// altered.
    #[arg(long, env = "RELAY_TABLE")]
    pub relay_table: Option<TableName>,
    /// Its column of row ids (BIGINT or SERIAL): rows go out in their order.
    #[arg(long, env = "RELAY_COLUMN_ID", default_value = "id")]
    pub relay_column_id: Column,
    /// Its column of topics: the stream key each row is published to.
    #[arg(long, env = "RELAY_COLUMN_TOPIC", default_value = "topic")]
    pub relay_column_topic: Column,
    /// Its column of event types: written, with the topic, for the worker's own changes
    /// when ORDER_EVENTS_TABLE names this table.
    #[arg(long, env = "RELAY_COLUMN_EVENT_TYPE", default_value = "event_type")]
    pub relay_column_event_type: Column,
    /// Its column of event ids: the CloudEvent `id`, the same on every retry.
    #[arg(long, env = "RELAY_COLUMN_EVENT_ID", default_value = "event_id")]
    pub relay_column_event_id: Column,
    /// Its column of payloads (JSON, JSONB or TEXT): the CloudEvent's `data`.
    #[arg(long, env = "RELAY_COLUMN_PAYLOAD", default_value = "payload")]
    pub relay_column_payload: Column,
    /// Its status column: set to RELAY_PUBLISHED_STATUS or RELAY_FAILED_STATUS.
    #[arg(long, env = "RELAY_COLUMN_STATUS", default_value = "status")]
    pub relay_column_status: Column,
    /// Its column of publishing times: set when Redis holds the row; a row with one is never
    /// published again, whatever its status says.
    #[arg(
        long,
        env = "RELAY_COLUMN_PUBLISHED_AT",
        default_value = "published_at"
    )]
    pub relay_column_published_at: Column,
    /// Its column counting failed attempts.
    #[arg(long, env = "RELAY_COLUMN_ATTEMPTS", default_value = "attempts")]
    pub relay_column_attempts: Column,
    /// Its column of the last attempt's error.
    #[arg(long, env = "RELAY_COLUMN_LAST_ERROR", default_value = "last_error")]
    pub relay_column_last_error: Column,
    /// Its column of creation times: the CloudEvent `time`.
    #[arg(long, env = "RELAY_COLUMN_CREATED_AT", default_value = "created_at")]
    pub relay_column_created_at: Column,
}

impl Default for RelayTable {
    fn default() -> Self {
        Self {
            mapping: RelayMapping::default(),
            relay_order_id_path: "order_id".to_owned(),
            relay_pending_status: "pending".to_owned(),
            relay_published_status: "published".to_owned(),
            relay_failed_status: "failed".to_owned(),
            relay_max_attempts: 10,
            relay_poll_interval: Duration::from_millis(200),
            relay_retention: Retention(Some(Duration::from_secs(30 * 24 * 3600))),
        }
    }
}

/// `RELAY_RETENTION`: how long published rows are kept; `None` (`off`): not deleted by the
/// worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

fn parse_retention(raw: &str) -> Result<Retention, String> {
    match raw {
        "off" => Ok(Retention(None)),
        _ => super::parse_duration(raw).map(|keep| Retention(Some(keep))),
    }
}

impl Default for RelayMapping {
    fn default() -> Self {
        let column = |name: &str| Column(name.to_owned());
        Self {
            relay_table: None,
            relay_column_id: column("id"),
            relay_column_topic: column("topic"),
            relay_column_event_type: column("event_type"),
            relay_column_event_id: column("event_id"),
            relay_column_payload: column("payload"),
            relay_column_status: column("status"),
            relay_column_published_at: column("published_at"),
            relay_column_attempts: column("attempts"),
            relay_column_last_error: column("last_error"),
            relay_column_created_at: column("created_at"),
        }
    }
}

impl RelayMapping {
    /// Each mapped column with the setting that names it.
    pub fn columns(&self) -> [(&'static str, &Column); 10] {
        [
            ("RELAY_COLUMN_ID", &self.relay_column_id),
            ("RELAY_COLUMN_TOPIC", &self.relay_column_topic),
            ("RELAY_COLUMN_EVENT_TYPE", &self.relay_column_event_type),
            ("RELAY_COLUMN_EVENT_ID", &self.relay_column_event_id),
            ("RELAY_COLUMN_PAYLOAD", &self.relay_column_payload),
            ("RELAY_COLUMN_STATUS", &self.relay_column_status),
            ("RELAY_COLUMN_PUBLISHED_AT", &self.relay_column_published_at),
            ("RELAY_COLUMN_ATTEMPTS", &self.relay_column_attempts),
            ("RELAY_COLUMN_LAST_ERROR", &self.relay_column_last_error),
            ("RELAY_COLUMN_CREATED_AT", &self.relay_column_created_at),
        ]
    }
}

/// `value` as a SQL string literal: safe to splice into a statement.
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A column name: one plain SQL identifier, folded to lower case as PostgreSQL folds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column(String);

impl Column {
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Quoted: safe to splice into a statement.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl FromStr for Column {
    type Err = String;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        match given.parse::<TableName>() {
            Ok(name) if name.is_unqualified() => Ok(Self(name.to_string())),
            _ => Err(format!(
                "{given:?} is not a plain column name (letters, digits, `_` and `$`, not \
                 starting with a digit)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_order_service_s_schema_and_columns_are_plain_names() {
        let defaults = RelayMapping::default();
        assert_eq!(defaults.relay_table, None);
        let names: Vec<&str> = defaults.columns().iter().map(|(_, c)| c.name()).collect();
        assert_eq!(
            names,
            [
                "id",
                "topic",
                "event_type",
                "event_id",
                "payload",
                "status",
                "published_at",
                "attempts",
                "last_error",
                "created_at"
            ]
        );
        assert_eq!("Topic".parse::<Column>().unwrap().quoted(), "\"topic\"");
        for bad in ["a.b", "", "x; DROP", "\"x\""] {
            assert!(bad.parse::<Column>().is_err(), "{bad:?}");
        }
    }
}
