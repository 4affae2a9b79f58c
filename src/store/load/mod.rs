//! The reads of a batch's transaction: its orders locked with their rows (each table the topics
//! declare) and what the inbox holds of them (one round trip), and, only when an event is late,
//! its orders' records (a second).

mod records;

use std::collections::{BTreeSet, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::try_join_all;
use futures_util::try_join;

use super::late::Inbox;
use super::orders::OrdersTable;
use super::plan::Incoming;
use super::tables::{InboxKey, Tables};
use super::unnest::TextColumns;
use super::StoreError;
use crate::stream::position::Position;
use crate::topics::{Columns, Processed, State, Table, TABLES};

pub use records::{load_records, RECORD_STATEMENTS};

/// The inbox's rows of the batch's orders (the first `$`, their ids), then those of its event
/// ids (the second) that also meet `$also` (a condition and `AND`, or nothing). `OFFSET 0` keeps
/// the per-order read a probe of the index by order: without it, an inbox not yet analyzed (the
/// planner then guesses ~100 rows an order) is read as a hash join over all of it, each batch.
macro_rules! inbox_sql {
    ($also:literal) => {
        concat!(
            "SELECT p.event_id, o.id COLLATE \"C\", p.position FROM unnest($::text[]) AS o(id) \
         CROSS JOIN LATERAL (SELECT event_id, position FROM processed_events \
         WHERE order_id = o.id COLLATE \"C\" OFFSET 0) AS p \
         UNION ALL \
         SELECT event_id, NULL, NULL FROM processed_events WHERE ",
            $also,
            "event_id = ANY($::text[])"
        )
    };
}

/// The reads go out pipelined, in one round trip: PostgreSQL still runs them in order, so the
/// row locks are taken before the others read (each statement sees what committed before it
/// started). Returns what they read and how many statements that took.
pub async fn load(
    conn: &AsyncPgConnection,
    tables: &Tables,
    batch: &[Incoming<'_>],
) -> Result<(State, Inbox, usize), StoreError> {
    let ids = BatchIds::of(batch);
    // Read once: the key may change under a running worker (`migrate --contract`).
    let key = tables.inbox();
    let reads = TABLES.iter().zip(&ids.named);
    let (locked, rows, inbox_rows) = try_join!(
        lock_orders(conn, &tables.orders, &ids.orders),
        try_join_all(reads.map(|(&table, named)| read_rows(conn, table, &ids.orders, named))),
        read_inbox(conn, key, &ids.orders, &ids.events)
    )?;
    let mut state = State::default();
    add_orders(&mut state, locked);
    for (table, read) in TABLES.iter().zip(rows) {
        for columns in read {
            table.add(&mut state.rows, columns_of(columns))?;
        }
    }
    let inbox = add_processed(&mut state, key, batch, inbox_rows);
    let sent = TABLES.iter().zip(&ids.named);
    let statements = 2 + sent.filter(|(table, named)| sends(**table, named)).count();
    Ok((state, inbox, statements))
}

/// The ids a batch's reads look up.
struct BatchIds<'a> {
    /// Each order once, in order (the order its rows are locked in).
    orders: Vec<&'a str>,
    /// The rows the events name, by table of [`TABLES`].
    named: [Vec<&'a str>; TABLES.len()],
    events: Vec<&'a str>,
}

impl<'a> BatchIds<'a> {
    fn of(batch: &'a [Incoming<'_>]) -> Self {
        let orders: Vec<&str> = batch
            .iter()
            .map(|i| i.event.change.order_id())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut named: [Vec<&str>; TABLES.len()] = Default::default();
        for row in batch.iter().filter_map(|i| i.event.change.row()) {
            let table = TABLES.iter().position(|t| t.name() == row.table.name());
            if let Some(table) = table {
                named[table].push(row.id);
            }
        }
        let events: Vec<&str> = batch.iter().map(|i| i.event.event_id.as_str()).collect();
        Self {
            orders,
            named,
            events,
        }
    }
}

/// Locks the batch's orders; their `(id, status)` rows.
async fn lock_orders(
    mut conn: &AsyncPgConnection,
    orders: &OrdersTable,
    order_ids: &[&str],
) -> QueryResult<Vec<(String, String)>> {
    TextColumns::new(orders.lock_sql())
        .column(order_ids, |id| id)
        .returning::<(Text, Text)>()
        .load::<(String, String)>(&mut conn)
        .await
}

/// Whether `table`'s read is sent, given the rows of it the batch names.
fn sends(table: &dyn Table, named: &[&str]) -> bool {
    !named.is_empty() || table.loads_unnamed()
}

/// `table`'s rows of the batch's orders or named by its events.
async fn read_rows(
    mut conn: &AsyncPgConnection,
    table: &dyn Table,
    order_ids: &[&str],
    named: &[&str],
) -> QueryResult<Vec<TableColumns>> {
    if !sends(table, named) {
        return Ok(Vec::new());
    }
    TextColumns::new(table.load_sql())
        .column(order_ids, |id| id)
        .column(named, |id| id)
        .returning::<TableSql>()
        .load::<TableColumns>(&mut conn)
        .await
}

/// The inbox in one statement: every event recorded for the batch's orders (their ids and
/// positions come from the index by order alone), then the batch's event ids recorded with
/// no order (before events carried it) or, while the inbox is keyed by event id, any order.
async fn read_inbox(
    mut conn: &AsyncPgConnection,
    key: InboxKey,
    order_ids: &[&str],
    event_ids: &[&str],
) -> QueryResult<Vec<InboxColumns>> {
    TextColumns::new(match key {
        InboxKey::OrderAndEventId => inbox_sql!("order_id IS NULL AND "),
        InboxKey::EventId => inbox_sql!(""),
    })
    .column(order_ids, |id| id)
    .column(event_ids, |id| id)
    .returning::<(Text, Nullable<Text>, Nullable<BigInt>)>()
    .load::<InboxColumns>(&mut conn)
    .await
}

/// A row of a topic's table: its `WIDTH` text columns.
type TableSql = (
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
);
type TableColumns = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A table's row as the columns its topic reads.
fn columns_of(row: TableColumns) -> Columns {
    let (a, b, c, d, e, f, g, h) = row;
    [a, b, c, d, e, f, g, h]
}

/// An inbox row read: event id, order id (`None` if found by event id alone), position (`None`
/// if recorded before positions were).
type InboxColumns = (String, Option<String>, Option<i64>);

/// The locked orders' statuses.
fn add_orders(state: &mut State, locked: Vec<(String, String)>) {
    for (id, status) in locked {
        match status.parse() {
            Ok(known) => {
                state.orders.insert(id, known);
            }
            // Only an adopted table can hold one: the worker's own CHECKs its statuses.
            Err(_) => {
                state.foreign.insert(id, status);
            }
        }
    }
}

/// Marks the batch's events the inbox holds as processed (by `key`), and returns what it holds
/// of their orders: each order's newest position and where the batch's events were recorded.
fn add_processed(
    state: &mut State,
    key: InboxKey,
    batch: &[Incoming<'_>],
    inbox_rows: Vec<InboxColumns>,
) -> Inbox {
    if key == InboxKey::EventId {
        state.processed = Processed::by_event_id();
    }
    let incoming: HashSet<(&str, &str)> = batch
        .iter()
        .map(|i| (i.event.change.order_id(), i.event.event_id.as_str()))
        .collect();
    let mut inbox = Inbox::default();
    let mut by_event_id = HashSet::new();
    for (event_id, order_id, position) in inbox_rows {
        let Some(order_id) = order_id else {
            by_event_id.insert(event_id);
            continue;
        };
        let position = position.map(Position::from_key);
        if let Some(position) = position {
            let newest = inbox.newest.entry(order_id.clone()).or_insert(position);
            *newest = (*newest).max(position);
        }
        if incoming.contains(&(order_id.as_str(), event_id.as_str())) {
            state.processed.insert(&order_id, &event_id);
            inbox
                .recorded
                .insert(event_id, position.map(|p| (order_id, p)));
        }
    }
    // Found by event id alone: recorded for every order of the batch that names it.
    for (order_id, event_id) in incoming {
        if by_event_id.contains(event_id) {
            state.processed.insert(order_id, event_id);
            inbox.recorded.entry(event_id.to_owned()).or_insert(None);
        }
    }
    inbox
}
