//! `order_payments`: each payment as its verdicts leave it, its amount as exact text.

use super::Payment;
use crate::topics::{Columns, Rows, Table, UnknownStatus};

pub const TABLE: Payments = Payments;

/// The `order_payments` table.
pub struct Payments;

impl Table for Payments {
    fn name(&self) -> &'static str {
        "order_payments"
    }

    /// Two index scans, not one `OR`, for which PostgreSQL plans a sequential scan of the
    /// whole table (see the fulfillments').
    fn load_sql(&self) -> &'static str {
        "SELECT payment_id, order_id, status, amount::text, currency, reason, order_number, \
         reported_status FROM order_payments WHERE order_id = ANY($::text[]) \
         UNION SELECT payment_id, order_id, status, amount::text, currency, reason, order_number, \
         reported_status FROM order_payments WHERE payment_id = ANY($::text[])"
    }

    /// A batch of fulfillments only: no payment can be in question.
    fn loads_unnamed(&self) -> bool {
        false
    }

    fn add(&self, rows: &mut Rows, columns: Columns) -> Result<(), UnknownStatus> {
        let [id, order_id, status, amount, currency, reason, order_number, reported_status] =
            columns;
        // Id, order and status are NOT NULL.
        let payment = Payment {
            order_id: order_id.unwrap_or_default(),
            status: status.unwrap_or_default().parse()?,
            amount,
            currency,
            reason,
            order_number,
            reported_status,
        };
        rows.payments.load(id.unwrap_or_default(), payment);
        Ok(())
    }

    /// '' stands for NULL: no id, status or amount is ''. The rules keep a recorded amount,
    /// currency or order number a verdict leaves out.
    fn write_sql(&self) -> &'static str {
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
         reported_status = EXCLUDED.reported_status, updated_at = now()"
    }

    fn columns<'a>(&self, rows: &'a Rows) -> Vec<Vec<&'a str>> {
        let changed: Vec<(&str, &Payment)> = rows.payments.changed().collect();
        let text = |field: fn(&'a Payment) -> &'a Option<String>| {
            let column = changed
                .iter()
                .map(|(_, p)| field(p).as_deref().unwrap_or(""));
            column.collect()
        };
        vec![
            changed.iter().map(|(id, _)| *id).collect(),
            changed.iter().map(|(_, p)| p.order_id.as_str()).collect(),
            changed.iter().map(|(_, p)| p.status.as_str()).collect(),
            text(|p| &p.amount),
            text(|p| &p.currency),
            text(|p| &p.reason),
            text(|p| &p.order_number),
            text(|p| &p.reported_status),
        ]
    }
}
