//! The determinism guarantee's yardstick: what one worker applying every event one by one in
//! stream order writes, computed into a database of its own from the same streams, and the
//! tables it covers compared row by row (surrogate ids and timestamps aside).

use std::fmt::Debug;

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use order_worker::{apply_batch, decode, topic, Incoming, DEFAULT_MAX_ENTRY_BYTES};

use super::TestEnv;

/// `orders`, `order_fulfillments`, `order_payments` and `order_status_history` as rows of text,
/// each table in a fixed order (history: by order, then id).
#[derive(Debug, PartialEq)]
pub struct Tables(Vec<(&'static str, Vec<String>)>);

const QUERIES: [(&str, &str); 4] = [
    (
        "orders",
        "SELECT id, status, fulfillment_status FROM orders ORDER BY id",
    ),
    (
        "order_fulfillments",
        "SELECT fulfillment_id, order_id, status FROM order_fulfillments ORDER BY fulfillment_id",
    ),
    (
        "order_payments",
        "SELECT payment_id, order_id, status, amount::text, currency, reason FROM order_payments \
         ORDER BY payment_id",
    ),
    (
        "order_status_history",
        "SELECT order_id, from_status, to_status, reason, event_id, stream_entry_id \
         FROM order_status_history ORDER BY order_id, id",
    ),
];

/// A row as PostgreSQL prints a record: `(o1,shipped,)`.
#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    row: String,
}

impl Tables {
    pub async fn read(conn: &mut AsyncPgConnection) -> Self {
        let mut tables = Vec::new();
        for (name, query) in QUERIES {
            let rows: Vec<Row> =
                diesel::sql_query(format!("SELECT t::text AS row FROM ({query}) t"))
                    .load(conn)
                    .await
                    .unwrap_or_else(|error| panic!("reading {name}: {error}"));
            tables.push((name, rows.into_iter().map(|r| r.row).collect()));
        }
        Self(tables)
    }

    /// Rows in each table, for the run's summary.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        self.0
            .iter()
            .map(|(name, rows)| (*name, rows.len()))
            .collect()
    }

    /// The first row that differs, table by table, or `None` when they are equal.
    pub fn first_difference(&self, expected: &Self) -> Option<String> {
        for ((name, rows), (_, expected_rows)) in self.0.iter().zip(&expected.0) {
            if rows == expected_rows {
                continue;
            }
            let at = rows
                .iter()
                .zip(expected_rows)
                .position(|(a, b)| a != b)
                .unwrap_or(rows.len().min(expected_rows.len()));
            return Some(format!(
                "{name}: {} rows, {} expected; first difference at row {at}: {} where in-order \
                 processing has {}",
                rows.len(),
                expected_rows.len(),
                show(rows.get(at)),
                show(expected_rows.get(at)),
            ));
        }
        None
    }
}

fn show(row: Option<&impl Debug>) -> String {
    row.map_or_else(|| "nothing".to_owned(), |row| format!("{row:?}"))
}

impl TestEnv {
    /// Applies every decodable entry of `streams` ((topic, key) pairs) to this environment's
    /// database in stream order, a chunk of consecutive events per transaction (the same as one by
    /// one: a chunk is folded event by event). Returns how many.
    pub async fn apply_in_order(&self, streams: &[(&str, String)]) -> usize {
        let mut events = Vec::new();
        for (name, key) in streams {
            let topic = topic(name).expect("a topic the worker serves");
            for (id, fields) in self.raw_entries_of(key).await {
                if let Ok(event) = decode(topic, &fields, DEFAULT_MAX_ENTRY_BYTES) {
                    events.push((id, event));
                }
            }
        }
        let mut batch: Vec<Incoming<'_>> = events
            .iter()
            .map(|(entry_id, event)| Incoming { entry_id, event })
            .collect();
        batch.sort_by_key(Incoming::position);
        let mut conn = self.db().await;
        for chunk in batch.chunks(200) {
            apply_batch(&mut conn, chunk).await.expect("applies");
        }
        batch.len()
    }
}
