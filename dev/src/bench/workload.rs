//! The benchmark's workload: K orders, each with its whole fulfillment lifecycle published in
//! Dapr's format as a backlog, and the exact end state that draining it must reach.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use redis::aio::MultiplexedConnection;

use crate::publisher::{self, Format};
use order_worker::schema::{order_status_history, orders};
use order_worker::FulfillmentStatus;
use order_worker::StreamConfig;

/// How long a drain may take before the benchmark gives up.
const DRAIN_DEADLINE: Duration = Duration::from_secs(600);

/// The orders, the database and the stream one benchmark run uses.
pub struct Workload {
    pub orders: Vec<String>,
    /// Where the workers connect: the run's own database, and Redis as the benchmark reaches it.
    pub connections: order_worker::Connections,
    pub stream: StreamConfig,
    pub redis: MultiplexedConnection,
}

impl Workload {
    /// Entries in one backlog.
    pub fn events(&self) -> u64 {
        (self.orders.len() * FulfillmentStatus::LIFECYCLE.len()) as u64
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

    /// Puts the orders back to `confirmed` and empties what the last phase wrote, the stream
    /// and its group included, so every phase starts from the same state.
    pub async fn reset(&mut self) -> anyhow::Result<()> {
        let mut db = self.db().await?;
        db.batch_execute(
            "TRUNCATE processed_events, order_status_history, order_fulfillments; \
             UPDATE orders SET status = 'confirmed', fulfillment_status = NULL",
        )
        .await?;
        // Its own statement: VACUUM cannot run inside the implicit transaction of a batch.
        db.batch_execute("VACUUM ANALYZE orders").await?;
        let _: () = redis::cmd("DEL")
            .arg(&self.stream.stream)
            .arg(self.stream.dead_letter_stream())
            .query_async(&mut self.redis)
            .await?;
        Ok(())
    }

    /// XADDs every order's lifecycle, orders interleaved step by step, as a backlog; the
    /// group is created first (at `0`) so every entry is new to it.
    pub async fn publish_backlog(&mut self) -> anyhow::Result<()> {
        order_worker::ensure_group(&mut self.redis, &self.stream).await?;
        let mut pipe = redis::pipe();
        let mut queued = 0;
        for status in FulfillmentStatus::LIFECYCLE {
            for order in &self.orders {
                pipe.cmd("XADD")
                    .arg(&self.stream.stream)
                    .arg("*")
                    .arg(self.entry(order, status))
                    .ignore();
                queued += 1;
                if queued % 2_000 == 0 {
                    let _: () = pipe.query_async(&mut self.redis).await?;
                    pipe.clear();
                }
            }
        }
        if queued % 2_000 != 0 {
            let _: () = pipe.query_async(&mut self.redis).await?;
        }
        Ok(())
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

    /// Waits until the group has read every entry and none is pending; returns when it was.
    pub async fn wait_drained(&mut self) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + DRAIN_DEADLINE;
        loop {
            let group =
                order_worker::group_info(&mut self.redis, &self.stream.stream, &self.stream.group)
                    .await?;
            let drained = group.is_some_and(|group| group.lag == Some(0) && group.pending == 0);
            if drained {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("the stream was not drained within {DRAIN_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Checks the end state: every order delivered, and three history rows per order when
    /// `ordered` (each order's events applied in stream order). Consumers that reorder events
    /// (several replicas, or Dapr's concurrent handlers) may skip a status on the way and record
    /// fewer rows, never more. Returns the number of history rows.
    pub async fn verify(&self, phase: &str, ordered: bool) -> anyhow::Result<i64> {
        let mut conn = self.db().await?;
        let rows: i64 = order_status_history::table
            .count()
            .get_result(&mut conn)
            .await?;
        let delivered: i64 = orders::table
            .filter(orders::status.eq("delivered"))
            .count()
            .get_result(&mut conn)
            .await?;
        let orders = self.orders.len() as i64;
        let rows_ok = if ordered {
            rows == 3 * orders
        } else {
            rows <= 3 * orders
        };
        if !rows_ok || delivered != orders {
            bail!(
                "{phase}: wrong end state: {rows} history rows (expected {}), {delivered} of {orders} orders delivered",
                3 * orders
            );
        }
        Ok(rows)
    }

    /// A connection set up as the worker's are.
    pub async fn db(&self) -> anyhow::Result<AsyncPgConnection> {
        order_worker::connect_postgres(self.connections.database_url.clone())
            .await
            .context("connecting to the benchmark database")
    }
}
