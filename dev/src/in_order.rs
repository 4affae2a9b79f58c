//! The determinism guarantee's yardstick: what one worker applying every event one by one in
//! stream order writes, computed into a database of its own from the same streams, and the
//! tables it covers compared row by row (surrogate ids and timestamps aside).

use std::fmt::Debug;

use anyhow::Context;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use order_worker::{
    apply_batch, decode, topic, Event, Incoming, TableName, DEFAULT_MAX_ENTRY_BYTES,
};

/// Entries of each stream read and applied at a time: a slice of this many milliseconds of
/// entry ids. Positions order by millisecond first, so slices apply in order, and a long run's
/// streams never have to fit in memory at once.
const SLICE_MS: u64 = 10_000;

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
        "SELECT payment_id, order_id, status, amount::text, currency, reason, order_number, \
         reported_status FROM order_payments ORDER BY payment_id",
    ),
    (
        "order_status_history",
        "SELECT order_id, from_status, to_status, reason, event_id, stream_entry_id, \
         metadata::text FROM order_status_history ORDER BY order_id, id",
    ),
];

/// A row as PostgreSQL prints a record: `(o1,shipped,)`.
#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    row: String,
}

impl Tables {
    pub async fn read(conn: &mut AsyncPgConnection) -> anyhow::Result<Self> {
        let mut tables = Vec::new();
        for (name, query) in QUERIES {
            let rows: Vec<Row> =
                diesel::sql_query(format!("SELECT t::text AS row FROM ({query}) t"))
                    .load(conn)
                    .await
                    .with_context(|| format!("reading {name}"))?;
            tables.push((name, rows.into_iter().map(|r| r.row).collect()));
        }
        Ok(Self(tables))
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

/// Applies every decodable entry of `streams` ((topic, key) pairs, read from `redis`) to `conn`'s
/// database in stream order, a chunk of consecutive events per transaction (the same as one by
/// one: a chunk is folded event by event). Returns how many.
pub async fn apply_in_order(
    conn: &mut AsyncPgConnection,
    redis: &mut order_worker::RedisConnection,
    streams: &[(&str, String)],
) -> anyhow::Result<usize> {
    let tables = order_worker::Tables::inspect(conn, &TableName::default()).await?;
    let mut cursors = Vec::new();
    for (name, key) in streams {
        let topic =
            topic(name).with_context(|| format!("{name}: not a topic the worker serves"))?;
        let first: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(redis)
            .await?;
        if let Some((id, _)) = <[_]>::first(&first) {
            cursors.push((topic, key.as_str(), ms_of(id)));
        }
    }
    let Some(mut from) = cursors.iter().map(|(_, _, ms)| *ms).min() else {
        return Ok(0);
    };
    let mut applied = 0;
    while !cursors.is_empty() {
        let to = from + SLICE_MS;
        let mut events: Vec<(String, Event)> = Vec::new();
        let mut exhausted = Vec::new();
        for (index, (topic, key, _)) in cursors.iter().enumerate() {
            let (slice, more) = read_slice(redis, key, from, to).await?;
            events.extend(slice.into_iter().filter_map(|(id, fields)| {
                decode(
                    *topic,
                    &fields,
                    DEFAULT_MAX_ENTRY_BYTES,
                    tables.orders.order_ids(),
                )
                .ok()
                .map(|event| (id, event))
            }));
            if !more {
                exhausted.push(index);
            }
        }
        for index in exhausted.into_iter().rev() {
            cursors.remove(index);
        }
        let mut batch: Vec<Incoming<'_>> = events
            .iter()
            .map(|(entry_id, event)| Incoming { entry_id, event })
            .collect();
        batch.sort_by_key(Incoming::position);
        for chunk in batch.chunks(200) {
            apply_batch(conn, &tables, chunk).await?;
        }
        applied += batch.len();
        from = to;
    }
    Ok(applied)
}

type RawEntry = (String, Vec<(String, Vec<u8>)>);

/// The entries of `key` with ids in [`from`, `to`) milliseconds, and whether any come later.
async fn read_slice(
    redis: &mut order_worker::RedisConnection,
    key: &str,
    from: u64,
    to: u64,
) -> anyhow::Result<(Vec<RawEntry>, bool)> {
    let mut entries: Vec<RawEntry> = Vec::new();
    let mut start = format!("{from}-0");
    loop {
        let page: Vec<RawEntry> = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(1_000)
            .query_async(redis)
            .await
            .with_context(|| format!("XRANGE {key}"))?;
        let full = page.len() == 1_000;
        let next = page.last().map(|(id, _)| format!("({id}"));
        for entry in page {
            if ms_of(&entry.0) >= to {
                return Ok((entries, true));
            }
            entries.push(entry);
        }
        match next {
            Some(next) if full => start = next,
            _ => return Ok((entries, false)),
        }
    }
}

/// The milliseconds of entry id `<ms>-<seq>`.
fn ms_of(id: &str) -> u64 {
    id.split_once('-')
        .map_or(id, |(ms, _)| ms)
        .parse()
        .unwrap_or(u64::MAX)
}
