//! Reading an order's status history, for the demo's report and for tests (and, later, the
//! operator tools): one query, so they all read it the same way.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::order_status_history;

/// One order status change: (from, to, reason).
pub type HistoryRow = (String, String, String);

/// The order's status changes, oldest first.
pub async fn order_history(
    conn: &mut AsyncPgConnection,
    order_id: &str,
) -> QueryResult<Vec<HistoryRow>> {
    order_status_history::table
        .filter(order_status_history::order_id.eq(order_id))
        .order(order_status_history::id)
        .select((
            order_status_history::from_status,
            order_status_history::to_status,
            order_status_history::reason,
        ))
        .load(conn)
        .await
}
