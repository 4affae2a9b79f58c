//! Applies a batch of events in one PostgreSQL transaction with a fixed number of statements,
//! whatever the batch size: lock, load, plan in memory, write set-based.
//!
//! Order rows are locked `FOR UPDATE` in id order before anything else is read, so two replicas
//! that hold events of the same order serialise on it (the second then sees the first's inbox
//! rows and reports duplicates) and never deadlock.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::try_join;

use super::plan::{plan, Incoming, Loaded, Plan};
use super::schema::{order_fulfillments, orders, processed_events};
use super::unnest::TextColumns;
use super::StoreError;

/// Applies `batch` (in stream order) atomically and returns what happened to each event.
/// Nothing is written unless everything is: the caller acks only after this returns `Ok`.
pub async fn apply_batch(
    conn: &mut AsyncPgConnection,
    batch: &[Incoming<'_>],
) -> Result<Plan, StoreError> {
    if batch.is_empty() {
        return Ok(Plan::default());
    }
    conn.transaction(async |conn| {
        let loaded = load(conn, batch).await?;
        let plan = plan(batch, loaded);
        write(conn, &plan).await?;
        Ok(plan)
    })
    .await
}

/// The three reads go out pipelined, in one round trip: PostgreSQL still runs them in order, so
/// the row locks are taken before the other two read (each statement sees what committed before
/// it started).
async fn load(conn: &AsyncPgConnection, batch: &[Incoming<'_>]) -> Result<Loaded, StoreError> {
    let order_ids: Vec<&str> = batch
        .iter()
        .map(|i| i.event.order_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fulfillment_ids: Vec<&str> = batch
        .iter()
        .map(|i| i.event.fulfillment_id.as_str())
        .collect();
    let event_ids: Vec<&str> = batch.iter().map(|i| i.event.event_id.as_str()).collect();

    let (mut c1, mut c2, mut c3) = (conn, conn, conn);
    let locked = orders::table
        .filter(orders::id.eq_any(&order_ids))
        .order(orders::id)
        .select((orders::id, orders::status))
        .for_update()
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
    let processed = processed_events::table
        .filter(processed_events::event_id.eq_any(&event_ids))
        .select(processed_events::event_id)
        .load::<String>(&mut c3);
    let (locked, fulfillments, processed) = try_join!(locked, fulfillments, processed)?;

    let mut loaded = Loaded {
        processed: processed.into_iter().collect(),
        ..Loaded::default()
    };
    for (id, status) in locked {
        let status = status.parse().map_err(StoreError::CorruptRow)?;
        loaded.orders.insert(id, status);
    }
    for (fulfillment_id, order_id, status) in fulfillments {
        let status = status.parse().map_err(StoreError::CorruptRow)?;
        loaded
            .fulfillments
            .insert(fulfillment_id, (order_id, status));
    }
    Ok(loaded)
}

/// Writes the plan with one statement per table, pipelined in one round trip. The inbox insert
/// has no `ON CONFLICT`: a conflict would mean another transaction applied the same event
/// concurrently, which the row locks rule out; if it ever happens the batch fails and its
/// retry reports a duplicate.
async fn write(conn: &AsyncPgConnection, plan: &Plan) -> Result<(), StoreError> {
    let (mut c1, mut c2, mut c3, mut c4) = (conn, conn, conn, conn);
    let inbox = async {
        if plan.processed.is_empty() {
            return Ok(0);
        }
        let rows = &plan.processed;
        TextColumns::new(
            "INSERT INTO processed_events (event_id, stream_entry_id, outcome) \
             SELECT * FROM unnest($::text[], $::text[], $::text[])",
        )
        .column(rows, |(event_id, _, _)| event_id)
        .column(rows, |(_, entry_id, _)| entry_id)
        .column(rows, |(_, _, outcome)| outcome)
        .execute(&mut c1)
        .await
    };
    let fulfillments = async {
        if plan.fulfillments.is_empty() {
            return Ok(0);
        }
        let rows = &plan.fulfillments;
        TextColumns::new(
            "INSERT INTO order_fulfillments (fulfillment_id, order_id, status) \
             SELECT * FROM unnest($::text[], $::text[], $::text[]) \
             ON CONFLICT (fulfillment_id) DO UPDATE \
             SET status = EXCLUDED.status, updated_at = now()",
        )
        .column(rows, |(fulfillment_id, _, _)| fulfillment_id)
        .column(rows, |(_, order_id, _)| order_id)
        .column(rows, |(_, _, status)| status.as_str())
        .execute(&mut c2)
        .await
    };
    let orders = async {
        if plan.orders.is_empty() {
            return Ok(0);
        }
        let rows = &plan.orders;
        TextColumns::new(
            "UPDATE orders SET status = u.status, fulfillment_status = u.fulfillment_status, \
             updated_at = now() \
             FROM unnest($::text[], $::text[], $::text[]) AS u(id, status, fulfillment_status) \
             WHERE orders.id = u.id",
        )
        .column(rows, |o| &o.order_id)
        .column(rows, |o| o.status.as_str())
        .column(rows, |o| o.fulfillment_status.as_str())
        .execute(&mut c3)
        .await
    };
    let history = async {
        if plan.transitions.is_empty() {
            return Ok(0);
        }
        let rows = &plan.transitions;
        TextColumns::new(
            "INSERT INTO order_status_history \
             (order_id, from_status, to_status, reason, event_id, stream_entry_id) \
             SELECT * FROM unnest($::text[], $::text[], $::text[], $::text[], $::text[], $::text[])",
        )
        .column(rows, |t| &t.order_id)
        .column(rows, |t| t.from.as_str())
        .column(rows, |t| t.to.as_str())
        .column(rows, |t| &t.reason)
        .column(rows, |t| &t.event_id)
        .column(rows, |t| &t.stream_entry_id)
        .execute(&mut c4)
        .await
    };
    try_join!(inbox, fulfillments, orders, history)?;
    Ok(())
}
