//! A drain's end, waited for, and the state it must leave, checked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::workload::Workload;
use order_worker::schema::{order_payments, order_status_history, orders};
use order_worker::StreamConfig;

/// How long a drain may take before the benchmark gives up.
const DRAIN_DEADLINE: Duration = Duration::from_secs(600);

/// How often a drain's progress bar reads how far the groups are.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

impl Workload {
    /// Waits until the group has read every entry of every stream of the backlog and none is
    /// pending, and, when the workers publish status changes (`outbox` is then a connection to
    /// count its rows, opened before the clock started), until the outbox is empty too (every
    /// change the drain made is on the order events stream); returns when it was.
    pub async fn wait_drained(
        &mut self,
        mut outbox: Option<&mut AsyncPgConnection>,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + DRAIN_DEADLINE;
        let streams: Vec<StreamConfig> = self.streams().into_iter().cloned().collect();
        // Shown on a terminal only, so the drain measured elsewhere polls exactly as before.
        let progress = order_worker::ops::output::bar(self.events(), "events", false);
        progress.set_message("draining");
        let mut shown = Instant::now();
        let mut next = 0;
        let mut publishing_shown = false;
        loop {
            // Streams found drained stay drained: nothing is published during a drain.
            while let Some(stream) = streams.get(next) {
                let group =
                    order_worker::group_info(&mut self.redis, &stream.stream, &stream.group)
                        .await?;
                if !group.is_some_and(|group| group.lag == Some(0) && group.pending == 0) {
                    break;
                }
                next += 1;
            }
            // Every change is committed once the streams are drained (a batch is acknowledged
            // after its COMMIT): from then on the outbox only empties.
            if next == streams.len() {
                let published = match outbox.as_deref_mut() {
                    Some(db) => {
                        if !publishing_shown {
                            progress.set_message("publishing the status changes");
                            publishing_shown = true;
                        }
                        outbox_rows(db).await? == 0
                    }
                    None => true,
                };
                if published {
                    progress.finish_and_clear();
                    return Ok(Instant::now());
                }
            }
            if !progress.is_hidden() && shown.elapsed() >= PROGRESS_EVERY {
                let left = self.unacked(&streams).await?;
                progress.set_position(self.events().saturating_sub(left));
                shown = Instant::now();
            }
            if Instant::now() > deadline {
                if next == streams.len() {
                    bail!("the outbox was not published within {DRAIN_DEADLINE:?}");
                }
                bail!("the streams were not drained within {DRAIN_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Entries of `streams` their groups have not acknowledged yet (lag and pending).
    async fn unacked(&mut self, streams: &[StreamConfig]) -> anyhow::Result<u64> {
        let mut left = 0;
        for stream in streams {
            let group =
                order_worker::group_info(&mut self.redis, &stream.stream, &stream.group).await?;
            if let Some(group) = group {
                left += (group.lag.unwrap_or(0) + group.pending) as u64;
            }
        }
        Ok(left)
    }

    /// Checks the end state: every order delivered, each order's history rows as its events
    /// applied in stream order leave them when `ordered` (see [`Backlog`]), and one payment row
    /// per payment published. Unless `ordered`: a consumer that reorders events (Dapr's
    /// concurrent handlers, the per-event pattern) may skip a status on the way and record
    /// fewer rows, never more.
    /// Returns the number of history rows.
    pub async fn verify(&self, phase: &str, ordered: bool) -> anyhow::Result<i64> {
        let mut conn = self.db().await?;
        // Only the workload's orders: the grown phase adds millions of others' rows.
        let per_order: HashMap<String, i64> = order_status_history::table
            .filter(order_status_history::order_id.eq_any(&self.orders))
            .group_by(order_status_history::order_id)
            .select((order_status_history::order_id, diesel::dsl::count_star()))
            .load::<(String, i64)>(&mut conn)
            .await?
            .into_iter()
            .collect();
        let delivered: i64 = orders::table
            .filter(orders::status.eq("delivered"))
            .count()
            .get_result(&mut conn)
            .await?;
        let payments: i64 = order_payments::table.count().get_result(&mut conn).await?;
        let rows: i64 = per_order.values().sum();
        let mut expected_rows = 0;
        let mut expected_payments = 0;
        let mut wrong = Vec::new();
        for (index, order) in self.orders.iter().enumerate() {
            let expected = self.backlog.history_rows(index);
            let got = per_order.get(order).copied().unwrap_or(0);
            if got > expected || (ordered && got != expected) {
                wrong.push(format!("{order}: {got} (expected {expected})"));
            }
            expected_rows += expected;
            expected_payments += self.backlog.payments(index) as i64;
        }
        let orders = self.orders.len() as i64;
        if !wrong.is_empty() || delivered != orders || payments != expected_payments {
            bail!(
                "{phase}: wrong end state: {rows} history rows (expected {expected_rows}), \
                 {} orders with wrong history ({}), {delivered} of {orders} orders delivered, \
                 {payments} payments recorded (expected {expected_payments})",
                wrong.len(),
                wrong.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            );
        }
        Ok(rows)
    }

    /// Rows in the outbox: status changes written and not published yet.
    pub async fn outbox_rows(&self) -> anyhow::Result<i64> {
        outbox_rows(&mut self.db().await?).await
    }
}

/// Rows of `order_events_outbox`.
async fn outbox_rows(db: &mut AsyncPgConnection) -> anyhow::Result<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let count = diesel::sql_query("SELECT count(*) AS rows FROM order_events_outbox")
        .get_result::<Count>(db)
        .await?;
    Ok(count.rows)
}
