//! The reads of a batch's transaction: its orders locked with their rows and what the inbox holds
//! of them (one round trip), and, only when an event is late, its orders' records (a second).

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::try_join;

use super::late::{Inbox, OrderRecord, Recorded};
use super::plan::{Incoming, Transition};
use super::schema::{order_fulfillments, order_status_history, processed_events};
use super::tables::{InboxKey, Tables};
use super::unnest::TextColumns;
use super::StoreError;
use crate::stream::position::Position;
use crate::topics::{self, Payment, Processed, Row, State};

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
    let order_ids: Vec<&str> = batch
        .iter()
        .map(|i| i.event.change.order_id())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (mut fulfillment_ids, mut payment_ids) = (Vec::new(), Vec::new());
    for incoming in batch {
        match incoming.event.change.row() {
            Row::Fulfillment(id) => fulfillment_ids.push(id),
            Row::Payment(id) => payment_ids.push(id),
        }
    }
    let event_ids: Vec<&str> = batch.iter().map(|i| i.event.event_id.as_str()).collect();

    let (mut c1, mut c2, mut c3, mut c4) = (conn, conn, conn, conn);
    let locked = TextColumns::new(tables.orders.lock_sql())
        .column(&order_ids, |id| id)
        .returning::<(Text, Text)>()
        .load::<(String, String)>(&mut c1);
    let fulfillments = order_fulfillments::table
        .filter(
            order_fulfillments::order_id
                .eq_any(&order_ids)
                .or(order_fulfillments::fulfillment_id.eq_any(&fulfillment_ids)),
        )
        .select((
            order_fulfillments::fulfillment_id,
            order_fulfillments::order_id,
            order_fulfillments::status,
        ))
        .load::<(String, String, String)>(&mut c2);
    let payments = async {
        if payment_ids.is_empty() {
            // A batch of fulfillments only: no payment can be in question.
            return Ok(Vec::new());
        }
        diesel::sql_query(
            "SELECT payment_id, order_id, status, amount::text AS amount, currency, reason, \
             order_number, reported_status \
             FROM order_payments WHERE order_id = ANY($1) OR payment_id = ANY($2)",
        )
        .bind::<Array<Text>, _>(&order_ids)
        .bind::<Array<Text>, _>(&payment_ids)
        .load::<PaymentRow>(&mut c4)
        .await
    };
    // The inbox in one statement: every event recorded for the batch's orders (their ids and
    // positions come from the index by order alone), then the batch's event ids recorded with
    // no order (before events carried it) or, while the inbox is keyed by event id, any order.
    // Read once: the key may change under a running worker (`migrate --contract`).
    let key = tables.inbox();
    let inbox = TextColumns::new(match key {
        InboxKey::OrderAndEventId => inbox_sql!("order_id IS NULL AND "),
        InboxKey::EventId => inbox_sql!(""),
    })
    .column(&order_ids, |id| id)
    .column(&event_ids, |id| id)
    .returning::<(Text, Nullable<Text>, Nullable<BigInt>)>()
    .load::<(String, Option<String>, Option<i64>)>(&mut c3);
    let (locked, fulfillments, payments, inbox_rows) =
        try_join!(locked, fulfillments, payments, inbox)?;

    let mut state = State::default();
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
    for (fulfillment_id, order_id, status) in fulfillments {
        let status = status.parse().map_err(StoreError::CorruptRow)?;
        state
            .fulfillments
            .insert(fulfillment_id, (order_id, status));
    }
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
    let statements = if payment_ids.is_empty() { 3 } else { 4 };
    Ok((state, inbox, statements))
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

/// The recorded events and the history of `late` orders (locked by [`load`]; `status` holds
/// their status), read in one round trip of [`RECORD_STATEMENTS`].
pub const RECORD_STATEMENTS: usize = 2;

pub async fn load_records(
    conn: &AsyncPgConnection,
    late: &BTreeSet<String>,
    status: &State,
) -> Result<Vec<OrderRecord>, StoreError> {
    let order_ids: Vec<&str> = late.iter().map(String::as_str).collect();
    let (mut c1, mut c2) = (conn, conn);
    let events = processed_events::table
        .filter(processed_events::order_id.eq_any(&order_ids))
        .order((processed_events::order_id, processed_events::position))
        .select(RecordRow::as_select())
        .load::<RecordRow>(&mut c1);
    let history = order_status_history::table
        .filter(order_status_history::order_id.eq_any(&order_ids))
        .order((order_status_history::order_id, order_status_history::id))
        .select((
            order_status_history::order_id,
            order_status_history::from_status,
            order_status_history::to_status,
            order_status_history::reason,
            order_status_history::event_id,
            order_status_history::stream_entry_id,
            order_status_history::metadata,
        ))
        .load::<HistoryColumns>(&mut c2);
    let (events, history) = try_join!(events, history)?;

    let mut records: HashMap<&str, OrderRecord> = HashMap::new();
    for order_id in late {
        let status = *status.orders.get(order_id).ok_or_else(|| {
            StoreError::CorruptRecord(format!("order {order_id:?} has events but no row"))
        })?;
        let record = OrderRecord {
            order_id: order_id.clone(),
            status,
            events: Vec::new(),
            history: Vec::new(),
        };
        records.insert(order_id, record);
    }
    for row in events {
        let Some(record) = row.order_id.as_deref().and_then(|id| records.get_mut(id)) else {
            continue;
        };
        record.events.push(row.decode()?);
    }
    for (order_id, from, to, reason, event_id, stream_entry_id, metadata) in history {
        let Some(record) = records.get_mut(order_id.as_str()) else {
            continue;
        };
        record.history.push(Transition {
            order_id,
            from: from.parse().map_err(StoreError::CorruptRow)?,
            to: to.parse().map_err(StoreError::CorruptRow)?,
            reason,
            event_id,
            stream_entry_id,
            // In serde_json's spelling, as planned rows have it (the column keeps the text).
            metadata: metadata.map(|metadata| metadata.to_string()),
        });
    }
    Ok(late
        .iter()
        .filter_map(|order_id| records.remove(order_id.as_str()))
        .collect())
}

/// An `order_status_history` row: order, from, to, reason, event id, entry id, metadata.
type HistoryColumns = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<serde_json::Value>,
);

/// A recorded event, as `processed_events` holds it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = processed_events)]
struct RecordRow {
    event_id: String,
    stream_entry_id: String,
    order_id: Option<String>,
    topic: Option<String>,
    position: Option<i64>,
    said: Option<String>,
}

impl RecordRow {
    /// The event decoded again by its topic, as when it arrived.
    fn decode(self) -> Result<Recorded, StoreError> {
        let corrupt = |why: &str| {
            StoreError::CorruptRecord(format!("processed_events {:?}: {why}", self.event_id))
        };
        let (Some(order_id), Some(topic), Some(position), Some(said)) =
            (&self.order_id, &self.topic, self.position, &self.said)
        else {
            return Err(corrupt("has an order id but no topic, position or said"));
        };
        let topic = topics::by_name(topic)
            .ok_or_else(|| corrupt("of a topic this worker does not serve"))?;
        let said = match serde_json::from_str(said) {
            Ok(serde_json::Value::Object(said)) => said,
            _ => return Err(corrupt("said is not a JSON object")),
        };
        let event = topics::recorded(topic, self.event_id.clone(), order_id, said)
            .map_err(|error| corrupt(&error.to_string()))?;
        Ok(Recorded {
            entry_id: self.stream_entry_id,
            position: Position::from_key(position),
            event,
        })
    }
}
