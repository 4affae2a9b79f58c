//! The benchmark's workload: K orders, each with its whole fulfillment lifecycle (and, for the
//! mixed phase, its payments before it) published in Dapr's format as a backlog, and the exact
//! end state that draining it must reach.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use order_worker::RedisConnection;

use crate::publisher::{self, Format};
use order_worker::schema::{order_payments, order_status_history, orders};
use order_worker::FulfillmentStatus;
use order_worker::{OrderEvents, StreamConfig};

/// How long a drain may take before the benchmark gives up.
const DRAIN_DEADLINE: Duration = Duration::from_secs(600);

/// How often a drain's progress bar reads how far the groups are.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// XADDs sent to Redis in one pipeline.
const PIPELINE: usize = 2_000;

/// What a phase's backlog holds, so where the orders start and what draining it must leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Every order's fulfillment lifecycle on the fulfillment stream; orders start `confirmed`.
    Fulfillment,
    /// First the payments on the two payment streams (each order one `payment.confirmed`, every
    /// [`DECLINED_EVERY`]th before it a declined `payment.failed`), then every order's lifecycle
    /// as for [`Backlog::Fulfillment`]; orders start `pending`.
    Mixed,
}

/// In the mixed backlog, every this many orders a declined payment precedes the confirmed one.
pub const DECLINED_EVERY: usize = 10;

impl Backlog {
    /// The status the orders are reset to.
    pub fn initial_status(self) -> &'static str {
        match self {
            Self::Fulfillment => "confirmed",
            Self::Mixed => "pending",
        }
    }

    /// Whether the order at `index` has a declined payment before its confirmed one.
    pub fn declined_first(self, index: usize) -> bool {
        self == Self::Mixed && index.is_multiple_of(DECLINED_EVERY)
    }

    /// Payment events published for the order at `index`.
    fn payments(self, index: usize) -> usize {
        match self {
            Self::Fulfillment => 0,
            Self::Mixed => 1 + usize::from(self.declined_first(index)),
        }
    }

    /// History rows the order at `index` ends with when its events are applied in stream
    /// order: one per payment verdict (pending → failed → confirmed, or pending → confirmed),
    /// then processing, shipped, delivered.
    fn history_rows(self, index: usize) -> i64 {
        (self.payments(index) + 3) as i64
    }
}

/// The orders, the database and the streams one benchmark run uses.
pub struct Workload {
    pub orders: Vec<String>,
    /// Where the workers connect: the run's own database, and Redis as the benchmark reaches it.
    pub connections: order_worker::Connections,
    /// The fulfillment stream; its group is every stream's.
    pub stream: StreamConfig,
    /// The payment streams: `payment.confirmed`, `payment.failed`.
    pub payment_confirmed: StreamConfig,
    pub payment_failed: StreamConfig,
    pub redis: RedisConnection,
    /// What the last [`Workload::reset`] prepared for.
    pub backlog: Backlog,
}

impl Workload {
    /// The workload on `stream`, its payment streams `<stream>.payment.confirmed` and
    /// `<stream>.payment.failed` in the same group.
    pub fn new(
        orders: Vec<String>,
        connections: order_worker::Connections,
        stream: StreamConfig,
        redis: RedisConnection,
    ) -> Self {
        let beside = |topic: &str| StreamConfig {
            stream: format!("{}.{topic}", stream.stream),
            ..stream.clone()
        };
        Self {
            orders,
            connections,
            payment_confirmed: beside("payment.confirmed"),
            payment_failed: beside("payment.failed"),
            stream,
            redis,
            backlog: Backlog::Fulfillment,
        }
    }

    /// Entries in the current backlog.
    pub fn events(&self) -> u64 {
        let payments: usize = (0..self.orders.len())
            .map(|index| self.backlog.payments(index))
            .sum();
        (self.orders.len() * FulfillmentStatus::LIFECYCLE.len() + payments) as u64
    }

    /// The streams the current backlog is published on.
    pub fn streams(&self) -> Vec<&StreamConfig> {
        match self.backlog {
            Backlog::Fulfillment => vec![&self.stream],
            Backlog::Mixed => vec![&self.stream, &self.payment_confirmed, &self.payment_failed],
        }
    }

    /// Where the workers publish status changes: beside the fulfillment stream, as
    /// [`crate::worker_process::worker_env`] and the in-process worker's defaults set it.
    pub fn order_events(&self) -> OrderEvents {
        OrderEvents::beside(&self.stream.stream)
    }

    /// Inserts the orders at `confirmed` (once per run).
    pub async fn seed(&self) -> anyhow::Result<()> {
        let mut conn = self.db().await?;
        for chunk in self.orders.chunks(5_000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|id| (orders::id.eq(id), orders::status.eq("confirmed")))
                .collect();
            diesel::insert_into(orders::table)
                .values(rows)
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Puts the orders back to where `backlog` starts them and empties what the last phase
    /// wrote, every stream and its group included, so every phase starts from the same state.
    pub async fn reset(&mut self, backlog: Backlog) -> anyhow::Result<()> {
        self.backlog = backlog;
        let mut db = self.db().await?;
        db.batch_execute(&format!(
            "TRUNCATE processed_events, order_status_history, order_fulfillments, order_payments, \
                 order_events_outbox; \
             UPDATE orders SET status = '{}', fulfillment_status = NULL",
            backlog.initial_status()
        ))
        .await?;
        // Its own statement: VACUUM cannot run inside the implicit transaction of a batch.
        db.batch_execute("VACUUM ANALYZE orders").await?;
        self.delete_streams().await
    }

    /// Deletes every stream the phases write, their groups and dead letters with them, and the
    /// order events streams the workers publish to (the late drain's beside its own stream)
    /// with their relays' fences.
    pub async fn delete_streams(&mut self) -> anyhow::Result<()> {
        let late = format!("{}.late", self.stream.stream);
        let mut keys = vec![late.clone(), format!("{late}.deadletter")];
        for stream in [&self.stream, &self.payment_confirmed, &self.payment_failed] {
            keys.extend([stream.stream.clone(), stream.dead_letter_stream()]);
        }
        for events in [self.order_events(), OrderEvents::beside(&late)] {
            keys.extend([events.fence_key(), events.order_events_topic]);
        }
        // One key at a time: in a cluster they may live on different masters.
        for key in keys {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut self.redis)
                .await?;
        }
        Ok(())
    }

    /// XADDs the current backlog: the declined payments, then the confirmed ones (mixed), then
    /// every order's lifecycle, orders interleaved step by step. The groups are created first
    /// (at `0`) so every entry is new to them.
    pub async fn publish_backlog(&mut self) -> anyhow::Result<()> {
        for stream in self.streams() {
            order_worker::ensure_group(&mut self.redis.clone(), stream).await?;
        }
        let groups = [
            self.payments(true),
            self.payments(false),
            (self.stream.stream.as_str(), self.lifecycles()),
        ];
        // In the order they happen; entries of two streams within one millisecond go by the
        // topics' stages, which is that order too.
        let mut redis = self.redis.clone();
        let total = groups.iter().map(|(_, entries)| entries.len() as u64).sum();
        let progress = order_worker::ops::output::bar(total, "entries", false);
        progress.set_message("publishing the backlog");
        for (stream, entries) in groups.iter().filter(|(_, entries)| !entries.is_empty()) {
            for chunk in entries.chunks(PIPELINE) {
                let mut pipe = redis::pipe();
                for fields in chunk {
                    pipe.cmd("XADD").arg(stream).arg("*").arg(fields).ignore();
                }
                let _: () = pipe.query_async(&mut redis).await?;
                progress.inc(chunk.len() as u64);
            }
        }
        progress.finish_and_clear();
        Ok(())
    }

    /// XADDs the fulfillment backlog as [`Workload::publish_backlog`] does, with ids that keep
    /// its order (`<n>-0`), but every `late_every`-th entry to `late` instead; returns how many
    /// went there. The groups are created first.
    pub async fn publish_split(
        &mut self,
        late: &StreamConfig,
        late_every: usize,
    ) -> anyhow::Result<u64> {
        for stream in [&self.stream, late] {
            order_worker::ensure_group(&mut self.redis.clone(), stream).await?;
        }
        let mut redis = self.redis.clone();
        let mut late_count = 0;
        let entries = self.lifecycles();
        // One pipeline per stream: in a cluster the two may be on different masters. Their ids
        // keep the order across them.
        for (chunk_index, chunk) in entries.chunks(PIPELINE).enumerate() {
            let (mut on_time, mut delayed) = (redis::pipe(), redis::pipe());
            for (i, fields) in chunk.iter().enumerate() {
                let n = chunk_index * PIPELINE + i + 1;
                let (pipe, stream) = if n.is_multiple_of(late_every) {
                    late_count += 1;
                    (&mut delayed, &late.stream)
                } else {
                    (&mut on_time, &self.stream.stream)
                };
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg(format!("{n}-0"))
                    .arg(fields)
                    .ignore();
            }
            for pipe in [on_time, delayed].iter().filter(|pipe| !pipe.is_empty()) {
                let _: () = pipe.query_async(&mut redis).await?;
            }
        }
        Ok(late_count)
    }

    /// Every order's lifecycle, orders interleaved step by step.
    fn lifecycles(&self) -> Vec<Vec<(String, String)>> {
        FulfillmentStatus::LIFECYCLE
            .into_iter()
            .flat_map(|status| self.orders.iter().map(move |order| (order, status)))
            .map(|(order, status)| self.entry(order, status))
            .collect()
    }

    /// One event's stream fields, in Dapr's current format (a CloudEvent, `metadata` `{}`).
    pub fn entry(&self, order: &str, status: FulfillmentStatus) -> Vec<(String, String)> {
        let event = publisher::event(
            order,
            &format!("{order}-f1"),
            None,
            status,
            "2025-12-22T10:54:00Z",
        );
        let id = uuid::Uuid::new_v4().to_string();
        publisher::entry_fields(&self.stream.stream, &event, &id, Format::CloudEvent)
    }

    /// The backlog's declined payments (`failed`) or its confirmed ones, as [`Workload::entry`]
    /// and with their stream's key: 129.90 EUR, each attempt its own payment id, a declined one
    /// with reason `card_declined`.
    fn payments(&self, failed: bool) -> (&str, Vec<Vec<(String, String)>>) {
        let (stream, verdict, attempt) = if failed {
            (&self.payment_failed.stream, "failed", "declined")
        } else {
            (&self.payment_confirmed.stream, "confirmed", "accepted")
        };
        let entries = self
            .orders
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                if failed {
                    self.backlog.declined_first(*index)
                } else {
                    self.backlog.payments(*index) > 0
                }
            })
            .map(|(_, order)| {
                let event = publisher::payment_event(
                    verdict,
                    order,
                    &format!("{order}-pay-{attempt}"),
                    Some("129.90"),
                    failed.then_some("card_declined"),
                    "2025-12-22T10:50:00Z",
                );
                let id = uuid::Uuid::new_v4().to_string();
                publisher::entry_fields(stream, &event, &id, Format::CloudEvent)
            })
            .collect();
        (stream, entries)
    }

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

    /// A connection set up as the worker's are.
    pub async fn db(&self) -> anyhow::Result<AsyncPgConnection> {
        order_worker::connect_postgres(self.connections.database_url.clone())
            .await
            .context("connecting to the benchmark database")
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
