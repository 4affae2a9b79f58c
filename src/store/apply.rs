//! Applies a batch of events in one PostgreSQL transaction with a fixed number of statements,
//! whatever the batch size: lock, load, plan in memory, write set-based.
//!
//! Order rows are locked `FOR UPDATE` in id order before anything else is read, so two replicas
//! that hold events of the same order serialise on it (the second then sees the first's inbox
//! rows and reports duplicates) and never deadlock.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::plan::{plan, Incoming, Loaded, Plan};
use super::schema::{order_fulfillments, orders, processed_events};
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

async fn load(conn: &mut AsyncPgConnection, batch: &[Incoming<'_>]) -> Result<Loaded, StoreError> {
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

    let locked: Vec<(String, String)> = orders::table
        .filter(orders::id.eq_any(&order_ids))
        .order(orders::id)
        .select((orders::id, orders::status))
        .for_update()
        .load(conn)
        .await?;
    let fulfillments: Vec<(String, String, String)> = order_fulfillments::table
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
        .load(conn)
        .await?;
    let processed: Vec<String> = processed_events::table
        .filter(processed_events::event_id.eq_any(&event_ids))
        .select(processed_events::event_id)
        .load(conn)
        .await?;

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

/// Writes the plan with one statement per table. The inbox insert has no `ON CONFLICT`: a
/// conflict would mean another transaction applied the same event concurrently, which the row
/// locks rule out; if it ever happens the batch fails and its retry reports a duplicate.
async fn write(conn: &mut AsyncPgConnection, plan: &Plan) -> Result<(), StoreError> {
    if !plan.processed.is_empty() {
        let (ids, entries, outcomes) = columns3(
            plan.processed
                .iter()
                .map(|(e, s, o)| (e.as_str(), s.as_str(), *o)),
        );
        diesel::sql_query(
            "INSERT INTO processed_events (event_id, stream_entry_id, outcome) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        )
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<Text>, _>(entries)
        .bind::<Array<Text>, _>(outcomes)
        .execute(conn)
        .await?;
    }
    if !plan.fulfillments.is_empty() {
        let (ids, order_ids, statuses) = columns3(
            plan.fulfillments
                .iter()
                .map(|(f, o, s)| (f.as_str(), o.as_str(), s.as_str())),
        );
        diesel::sql_query(
            "INSERT INTO order_fulfillments (fulfillment_id, order_id, status) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT (fulfillment_id) DO UPDATE \
             SET status = EXCLUDED.status, updated_at = now()",
        )
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<Text>, _>(order_ids)
        .bind::<Array<Text>, _>(statuses)
        .execute(conn)
        .await?;
    }
    if !plan.orders.is_empty() {
        let (ids, statuses, fulfillment_statuses) = columns3(plan.orders.iter().map(|o| {
            (
                o.order_id.as_str(),
                o.status.as_str(),
                o.fulfillment_status.as_str(),
            )
        }));
        diesel::sql_query(
            "UPDATE orders SET status = u.status, fulfillment_status = u.fulfillment_status, \
             updated_at = now() \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, status, fulfillment_status) \
             WHERE orders.id = u.id",
        )
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<Text>, _>(statuses)
        .bind::<Array<Text>, _>(fulfillment_statuses)
        .execute(conn)
        .await?;
    }
    if !plan.transitions.is_empty() {
        let t = &plan.transitions;
        let col =
            |f: fn(&super::plan::Transition) -> &str| -> Vec<&str> { t.iter().map(f).collect() };
        diesel::sql_query(
            "INSERT INTO order_status_history \
             (order_id, from_status, to_status, reason, event_id, stream_entry_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
        )
        .bind::<Array<Text>, _>(col(|t| &t.order_id))
        .bind::<Array<Text>, _>(col(|t| t.from.as_str()))
        .bind::<Array<Text>, _>(col(|t| t.to.as_str()))
        .bind::<Array<Text>, _>(col(|t| &t.reason))
        .bind::<Array<Text>, _>(col(|t| &t.event_id))
        .bind::<Array<Text>, _>(col(|t| &t.stream_entry_id))
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Splits rows into the three column arrays that `unnest` zips back together.
fn columns3<'a>(
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (a, b, c) in rows {
        columns.0.push(a);
        columns.1.push(b);
        columns.2.push(c);
    }
    columns
}
