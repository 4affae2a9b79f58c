//! The writes of a batch's transaction: one statement per table (each table the topics declare,
//! the outbox of published events among them), pipelined in one round trip, whatever the batch
//! size.

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::try_join_all;
use futures_util::try_join;

use super::orders::OrdersTable;
use super::plan::{InboxRow, OrderUpdate, Plan, StatusChange, Transition};
use super::unnest::TextColumns;
use super::StoreError;
use crate::topics::{Table, TABLES};

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

/// The inbox rows of the events recorded.
const INSERT_INBOX: &str = insert_inbox_rows!();

/// The inbox rows of a recomputed order's events, rewritten.
const UPSERT_INBOX: &str = insert_inbox_rows!(
    "ON CONFLICT (order_id, event_id) DO UPDATE \
     SET stream_entry_id = EXCLUDED.stream_entry_id, outcome = EXCLUDED.outcome, \
     position = EXCLUDED.position, said = EXCLUDED.said"
);

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
    // Sent in this order: the outbox after the history, whose statements it follows.
    let (_, _, upserted, ..) = try_join!(
        record(conn, INSERT_INBOX, &plan.processed),
        record(conn, UPSERT_INBOX, &plan.rerecorded),
        try_join_all(TABLES.map(|table| upsert(conn, table, table.columns(&plan.rows)))),
        update_orders(conn, orders, &plan.orders),
        delete_history(conn, &plan.history_dropped),
        insert_history(conn, &plan.transitions),
        announce(conn, orders, &plan.changes)
    )?;
    // Each set above is sent only when it has rows.
    let sets = [
        plan.processed.is_empty(),
        plan.rerecorded.is_empty(),
        plan.orders.is_empty(),
        plan.history_dropped.is_empty(),
        plan.transitions.is_empty(),
        plan.changes.is_empty(),
    ];
    let tables = upserted.into_iter().filter(|sent| *sent).count();
    Ok(tables + sets.iter().filter(|empty| !**empty).count())
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

/// Upserts a topic's table's changed rows (`columns`, as [`Table::columns`] gives them), if
/// there are any; whether it sent the statement.
async fn upsert(
    mut conn: &AsyncPgConnection,
    table: &dyn Table,
    columns: Vec<Vec<&str>>,
) -> diesel::QueryResult<bool> {
    if columns.as_slice().first().is_none_or(Vec::is_empty) {
        return Ok(false);
    }
    let statement = TextColumns::with_columns(table.write_sql(), columns);
    statement.execute(&mut conn).await.map(|_| true)
}

/// Writes each order's final status and latest fulfillment status, if there are any.
async fn update_orders(
    mut conn: &AsyncPgConnection,
    orders: &OrdersTable,
    rows: &[OrderUpdate],
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    TextColumns::new(orders.update_sql())
        .column(rows, |o| &o.order_id)
        .column(rows, |o| o.status.as_str())
        .column(rows, |o| o.fulfillment_status.map_or("", |s| s.as_str()))
        .execute(&mut conn)
        .await
}

/// Deletes the history rows a recomputed order no longer has, if there are any.
async fn delete_history(
    mut conn: &AsyncPgConnection,
    rows: &[Transition],
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    // By order and event id, the history's key (an event id alone may name rows of others).
    TextColumns::new(
        "DELETE FROM order_status_history h USING unnest($::text[], $::text[]) AS u(o, e) \
         WHERE h.order_id = u.o AND h.event_id = u.e",
    )
    .column(rows, |t| &t.order_id)
    .column(rows, |t| &t.event_id)
    .execute(&mut conn)
    .await
}

/// Inserts one history row per transition, if there are any.
async fn insert_history(
    mut conn: &AsyncPgConnection,
    rows: &[Transition],
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
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
    .execute(&mut conn)
    .await
}

/// The outbox: one row per step, in the same transaction, so a change is never published
/// without being committed nor committed without being published. Sent if there are any.
async fn announce(
    mut conn: &AsyncPgConnection,
    orders: &OrdersTable,
    rows: &[StatusChange],
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    TextColumns::new(orders.announce_sql())
        .column(rows, |c| &c.order_id)
        .column(rows, |c| c.from.as_str())
        .column(rows, |c| c.to.as_str())
        .column(rows, |c| &c.reason)
        .column(rows, |c| text(&c.trace.traceparent))
        .column(rows, |c| text(&c.trace.tracestate))
        .column(rows, |c| c.topic)
        .column(rows, |c| &c.entry_id)
        .execute(&mut conn)
        .await
}

/// '' for `None`: [`TextColumns`] binds text, and the statements read '' as NULL.
fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}
