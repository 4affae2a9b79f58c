//! What the worker's statements follow of the tables it shares with others, read from the
//! catalog before it applies anything: the orders table's shape and the inbox's key.

use anyhow::Context;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::orders::OrdersTable;
use crate::config::TableName;

/// The tables as the worker's statements use them.
#[derive(Debug, Clone)]
pub struct Tables {
    pub orders: OrdersTable,
    pub inbox: InboxKey,
}

/// The inbox's key, which decides what an event id recorded for another order means. Migration
/// 000010 keys the inbox by `(order_id, event_id)`; the primary key on the event id alone, which
/// builds before it need, stays until `migrate --contract` drops it (000013).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKey {
    /// Before the contract step: an event id is recorded once, whatever its order, so the same
    /// id under another order is a `duplicate`, as earlier builds report it.
    EventId,
    /// After: an event id is unique within its order; under another order it is another event.
    OrderAndEventId,
}

impl Tables {
    /// Reads the orders table `orders`'s shape and the inbox's key.
    pub async fn inspect(conn: &mut AsyncPgConnection, orders: &TableName) -> anyhow::Result<Self> {
        let orders = OrdersTable::inspect(conn, orders).await?;
        let inbox = InboxKey::inspect(conn).await?;
        Ok(Self { orders, inbox })
    }
}

impl InboxKey {
    async fn inspect(conn: &mut AsyncPgConnection) -> anyhow::Result<Self> {
        #[derive(diesel::QueryableByName)]
        struct Keyed {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            by_event_id: bool,
        }
        let keyed: Keyed = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint \
             WHERE conrelid = 'processed_events'::regclass AND contype = 'p') AS by_event_id",
        )
        .get_result(conn)
        .await
        .context("reading the inbox's key")?;
        Ok(if keyed.by_event_id {
            Self::EventId
        } else {
            Self::OrderAndEventId
        })
    }
}
