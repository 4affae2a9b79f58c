//! `order_fulfillments`: each fulfillment's status, as the events leave it.

use super::FulfillmentStatus;
use crate::topics::{Columns, Rows, Table, UnknownStatus};

pub const TABLE: Fulfillments = Fulfillments;

/// The `order_fulfillments` table.
pub struct Fulfillments;

impl Table for Fulfillments {
    fn name(&self) -> &'static str {
        "order_fulfillments"
    }

    /// Two index scans, not one `OR`: for that, PostgreSQL planned a sequential scan of the
    /// whole table (33 ms a batch at 100,000 orders, growing with the table).
    fn load_sql(&self) -> &'static str {
        "SELECT fulfillment_id, order_id, status, \
         NULL::text, NULL::text, NULL::text, NULL::text, NULL::text \
         FROM order_fulfillments WHERE order_id = ANY($::text[]) \
         UNION SELECT fulfillment_id, order_id, status, \
         NULL::text, NULL::text, NULL::text, NULL::text, NULL::text \
         FROM order_fulfillments WHERE fulfillment_id = ANY($::text[])"
    }

    /// Read for every batch, as it always was: most batches name a fulfillment.
    fn loads_unnamed(&self) -> bool {
        true
    }

    fn add(&self, rows: &mut Rows, columns: Columns) -> Result<(), UnknownStatus> {
        // Every column read is NOT NULL.
        let [id, order_id, status, ..] = columns.map(Option::unwrap_or_default);
        let status: FulfillmentStatus = status.parse()?;
        rows.fulfillments.load(id, (order_id, status));
        Ok(())
    }

    fn write_sql(&self) -> &'static str {
        "INSERT INTO order_fulfillments (fulfillment_id, order_id, status) \
         SELECT * FROM unnest($::text[], $::text[], $::text[]) \
         ON CONFLICT (fulfillment_id) DO UPDATE \
         SET status = EXCLUDED.status, updated_at = now()"
    }

    fn columns<'a>(&self, rows: &'a Rows) -> Vec<Vec<&'a str>> {
        let changed: Vec<_> = rows.fulfillments.changed().collect();
        vec![
            changed.iter().map(|(id, _)| *id).collect(),
            changed
                .iter()
                .map(|(_, (order, _))| order.as_str())
                .collect(),
            changed
                .iter()
                .map(|(_, (_, status))| status.as_str())
                .collect(),
        ]
    }
}
