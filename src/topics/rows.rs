//! The rows events keep of their own (a fulfillment, a payment): one table per topic module
//! that has one, declared as data. `store` runs each [`Table`] of [`TABLES`] (its read in the
//! batch's first round trip, its set-based write in the last) and names none of them.

use std::collections::HashMap;
use std::fmt;

use super::fulfillment::{self, FulfillmentStatus};
use super::payment::{self, Payment};
use super::{Ordered, UnknownStatus};

/// Every table of the topics' own rows.
pub const TABLES: [&dyn Table; 2] = [&fulfillment::TABLE, &payment::TABLE];

/// Columns of a table's read: each as text, `None` for NULL.
pub const WIDTH: usize = 8;

/// One row read: [`WIDTH`] columns, those past the table's own `None`.
pub type Columns = [Option<String>; WIDTH];

/// A table of rows of a topic's own: its statements and how their columns come in and go out.
/// Each `$` of a statement binds one column of values as a `text[]`.
pub trait Table: Sync {
    /// The SQL table: the name an event's [`Row`] is matched by.
    fn name(&self) -> &'static str;
    /// Its rows of the batch's orders (first `$`) or named by its events (second `$`): exactly
    /// [`WIDTH`] columns, `NULL::text` for those past the table's.
    fn load_sql(&self) -> &'static str;
    /// Whether the read is sent for a batch that names none of its rows.
    fn loads_unnamed(&self) -> bool;
    /// Adds a row read to `rows`; a status this build does not know fails.
    fn add(&self, rows: &mut Rows, columns: Columns) -> Result<(), UnknownStatus>;
    /// Upserts the rows changed: one `$` per column of [`Table::columns`].
    fn write_sql(&self) -> &'static str;
    /// The changed rows, column by column, in the order they first changed ('' for NULL).
    fn columns<'a>(&self, rows: &'a Rows) -> Vec<Vec<&'a str>>;
}

impl fmt::Debug for dyn Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The row of its own an event moves: its table and its id.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub table: &'static dyn Table,
    pub id: &'a str,
}

/// A row of a topic's own: whose order it is.
pub trait Owned: Clone {
    fn order_id(&self) -> &str;
}

impl Owned for (String, FulfillmentStatus) {
    fn order_id(&self) -> &str {
        &self.0
    }
}

impl Owned for Payment {
    fn order_id(&self) -> &str {
        &self.order_id
    }
}

/// Rows of one table by id, as loaded and as the events leave them, and which they changed.
#[derive(Debug, Clone)]
pub struct RowsOf<R> {
    by_id: HashMap<String, R>,
    /// Each order's row ids: an event reads its order's rows, and a batch holds hundreds of
    /// orders' (a row never changes order).
    by_order: HashMap<String, Vec<String>>,
    changed: Ordered,
}

impl<R> Default for RowsOf<R> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            by_order: HashMap::new(),
            changed: Ordered::default(),
        }
    }
}

impl<R: Owned> RowsOf<R> {
    pub fn get(&self, id: &str) -> Option<&R> {
        self.by_id.get(id)
    }

    /// A row as read or as a test sets it up: not written.
    pub fn load(&mut self, id: String, row: R) {
        self.insert(id, row);
    }

    /// A row as an event leaves it: written.
    pub fn set(&mut self, id: &str, row: R) {
        self.changed.insert(id);
        self.insert(id.to_owned(), row);
    }

    fn insert(&mut self, id: String, row: R) {
        if !self.by_id.contains_key(&id) {
            let order = self.by_order.entry(row.order_id().to_owned());
            order.or_default().push(id.clone());
        }
        self.by_id.insert(id, row);
    }

    /// The rows of `order_id`, by id.
    pub fn of_order<'a>(&'a self, order_id: &str) -> impl Iterator<Item = (&'a str, &'a R)> {
        let ids = self.by_order.get(order_id).map_or(&[][..], Vec::as_slice);
        ids.iter()
            .filter_map(|id| Some((id.as_str(), self.by_id.get(id)?)))
    }

    /// The rows changed, in the order they first changed.
    pub fn changed(&self) -> impl Iterator<Item = (&str, &R)> {
        (self.changed.iter()).filter_map(|id| Some((id, self.by_id.get(id)?)))
    }

    /// The rows of orders other than `order_id`, none changed.
    fn of_other_orders(&self, order_id: &str) -> Self {
        let mut others = Self::default();
        for (id, row) in &self.by_id {
            if row.order_id() != order_id {
                others.load(id.clone(), row.clone());
            }
        }
        others
    }

    /// Takes `other`'s changed rows as changed here.
    fn absorb(&mut self, other: Self) {
        let Self {
            mut by_id, changed, ..
        } = other;
        for id in changed.iter() {
            if let Some(row) = by_id.remove(id) {
                self.set(id, row);
            }
        }
    }
}

/// The topics' own rows of a batch, one field per table of [`TABLES`].
#[derive(Debug, Default, Clone)]
pub struct Rows {
    /// fulfillment_id → (order_id, status).
    pub fulfillments: RowsOf<(String, FulfillmentStatus)>,
    /// payment_id → the payment.
    pub payments: RowsOf<Payment>,
}

impl Rows {
    /// The rows of orders other than `order_id` (what a recompute of it starts from).
    pub fn of_other_orders(&self, order_id: &str) -> Self {
        Self {
            fulfillments: self.fulfillments.of_other_orders(order_id),
            payments: self.payments.of_other_orders(order_id),
        }
    }

    /// Takes `other`'s changed rows (a recomputed order's) as changed here.
    pub fn absorb(&mut self, other: Rows) {
        self.fulfillments.absorb(other.fulfillments);
        self.payments.absorb(other.payments);
    }
}
