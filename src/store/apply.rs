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

use super::plan::{plan, Incoming, Plan};
use super::schema::{order_fulfillments, orders, processed_events};
use super::unnest::TextColumns;
use super::StoreError;
use crate::topics::{Payment, Row, State};

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

/// The four reads go out pipelined, in one round trip: PostgreSQL still runs them in order, so
/// the row locks are taken before the others read (each statement sees what committed before
/// it started).
async fn load(conn: &AsyncPgConnection, batch: &[Incoming<'_>]) -> Result<State, StoreError> {
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
    let payments = async {
        if payment_ids.is_empty() {
            // A batch of fulfillments only: no payment can be in question.
            return Ok(Vec::new());
        }
        diesel::sql_query(
            "SELECT payment_id, order_id, status, amount::text AS amount, currency, reason \
             FROM order_payments WHERE order_id = ANY($1) OR payment_id = ANY($2)",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&order_ids)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&payment_ids)
        .load::<PaymentRow>(&mut c4)
        .await
    };
    let processed = processed_events::table
        .filter(processed_events::event_id.eq_any(&event_ids))
        .select(processed_events::event_id)
        .load::<String>(&mut c3);
    let (locked, fulfillments, payments, processed) =
        try_join!(locked, fulfillments, payments, processed)?;

    let mut state = State {
        processed: processed.into_iter().collect(),
        ..State::default()
    };
    for (id, status) in locked {
        let status = status.parse().map_err(StoreError::CorruptRow)?;
        state.orders.insert(id, status);
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
        };
        state.payments.insert(row.payment_id, payment);
    }
    Ok(state)
}

/// A row of `order_payments`, its amount as exact text.
#[derive(QueryableByName)]
struct PaymentRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    payment_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    order_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    amount: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    currency: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    reason: Option<String>,
}

/// Writes the plan with one statement per table, pipelined in one round trip. The inbox insert
/// has no `ON CONFLICT`: a conflict would mean another transaction applied the same event
/// concurrently, which the row locks rule out; if it ever happens the batch fails and its
/// retry reports a duplicate.
async fn write(conn: &AsyncPgConnection, plan: &Plan) -> Result<(), StoreError> {
    let (mut c1, mut c2, mut c3, mut c4, mut c5) = (conn, conn, conn, conn, conn);
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
        // '' for an order whose events reported no fulfillment status: it keeps its own.
        TextColumns::new(
            "UPDATE orders SET status = u.status, \
             fulfillment_status = COALESCE(NULLIF(u.fulfillment_status, ''), orders.fulfillment_status), \
             updated_at = now() \
             FROM unnest($::text[], $::text[], $::text[]) AS u(id, status, fulfillment_status) \
             WHERE orders.id = u.id",
        )
        .column(rows, |o| &o.order_id)
        .column(rows, |o| o.status.as_str())
        .column(rows, |o| o.fulfillment_status.map_or("", |s| s.as_str()))
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
    let payments = async {
        if plan.payments.is_empty() {
            return Ok(0);
        }
        let rows = &plan.payments;
        fn text(field: &Option<String>) -> &str {
            field.as_deref().unwrap_or("")
        }
        // '' stands for NULL: TextColumns binds text, and no id, status or amount is ''.
        TextColumns::new(
            "INSERT INTO order_payments (payment_id, order_id, status, amount, currency, reason) \
             SELECT p, o, s, NULLIF(a, '')::numeric, NULLIF(c, ''), NULLIF(r, '') \
             FROM unnest($::text[], $::text[], $::text[], $::text[], $::text[], $::text[]) \
             AS u(p, o, s, a, c, r) \
             ON CONFLICT (payment_id) DO UPDATE SET status = EXCLUDED.status, \
             amount = COALESCE(EXCLUDED.amount, order_payments.amount), \
             currency = COALESCE(EXCLUDED.currency, order_payments.currency), \
             reason = EXCLUDED.reason, updated_at = now()",
        )
        .column(rows, |(id, _)| id)
        .column(rows, |(_, p)| &p.order_id)
        .column(rows, |(_, p)| p.status.as_str())
        .column(rows, |(_, p)| text(&p.amount))
        .column(rows, |(_, p)| text(&p.currency))
        .column(rows, |(_, p)| text(&p.reason))
        .execute(&mut c5)
        .await
    };
    try_join!(inbox, fulfillments, payments, orders, history)?;
    Ok(())
}
