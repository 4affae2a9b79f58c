//! The second round trip, only when an event of the batch is late: its orders' records, the
//! events recorded for them and their history, to fold again.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::try_join;

use crate::store::late::{OrderRecord, Recorded};
use crate::store::plan::Transition;
use crate::store::schema::{order_status_history, processed_events};
use crate::store::StoreError;
use crate::stream::position::Position;
use crate::topics::{self, Catalogue, State};

/// The statements [`load_records`] sends, in one round trip.
pub const RECORD_STATEMENTS: usize = 2;

/// The recorded events and the history of `late` orders (locked by [`load`](super::load); `status` holds
/// their status), read in one round trip of [`RECORD_STATEMENTS`], each event decoded again by
/// its topic in `catalogue`.
pub async fn load_records(
    conn: &AsyncPgConnection,
    late: &BTreeSet<String>,
    status: &State,
    catalogue: &Catalogue,
) -> Result<Vec<OrderRecord>, StoreError> {
    let order_ids: Vec<&str> = late.iter().map(String::as_str).collect();
    let (events, history) = try_join!(
        read_events(conn, &order_ids),
        read_history(conn, &order_ids)
    )?;
    let mut records = empty_records(late, status)?;
    for row in events {
        let Some(record) = row.order_id.as_deref().and_then(|id| records.get_mut(id)) else {
            continue;
        };
        record.events.push(row.decode(catalogue)?);
    }
    for columns in history {
        let Some(record) = records.get_mut(columns.0.as_str()) else {
            continue;
        };
        record.history.push(transition(columns)?);
    }
    Ok(late
        .iter()
        .filter_map(|order_id| records.remove(order_id.as_str()))
        .collect())
}

/// The events recorded for the orders, each order's in stream order.
async fn read_events(
    mut conn: &AsyncPgConnection,
    order_ids: &[&str],
) -> QueryResult<Vec<RecordRow>> {
    processed_events::table
        .filter(processed_events::order_id.eq_any(order_ids))
        .order((processed_events::order_id, processed_events::position))
        .select(RecordRow::as_select())
        .load::<RecordRow>(&mut conn)
        .await
}

/// The history rows of the orders, each order's in the order they were written.
async fn read_history(
    mut conn: &AsyncPgConnection,
    order_ids: &[&str],
) -> QueryResult<Vec<HistoryColumns>> {
    order_status_history::table
        .filter(order_status_history::order_id.eq_any(order_ids))
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
        .load::<HistoryColumns>(&mut conn)
        .await
}

/// A record with no events or history yet for each `late` order, with its status.
fn empty_records<'a>(
    late: &'a BTreeSet<String>,
    status: &State,
) -> Result<HashMap<&'a str, OrderRecord>, StoreError> {
    let mut records = HashMap::new();
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
        records.insert(order_id.as_str(), record);
    }
    Ok(records)
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

/// A history row as the transition it records.
fn transition(columns: HistoryColumns) -> Result<Transition, StoreError> {
    let (order_id, from, to, reason, event_id, stream_entry_id, metadata) = columns;
    Ok(Transition {
        order_id,
        from: from.parse().map_err(StoreError::CorruptRow)?,
        to: to.parse().map_err(StoreError::CorruptRow)?,
        reason,
        event_id,
        stream_entry_id,
        // In serde_json's spelling, as planned rows have it (the column keeps the text).
        metadata: metadata.map(|metadata| metadata.to_string()),
    })
}

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
    fn decode(self, catalogue: &Catalogue) -> Result<Recorded, StoreError> {
        let corrupt = |why: &str| {
            StoreError::CorruptRecord(format!("processed_events {:?}: {why}", self.event_id))
        };
        let (Some(order_id), Some(topic), Some(position), Some(said)) =
            (&self.order_id, &self.topic, self.position, &self.said)
        else {
            return Err(corrupt("has an order id but no topic, position or said"));
        };
        let topic = catalogue
            .by_name(topic)
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
