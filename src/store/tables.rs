//! What the worker's statements follow of the tables it shares with others, read from the
//! catalog before it applies anything: the orders table's shape and the inbox's key.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::orders::OrdersTable;
use crate::config::TableName;
use crate::topics::Catalogue;

/// The tables as the worker's statements use them.
#[derive(Debug, Clone)]
pub struct Tables {
    pub orders: OrdersTable,
    /// Whether the inbox is keyed by order ([`InboxKey::OrderAndEventId`]); shared by the
    /// clones, so that [`Tables::reinspect_inbox`] switches every batch at once.
    keyed_by_order: Arc<AtomicBool>,
    /// Whether status changes are written to the outbox (`ORDER_EVENTS`).
    announces: bool,
    /// The topics a recorded event may be of: a late event's order is recomputed by decoding
    /// its recorded events again by their topic's name.
    catalogue: Catalogue,
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
        let keyed_by_order = Arc::new(AtomicBool::new(inbox == InboxKey::OrderAndEventId));
        Ok(Self {
            orders,
            keyed_by_order,
            announces: true,
            catalogue: Catalogue::default(),
        })
    }

    /// With `ORDER_EVENTS=off`: status changes are not written to the outbox (the order
    /// service publishes them).
    pub fn announcing(self, announces: bool) -> Self {
        Self { announces, ..self }
    }

    /// Status changes written to `target` (ORDER_EVENTS_TABLE).
    pub fn announcing_into(self, target: &super::orders::Target) -> Self {
        Self {
            orders: self.orders.announcing_into(target),
            ..self
        }
    }

    /// Recorded events decoded by `catalogue`'s topics (the worker's subscriptions'), not only
    /// the crate's own.
    pub fn serving(self, catalogue: Catalogue) -> Self {
        Self { catalogue, ..self }
    }

    /// The topics recorded events are decoded by.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Whether status changes go to the outbox.
    pub fn announces(&self) -> bool {
        self.announces
    }

    /// The inbox's key as last read.
    pub fn inbox(&self) -> InboxKey {
        if AtomicBool::load(&self.keyed_by_order, Ordering::Relaxed) {
            InboxKey::OrderAndEventId
        } else {
            InboxKey::EventId
        }
    }

    /// Reads the inbox's key again and follows it; true if it has just become the key by order
    /// (`migrate --contract` ran while this worker was running).
    pub async fn reinspect_inbox(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<bool> {
        let by_order = InboxKey::inspect(conn).await? == InboxKey::OrderAndEventId;
        Ok(by_order && !self.keyed_by_order.swap(by_order, Ordering::Relaxed))
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
