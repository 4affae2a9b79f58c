//! The relay: publishes an outbox table's rows to Redis, exactly as a Dapr publisher writes
//! them, and marks each row once Redis holds it. One implementation for both tables it drains
//! ([`Source`]): the worker's own `order_events_outbox` (written by each transaction that
//! changes a status, published to `orders.order.status_changed`, deleted once published) and
//! the order service's `RELAY_TABLE` (each row to the stream its topic names, marked published).
//!
//! Every replica runs it; one leads at a time, holding a PostgreSQL advisory lock on a session
//! of its own (freed the moment that session ends: a pod killed is taken over within
//! `RELAY_TAKEOVER_INTERVAL`). The leader publishes the oldest rows in id order (an order's rows
//! are in the order of its changes), wakes on the table's commit notifications, and before its
//! first XADD to a stream reads the stream's newest entries back and marks the rows already
//! there, so a relay killed between XADD and marking publishes nothing twice. The fence in
//! Redis ([`publish::Stream`]) keeps a leader that lost its session without noticing from
//! publishing behind the new one's back.

mod cloud_event;
pub mod instruments;
mod mapping;
mod outage;
mod publish;
mod round;
mod rows;
mod source;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use futures_util::{FutureExt, StreamExt};

use crate::config::OrderEvents;
use crate::shutdown::Shutdown;
use crate::stream::RedisPool;
pub use cloud_event::order_id;
pub use mapping::check as check_mapping;
use outage::{Failure, Outage};
use publish::{Lease, Stream};
pub use rows::{backlog, listing, requeue, Listed};
pub use source::{trigger, Source, LEADER_LOCK};

/// Published rows past their retention are deleted this many at a time (short statements:
/// the order service writes the same table), and at most [`CLEANUP_ROUNDS`] times per
/// [`CLEANUP_EVERY`], so that a first cleanup of a large table never holds publishing up.
const CLEANUP_BATCH: u32 = 500;
const CLEANUP_ROUNDS: usize = 20;
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// The leases this leader holds, by stream: a stream is taken over before its first XADD.
type Leases = HashMap<String, Lease>;

/// The relay of one replica, for one table.
pub struct Relay {
    settings: OrderEvents,
    source: Source,
    /// The replica's consumer name, which its session carries as its `application_name`.
    replica: String,
    /// `MAX_ENTRY_BYTES`: a larger entry is failed, never published (subscribers like this
    /// worker would dead-letter it).
    max_entry_bytes: usize,
    database_url: String,
    redis: RedisPool,
}

/// What a step of the leader did.
enum Step {
    /// Published what there was: wait for more if the read was short.
    Published,
    /// Took streams over (marking rows found there): read again.
    TookOver,
}

impl Relay {
    pub fn new(
        settings: OrderEvents,
        source: Source,
        replica: String,
        max_entry_bytes: usize,
        database_url: String,
        redis: RedisPool,
    ) -> Self {
        Self {
            settings,
            source,
            replica,
            max_entry_bytes,
            database_url,
            redis,
        }
    }

    /// Relays (or waits to) until shutdown. PostgreSQL failing ends the session, which is
    /// opened again after a pause; its lock is someone else's meanwhile.
    pub async fn run(self, shutdown: Shutdown) {
        instruments::started(&self.source);
        let mut outage = Outage::new("PostgreSQL", &self.source.label);
        while !shutdown.is_triggered() {
            match self.lead(&shutdown, &mut outage).await {
                Ok(()) => break,
                Err(error) => {
                    instruments::leader(&self.source, false);
                    if !outage.wait(&error, &shutdown).await {
                        break;
                    }
                }
            }
        }
        instruments::leader(&self.source, false);
    }

    /// One session: waits for the lead, then relays until shutdown (`Ok`) or a failure.
    async fn lead(&self, shutdown: &Shutdown, outage: &mut Outage) -> anyhow::Result<()> {
        let mut conn = crate::store::connect(self.database_url.clone())
            .await
            .context("connecting to PostgreSQL")?;
        rows::name_session(&mut conn, &self.replica)
            .await
            .context("naming the relay's session")?;
        if !self.wait_for_lead(&mut conn, shutdown, outage).await? {
            return Ok(());
        }
        instruments::leader(&self.source, true);
        tracing::info!(
            outbox = %self.source.table,
            "{}: this replica relays the outbox now",
            self.source.label
        );
        self.relay(&mut conn, shutdown).await
    }

    /// Tries for the leader lock every `RELAY_TAKEOVER_INTERVAL`, refreshing the outbox gauges
    /// meanwhile; false if shutdown came first.
    async fn wait_for_lead(
        &self,
        conn: &mut AsyncPgConnection,
        shutdown: &Shutdown,
        outage: &mut Outage,
    ) -> anyhow::Result<bool> {
        loop {
            let led = rows::try_lead(conn, &self.source)
                .await
                .context("taking the relay lock")?;
            outage.ended();
            if led {
                return Ok(true);
            }
            instruments::leader(&self.source, false);
            self.refresh_gauges(conn).await?;
            let mut stop = shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(self.settings.relay_takeover_interval) => {}
                () = stop.triggered() => return Ok(false),
            }
        }
    }

    async fn refresh_gauges(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
        let backlog = rows::backlog(conn, &self.source)
            .await
            .context("counting the outbox")?;
        instruments::backlog(&self.source, &backlog);
        Ok(())
    }

    /// Publishes as leader: rounds while full ones come back, then a wait for a commit's
    /// notification. Redis failing (down, refusing writes) is waited out holding the lead,
    /// taking the streams over again before the next round, since a failed one may have reached
    /// them in part; PostgreSQL failing ends the session (and the lead with it).
    async fn relay(&self, conn: &mut AsyncPgConnection, shutdown: &Shutdown) -> anyhow::Result<()> {
        rows::listen(conn, &self.source)
            .await
            .context("listening for commits")?;
        let mut redis_outage = Outage::new("Redis", &self.source.label);
        let mut leases = Leases::new();
        let (mut gauges_at, mut cleaned_at): (Option<Instant>, Option<Instant>) = (None, None);
        while !shutdown.is_triggered() {
            if gauges_at.is_none_or(|at| at.elapsed() >= self.source.poll) {
                self.refresh_gauges(conn).await?;
                gauges_at = Some(Instant::now());
            }
            if cleaned_at.is_none_or(|at| at.elapsed() >= CLEANUP_EVERY) {
                self.clean(conn).await?;
                cleaned_at = Some(Instant::now());
            }
            let waiting = rows::waiting(conn, &self.source, self.settings.relay_batch)
                .await
                .context("reading the outbox")?;
            // A short round took every row committed before it: what commits later notifies
            // (kept queued meanwhile), so the next read waits for that instead of finding nothing.
            let drained = waiting.len() < self.settings.relay_batch as usize;
            match self.step(conn, &mut leases, &waiting).await {
                Ok(Step::TookOver) => redis_outage.ended(),
                Ok(Step::Published) => {
                    redis_outage.ended();
                    if drained && !self.wait_for_commit(conn, shutdown).await? {
                        return Ok(());
                    }
                }
                Err(Failure::Postgres(error)) => return Err(error),
                Err(Failure::Redis(error)) => {
                    instruments::publish_failed(&self.source);
                    leases.clear();
                    if !redis_outage.wait(&error, shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes published rows past their retention, a batch at a time.
    async fn clean(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
        let mut deleted = 0;
        for _ in 0..CLEANUP_ROUNDS {
            let batch = rows::clean(conn, &self.source, CLEANUP_BATCH)
                .await
                .context("deleting published rows past RELAY_RETENTION")?;
            deleted += batch;
            if batch < CLEANUP_BATCH as usize {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(
                outbox = %self.source.table,
                "{}: deleted {deleted} row(s) published more than RELAY_RETENTION ago",
                self.source.label
            );
        }
        Ok(())
    }

    /// Waits for a commit that wrote rows (or the source's poll); false on shutdown.
    async fn wait_for_commit(
        &self,
        conn: &mut AsyncPgConnection,
        shutdown: &Shutdown,
    ) -> anyhow::Result<bool> {
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        let mut stop = shutdown.clone();
        let mut next = tokio::select! {
            woken = tokio::time::timeout(self.source.poll, notifications.next()) => woken.ok(),
            () = stop.triggered() => return Ok(false),
        };
        // Those already queued are answered by the same read.
        while let Some(notification) = next {
            match notification {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("waiting for commits"),
                None => anyhow::bail!("the relay's PostgreSQL session ended"),
            }
            next = notifications.next().now_or_never();
        }
        Ok(true)
    }

    /// Moves `stream`'s fence on and marks the rows whose events the stream already holds.
    async fn take_over(
        &self,
        conn: &mut AsyncPgConnection,
        leases: &mut Leases,
        stream: &str,
    ) -> Result<(), Failure> {
        let readback = self.settings.readback();
        let mut redis = self.redis.get().await.map_err(Failure::redis)?;
        let (lease, published) = Stream::new(stream, &self.source)
            .take_over(&mut *redis, readback)
            .await
            .map_err(Failure::redis)?;
        let found = rows::found_published(conn, &self.source, stream, &published, readback)
            .await
            .map_err(Failure::postgres)?;
        if found > 0 {
            tracing::warn!(
                "{}: {found} row(s) were published to {stream} by a relay that stopped before \
                 marking them: found in the stream, not published again",
                self.source.label
            );
        }
        leases.insert(stream.to_owned(), lease);
        Ok(())
    }
}
