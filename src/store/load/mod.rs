//! The reads of a batch's transaction: its orders locked with their rows and what the inbox holds
//! of them (one round trip), and, only when an event is late, its orders' records (a second).

mod records;

use std::collections::{BTreeSet, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::try_join;

use super::late::Inbox;
use super::orders::OrdersTable;
use super::plan::Incoming;
use super::schema::order_fulfillments;
use super::tables::{InboxKey, Tables};
use super::unnest::TextColumns;
use super::StoreError;
use crate::stream::position::Position;
use crate::topics::{Payment, Processed, Row, State};

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

/// The four reads go out pipelined, in one round trip: PostgreSQL still runs them in order, so
/// the row locks are taken before the others read (each statement sees what committed before
/// it started). Returns what they read and how many statements that took.
pub async fn load(
    conn: &AsyncPgConnection,
    tables: &Tables,
    batch: &[Incoming<'_>],
) -> Result<(State, Inbox, usize), StoreError> {
    let ids = BatchIds::of(batch);
    // Read once: the key may change under a running worker (`migrate --contract`).
    let key = tables.inbox();
    let (locked, fulfillments, payments, inbox_rows) = try_join!(
        lock_orders(conn, &tables.orders, &ids.orders),
        read_fulfillments(conn, &ids.orders, &ids.fulfillments),
        read_payments(conn, &ids.orders, &ids.payments),
        read_inbox(conn, key, &ids.orders, &ids.events)
    )?;
    let mut state = State::default();
    add_orders(&mut state, locked);
    add_fulfillments(&mut state, fulfillments)?;
    add_payments(&mut state, payments)?;
    let inbox = add_processed(&mut state, key, batch, inbox_rows);
    let statements = if ids.payments.is_empty() { 3 } else { 4 };
    Ok((state, inbox, statements))
}

/// The ids a batch's reads look up.
struct BatchIds<'a> {
    /// Each order once, in order (the order its rows are locked in).
    orders: Vec<&'a str>,
    fulfillments: Vec<&'a str>,
    payments: Vec<&'a str>,
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
        let (mut fulfillments, mut payments) = (Vec::new(), Vec::new());
        for incoming in batch {
            match incoming.event.change.row() {
                Row::Fulfillment(id) => fulfillments.push(id),
                Row::Payment(id) => payments.push(id),
            }
        }
        let events: Vec<&str> = batch.iter().map(|i| i.event.event_id.as_str()).collect();
        Self {
            orders,
            fulfillments,
            payments,
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

/// The fulfillments of the batch's orders or named by its events.
async fn read_fulfillments(
    mut conn: &AsyncPgConnection,
    order_ids: &[&str],
    fulfillment_ids: &[&str],
) -> QueryResult<Vec<FulfillmentColumns>> {
    order_fulfillments::table
        .filter(
            order_fulfillments::order_id
                .eq_any(order_ids)
                .or(order_fulfillments::fulfillment_id.eq_any(fulfillment_ids)),
        )
        .select((
            order_fulfillments::fulfillment_id,
            order_fulfillments::order_id,
            order_fulfillments::status,
        ))
        .load::<FulfillmentColumns>(&mut conn)
        .await
}

/// The payments of the batch's orders or named by its events.
async fn read_payments(
    mut conn: &AsyncPgConnection,
    order_ids: &[&str],
    payment_ids: &[&str],
) -> QueryResult<Vec<PaymentRow>> {
    if payment_ids.is_empty() {
        // A batch of fulfillments only: no payment can be in question.
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "SELECT payment_id, order_id, status, amount::text AS amount, currency, reason, \
         order_number, reported_status \
         FROM order_payments WHERE order_id = ANY($1) OR payment_id = ANY($2)",
    )
    .bind::<Array<Text>, _>(order_ids)
    .bind::<Array<Text>, _>(payment_ids)
    .load::<PaymentRow>(&mut conn)
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

/// An `order_fulfillments` row: fulfillment id, order id, status.
type FulfillmentColumns = (String, String, String);

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

/// The fulfillments read, by id.
fn add_fulfillments(
    state: &mut State,
    fulfillments: Vec<FulfillmentColumns>,
) -> Result<(), StoreError> {
    for (fulfillment_id, order_id, status) in fulfillments {
        let status = status.parse().map_err(StoreError::CorruptRow)?;
        state
            .fulfillments
            .insert(fulfillment_id, (order_id, status));
    }
    Ok(())
}

/// The payments read, by id.
fn add_payments(state: &mut State, payments: Vec<PaymentRow>) -> Result<(), StoreError> {
    for row in payments {
        let payment = Payment {
            order_id: row.order_id,
            status: row.status.parse().map_err(StoreError::CorruptRow)?,
            amount: row.amount,
            currency: row.currency,
            reason: row.reason,
            order_number: row.order_number,
            reported_status: row.reported_status,
        };
        state.payments.insert(row.payment_id, payment);
    }
    Ok(())
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

/// A row of `order_payments`, its amount as exact text.
#[derive(QueryableByName)]
struct PaymentRow {
    #[diesel(sql_type = Text)]
    payment_id: String,
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    amount: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    currency: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    order_number: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reported_status: Option<String>,
}
