//! The benchmark's workload: K orders, each with its whole fulfillment lifecycle (and, for the
//! mixed phase, its payments before it) published in Dapr's format as a backlog, and the exact
//! end state that draining it must reach (waited for and checked in [`super::drained`]).

use std::path::PathBuf;

use anyhow::Context;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use order_worker::RedisConnection;

use crate::publisher::{self, Format};
use order_worker::schema::orders;
use order_worker::FulfillmentStatus;
use order_worker::{OrderEvents, StreamConfig};

/// XADDs sent to Redis in one pipeline.
const PIPELINE: usize = 2_000;

/// A stream's entries, generated as they are published.
type Entries<'a> = Box<dyn Iterator<Item = Vec<(String, String)>> + 'a>;

/// What the phases write, emptied before each.
const PHASE_TABLES: &str = "processed_events, order_status_history, order_fulfillments, \
                            order_payments, order_events_outbox";

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
    pub(super) fn payments(self, index: usize) -> usize {
        match self {
            Self::Fulfillment => 0,
            Self::Mixed => 1 + usize::from(self.declined_first(index)),
        }
    }

    /// History rows the order at `index` ends with when its events are applied in stream
    /// order: one per payment verdict (pending → failed → confirmed, or pending → confirmed),
    /// then processing, shipped, delivered.
    pub(super) fn history_rows(self, index: usize) -> i64 {
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
    /// Where the workers' logs go, one file per worker name (see [`Workload::log`]).
    logs: PathBuf,
    /// Where a drain's profile goes while the drains at each size run (`--profile`).
    pub profile: Option<PathBuf>,
}

impl Workload {
    /// The workload of `orders` orders on `stream`, its payment streams
    /// `<stream>.payment.confirmed` and `<stream>.payment.failed` in the same group; the
    /// workers log into the directory `logs`.
    pub fn new(
        orders: usize,
        connections: order_worker::Connections,
        stream: StreamConfig,
        redis: RedisConnection,
        logs: PathBuf,
    ) -> Self {
        let beside = |topic: &str| StreamConfig {
            stream: format!("{}.{topic}", stream.stream),
            ..stream.clone()
        };
        Self {
            orders: order_ids(orders),
            connections,
            payment_confirmed: beside("payment.confirmed"),
            payment_failed: beside("payment.failed"),
            stream,
            redis,
            backlog: Backlog::Fulfillment,
            logs,
            profile: None,
        }
    }

    /// The log file of the worker named `name`; each drain writes it anew.
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
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

    /// Inserts the orders at `confirmed`.
    async fn seed(&self) -> anyhow::Result<()> {
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

    /// Replaces the orders by `count` new ones, seeded into emptied tables: the drain at the
    /// next size starts as the one before did.
    pub async fn reseed(&mut self, count: usize) -> anyhow::Result<()> {
        self.db()
            .await?
            .batch_execute(&format!("TRUNCATE orders, {PHASE_TABLES}"))
            .await?;
        self.orders = order_ids(count);
        self.seed().await
    }

    /// Puts the orders back to where `backlog` starts them and empties what the last phase
    /// wrote, every stream and its group included, so every phase starts from the same state.
    pub async fn reset(&mut self, backlog: Backlog) -> anyhow::Result<()> {
        self.backlog = backlog;
        let mut db = self.db().await?;
        db.batch_execute(&format!(
            "TRUNCATE {PHASE_TABLES}; \
             UPDATE orders SET status = '{}', fulfillment_status = NULL",
            backlog.initial_status()
        ))
        .await?;
        // Its own statement: VACUUM cannot run inside the implicit transaction of a batch.
        db.batch_execute("VACUUM ANALYZE orders").await?;
        self.delete_streams().await
    }

    /// Deletes every stream the phases write, their groups and dead letters with them, the
    /// order events streams the workers publish to (the late drain's beside its own stream)
    /// and the order service's relayed topic, with their relays' fences.
    pub async fn delete_streams(&mut self) -> anyhow::Result<()> {
        let late = format!("{}.late", self.stream.stream);
        let mut keys = vec![late.clone(), format!("{late}.deadletter")];
        for stream in [&self.stream, &self.payment_confirmed, &self.payment_failed] {
            keys.extend([stream.stream.clone(), stream.dead_letter_stream()]);
        }
        for events in [self.order_events(), OrderEvents::beside(&late)] {
            keys.extend([events.fence_key(), events.order_events_topic]);
        }
        keys.extend(self.relayed_keys());
        self.delete_keys(keys).await
    }

    /// Deletes `keys`, one at a time: in a cluster they may live on different masters.
    pub async fn delete_keys(&mut self, keys: Vec<String>) -> anyhow::Result<()> {
        for key in keys {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut self.redis)
                .await?;
        }
        Ok(())
    }

    /// The topic of the order service's rows the relay phase writes (one the order service
    /// publishes, on the run's own key).
    pub fn relayed_topic(&self) -> String {
        format!("{}.compensation.reservation_release", self.stream.stream)
    }

    /// The relayed topic's stream and the fence the relay of the order service's table keeps
    /// on it (`{<topic>}.relay.<RELAY_TABLE>`).
    pub fn relayed_keys(&self) -> Vec<String> {
        let topic = self.relayed_topic();
        let fence = order_worker::fence_of(&topic);
        vec![
            format!("{fence}.{}", crate::order_service::OUTBOX_TABLE),
            topic,
        ]
    }

    /// XADDs the current backlog: the declined payments, then the confirmed ones (mixed), then
    /// every order's lifecycle, orders interleaved step by step. The groups are created first
    /// (at `0`) so every entry is new to them.
    pub async fn publish_backlog(&mut self) -> anyhow::Result<()> {
        for stream in self.streams() {
            order_worker::ensure_group(&mut self.redis.clone(), stream).await?;
        }
        // Generated a pipeline at a time: at 100,000 orders the whole backlog would take a GB.
        let lifecycles = self
            .interleaved()
            .map(|(_, order, status)| self.entry(order, status));
        let (declined, confirmed) = (self.payments(true), self.payments(false));
        let groups: [(&str, Entries<'_>); 3] = [
            (declined.0, Box::new(declined.1.into_iter())),
            (confirmed.0, Box::new(confirmed.1.into_iter())),
            (&self.stream.stream, Box::new(lifecycles)),
        ];
        // In the order they happen; entries of two streams within one millisecond go by the
        // topics' stages, which is that order too.
        let mut redis = self.redis.clone();
        let progress = order_worker::ops::output::bar(self.events(), "entries", false);
        progress.set_message("publishing the backlog");
        for (stream, mut entries) in groups {
            loop {
                let chunk: Vec<_> = entries.by_ref().take(PIPELINE).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut pipe = redis::pipe();
                for fields in &chunk {
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

    /// Every order's lifecycle, orders interleaved step by step: each event's order (its index
    /// and id) and status, in stream order.
    pub fn interleaved(&self) -> impl Iterator<Item = (usize, &str, FulfillmentStatus)> {
        FulfillmentStatus::LIFECYCLE.into_iter().flat_map(|status| {
            (self.orders.iter().enumerate())
                .map(move |(index, order)| (index, order.as_str(), status))
        })
    }

    /// The entries of [`Workload::interleaved`].
    fn lifecycles(&self) -> Vec<Vec<(String, String)>> {
        self.interleaved()
            .map(|(_, order, status)| self.entry(order, status))
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

    /// A connection set up as the worker's are.
    pub async fn db(&self) -> anyhow::Result<AsyncPgConnection> {
        order_worker::connect_postgres(self.connections.database_url.clone())
            .await
            .context("connecting to the benchmark database")
    }
}

/// The ids of `count` orders.
fn order_ids(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("bench-order-{i:06}")).collect()
}
