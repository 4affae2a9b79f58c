//! The orders table: the order service's own, adopted as it is, or on a fresh database the
//! worker's. `migrate` creates or adopts it ([`adopt`]); every command that applies events reads
//! its shape first ([`OrdersTable::inspect`]) and runs the two statements built from it: the
//! lock of a batch's orders and the update of their status.

mod adopt;
mod announce;
mod catalog;
mod shape;

use anyhow::Context;
use diesel_async::AsyncPgConnection;

pub use adopt::adopt;
pub use announce::Target;

use crate::config::TableName;
use crate::envelope::OrderIds;
use shape::{Shape, StatusType};

/// The orders table as the worker uses it: its name, what its ids are, and its statements.
#[derive(Debug, Clone)]
pub struct OrdersTable {
    name: TableName,
    order_ids: OrderIds,
    lock: String,
    update: String,
    announce: String,
    /// The describing columns' part of a published event, and their join: kept to build the
    /// announcing statement again for another [`Target`].
    describing: (String, String),
}

impl OrdersTable {
    /// Reads the table's shape from the catalog. Fails, saying what to do, when the table is
    /// missing, does not fit, or lacks the worker's column (`order-worker migrate` adds it).
    pub async fn inspect(conn: &mut AsyncPgConnection, name: &TableName) -> anyhow::Result<Self> {
        let columns = catalog::columns(conn, name)
            .await?
            .with_context(|| missing(name))?;
        let shape = shape::check(&columns).map_err(|misfits| adopt::refusal(name, &misfits))?;
        if !shape.has_fulfillment_status {
            anyhow::bail!(
                "the orders table `{name}` has no `fulfillment_status` column yet: run `order-worker migrate` first"
            );
        }
        Ok(Self::new(name.clone(), &shape))
    }

    fn new(name: TableName, shape: &Shape) -> Self {
        let table = name.quoted();
        // Ids travel as text; a UUID column compares with them cast, so its index is used.
        let ids = match shape.id {
            OrderIds::Text => "$::text[]",
            OrderIds::Uuid => "$::text[]::uuid[]",
        };
        let id = match shape.id {
            OrderIds::Text => "u.id",
            OrderIds::Uuid => "u.id::uuid",
        };
        // The published event carries the order's describing columns when the table has them.
        let (describing, joined) = if shape.describing.is_empty() {
            (String::new(), String::new())
        } else {
            let fields: Vec<String> = shape
                .describing
                .iter()
                .map(|column| format!("'{column}', o.{column}::text, "))
                .collect();
            let join = format!(" LEFT JOIN {table} AS o ON o.id = {id}");
            (fields.concat(), join)
        };
        let status = match &shape.status {
            StatusType::Text => "u.status".to_owned(),
            StatusType::Enum(cast) => format!("u.status::{cast}"),
        };
        Self {
            // In id order, so that two transactions locking common orders never deadlock.
            lock: format!(
                "SELECT id::text, status::text FROM {table} WHERE id = ANY({ids}) \
                 ORDER BY id FOR UPDATE"
            ),
            // '' for an order whose events reported no fulfillment status: it keeps its own.
            update: format!(
                "UPDATE {table} AS o SET status = {status}, \
                 fulfillment_status = COALESCE(NULLIF(u.fulfillment_status, ''), o.fulfillment_status), \
                 updated_at = now() \
                 FROM unnest($::text[], $::text[], $::text[]) AS u(id, status, fulfillment_status) \
                 WHERE o.id = {id}"
            ),
            announce: Target::Own.sql(&describing, &joined),
            describing: (describing, joined),
            name,
            order_ids: shape.id,
        }
    }

    /// Status changes written to `target`.
    pub fn announcing_into(self, target: &Target) -> Self {
        let (describing, joined) = &self.describing;
        Self {
            announce: target.sql(describing, joined),
            ..self
        }
    }

    pub fn name(&self) -> &TableName {
        &self.name
    }

    /// What an event's `order_id` must be to name one of its rows.
    pub fn order_ids(&self) -> OrderIds {
        self.order_ids
    }

    /// Locks the orders whose ids (text) bind its one `$`; returns `(id, status)` rows.
    pub(super) fn lock_sql(&self) -> &str {
        &self.lock
    }

    /// Sets `status` and `fulfillment_status` of the orders whose `(id, status,
    /// fulfillment_status)` bind its three `$`.
    pub(super) fn update_sql(&self) -> &str {
        &self.update
    }

    /// Writes the outbox rows of the status changes whose `(id, old_status, new_status,
    /// reason, traceparent, tracestate, topic, entry_id)` bind its eight `$` ('' for no trace).
    pub(super) fn announce_sql(&self) -> &str {
        &self.announce
    }
}

fn missing(name: &TableName) -> String {
    let hint = if name.is_unqualified() {
        " (looked up through the role's search_path; ORDERS_TABLE may name its schema)"
    } else {
        ""
    };
    format!("the orders table `{name}` does not exist{hint}: run `order-worker migrate` first")
}
