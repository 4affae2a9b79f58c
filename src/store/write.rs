//! The writes of a batch's transaction: one statement per table (the outbox of published
//! events among them), pipelined in one round trip, whatever the batch size.

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::try_join;

use super::orders::OrdersTable;
use super::plan::{InboxRow, Plan};
use super::unnest::TextColumns;
use super::StoreError;

/// The inbox insert of [`InboxRow`]s (seven `$`, in its field order), followed by `$tail`.
macro_rules! insert_inbox_rows {
    ($($tail:literal)?) => {
        concat!(
            "INSERT INTO processed_events \
             (event_id, stream_entry_id, outcome, order_id, topic, position, said) \
             SELECT e, s, o, r, t, p::bigint, d \
             FROM unnest($::text[], $::text[], $::text[], $::text[], $::text[], $::text[], $::text[]) \
             AS u(e, s, o, r, t, p, d)"
            $(, " ", $tail)?
        )
    };
}

/// The inbox insert has no `ON CONFLICT`: a conflict would mean another transaction applied the
/// same event concurrently, which the row locks rule out; if it ever happens the batch fails and
/// its retry reports a duplicate. Events of a recomputed order (`rerecorded`) are upserted, and
/// the history rows it no longer has are deleted before its new ones are inserted (statements
/// on one connection run in the order sent). Returns how many statements were sent.
pub async fn write(
    conn: &AsyncPgConnection,
    orders: &OrdersTable,
    plan: &Plan,
) -> Result<usize, StoreError> {
    let (mut c1, mut c2, mut c3, mut c4, mut c5, mut c6) = (conn, conn, conn, conn, conn, conn);
    let inbox = record(conn, insert_inbox_rows!(), &plan.processed);
    let rerecorded = record(
        conn,
        insert_inbox_rows!(
            "ON CONFLICT (order_id, event_id) DO UPDATE \
             SET stream_entry_id = EXCLUDED.stream_entry_id, outcome = EXCLUDED.outcome, \
             position = EXCLUDED.position, said = EXCLUDED.said"
        ),
        &plan.rerecorded,
    );
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
    let order_rows = async {
        if plan.orders.is_empty() {
            return Ok(0);
        }
        let rows = &plan.orders;
        TextColumns::new(orders.update_sql())
            .column(rows, |o| &o.order_id)
            .column(rows, |o| o.status.as_str())
            .column(rows, |o| o.fulfillment_status.map_or("", |s| s.as_str()))
            .execute(&mut c3)
            .await
    };
    let history_dropped = async {
        if plan.history_dropped.is_empty() {
            return Ok(0);
        }
        let rows = &plan.history_dropped;
        // By order and event id, the history's key (an event id alone may name rows of others).
        TextColumns::new(
            "DELETE FROM order_status_history h USING unnest($::text[], $::text[]) AS u(o, e) \
             WHERE h.order_id = u.o AND h.event_id = u.e",
        )
        .column(rows, |t| &t.order_id)
        .column(rows, |t| &t.event_id)
        .execute(&mut c1)
        .await
    };
    let history = async {
        if plan.transitions.is_empty() {
            return Ok(0);
        }
        let rows = &plan.transitions;
        // '' stands for no metadata: JSON text is never empty.
        TextColumns::new(
            "INSERT INTO order_status_history \
             (order_id, from_status, to_status, reason, event_id, stream_entry_id, metadata) \
             SELECT o, f, t, r, e, s, NULLIF(m, '')::json \
             FROM unnest($::text[], $::text[], $::text[], $::text[], $::text[], $::text[], \
             $::text[]) AS u(o, f, t, r, e, s, m)",
        )
        .column(rows, |t| &t.order_id)
        .column(rows, |t| t.from.as_str())
        .column(rows, |t| t.to.as_str())
        .column(rows, |t| &t.reason)
        .column(rows, |t| &t.event_id)
        .column(rows, |t| &t.stream_entry_id)
        .column(rows, |t| text(&t.metadata))
        .execute(&mut c4)
        .await
    };
    let payments = async {
        if plan.payments.is_empty() {
            return Ok(0);
        }
        let rows = &plan.payments;
        // '' stands for NULL: TextColumns binds text, and no id, status or amount is ''. The
        // rules keep a recorded amount, currency or order number a verdict leaves out.
        TextColumns::new(
            "INSERT INTO order_payments \
             (payment_id, order_id, status, amount, currency, reason, order_number, \
             reported_status) \
             SELECT p, o, s, NULLIF(a, '')::numeric, NULLIF(c, ''), NULLIF(r, ''), \
             NULLIF(n, ''), NULLIF(v, '') \
             FROM unnest($::text[], $::text[], $::text[], $::text[], $::text[], $::text[], \
             $::text[], $::text[]) AS u(p, o, s, a, c, r, n, v) \
             ON CONFLICT (payment_id) DO UPDATE SET status = EXCLUDED.status, \
             amount = EXCLUDED.amount, currency = EXCLUDED.currency, \
             reason = EXCLUDED.reason, order_number = EXCLUDED.order_number, \
             reported_status = EXCLUDED.reported_status, updated_at = now()",
        )
        .column(rows, |(id, _)| id)
        .column(rows, |(_, p)| &p.order_id)
        .column(rows, |(_, p)| p.status.as_str())
        .column(rows, |(_, p)| text(&p.amount))
        .column(rows, |(_, p)| text(&p.currency))
        .column(rows, |(_, p)| text(&p.reason))
        .column(rows, |(_, p)| text(&p.order_number))
        .column(rows, |(_, p)| text(&p.reported_status))
        .execute(&mut c5)
        .await
    };
    // The outbox: one row per step, in the same transaction, so a change is never published
    // without being committed nor committed without being published. After the history, whose
    // statements it follows on the connection.
    let announced = async {
        if plan.changes.is_empty() {
            return Ok(0);
        }
        let rows = &plan.changes;
        TextColumns::new(orders.announce_sql())
            .column(rows, |c| &c.order_id)
            .column(rows, |c| c.from.as_str())
            .column(rows, |c| c.to.as_str())
            .column(rows, |c| &c.reason)
            .column(rows, |c| text(&c.trace.traceparent))
            .column(rows, |c| text(&c.trace.tracestate))
            .column(rows, |c| c.topic)
            .column(rows, |c| &c.entry_id)
            .execute(&mut c6)
            .await
    };
    try_join!(
        inbox,
        rerecorded,
        fulfillments,
        payments,
        order_rows,
        history_dropped,
        history,
        announced
    )?;
    // Each set above is sent only when it has rows.
    let sets = [
        plan.processed.is_empty(),
        plan.rerecorded.is_empty(),
        plan.fulfillments.is_empty(),
        plan.payments.is_empty(),
        plan.orders.is_empty(),
        plan.history_dropped.is_empty(),
        plan.transitions.is_empty(),
        plan.changes.is_empty(),
    ];
    Ok(sets.iter().filter(|empty| !**empty).count())
}

/// Runs `sql` (an [`insert_inbox_rows`]) for `rows`, if there are any.
async fn record(
    mut conn: &AsyncPgConnection,
    sql: &'static str,
    rows: &[InboxRow],
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let positions: Vec<String> = rows.iter().map(|r| r.position.key().to_string()).collect();
    TextColumns::new(sql)
        .column(rows, |r| &r.event_id)
        .column(rows, |r| &r.entry_id)
        .column(rows, |r| r.outcome)
        .column(rows, |r| &r.order_id)
        .column(rows, |r| r.topic)
        .column(&positions, String::as_str)
        .column(rows, |r| &r.said)
        .execute(&mut conn)
        .await
}

/// '' for `None`: [`TextColumns`] binds text, and the statements read '' as NULL.
fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}
