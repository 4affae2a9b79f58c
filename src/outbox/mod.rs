//! The relay: publishes the outbox (`order_events_outbox`, written by each transaction that
//! changes a status) to the `orders.order.status_changed` stream, exactly as a Dapr publisher
//! writes it, and deletes each row once Redis holds it.
//!
//! Every replica runs it; one leads at a time, holding a PostgreSQL advisory lock on a session
//! of its own (freed the moment that session ends: a pod killed is taken over within
//! `RELAY_TAKEOVER_INTERVAL`). The leader publishes the oldest rows in id order (an order's rows
//! are in the order of its changes: each was written under the order's row lock), wakes on the
//! outbox's commit notifications, and on taking over first reads the stream's newest entries
//! back and deletes the rows already there, so a relay killed between XADD and DELETE publishes
//! nothing twice. The fence in Redis ([`publish::Stream`]) keeps a leader that lost its session
//! without noticing from publishing behind the new one's back.

mod cloud_event;
pub mod instruments;
mod publish;
mod rows;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use futures_util::{FutureExt, StreamExt};

use crate::config::OrderEvents;
use crate::shutdown::Shutdown;
use crate::stream::RedisPool;
use cloud_event::Envelope;
use publish::{Lease, Stream};
use rows::Row;
pub use rows::LEADER_LOCK;

/// Without a notification (none is lost while listening, but a session can die silently), the
/// leader looks anyway this often; the gauges are refreshed as often (not on every round: a
/// drain's rounds are many and short).
const POLL: Duration = Duration::from_secs(1);

/// The relay of one replica.
pub struct Relay {
    settings: OrderEvents,
    /// The replica's consumer name, which its session carries as its `application_name`.
    replica: String,
    /// `MAX_ENTRY_BYTES`: a larger entry is held, never published (subscribers like this
    /// worker would dead-letter it).
    max_entry_bytes: usize,
    database_url: String,
    redis: RedisPool,
    stream: Stream,
}

impl Relay {
    pub fn new(
        settings: OrderEvents,
        replica: String,
        max_entry_bytes: usize,
        database_url: String,
        redis: RedisPool,
    ) -> Self {
        let stream = Stream::new(&settings);
        Self {
            settings,
            replica,
            max_entry_bytes,
            database_url,
            redis,
            stream,
        }
    }

    /// Relays (or waits to) until shutdown. PostgreSQL failing ends the session, which is
    /// opened again after a pause; its lock is someone else's meanwhile.
    pub async fn run(self, shutdown: Shutdown) {
        let mut outage = Outage::new("PostgreSQL");
        while !shutdown.is_triggered() {
            match self.lead(&shutdown, &mut outage).await {
                Ok(()) => break,
                Err(error) => {
                    instruments::leader(false);
                    if !outage.wait(&error, &shutdown).await {
                        break;
                    }
                }
            }
        }
        instruments::leader(false);
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
        instruments::leader(true);
        tracing::info!(
            stream = %self.stream.key,
            "order events: this replica relays the outbox now"
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
            let led = rows::try_lead(conn)
                .await
                .context("taking the relay lock")?;
            outage.ended();
            if led {
                return Ok(true);
            }
            instruments::leader(false);
            instruments::backlog(&rows::backlog(conn).await?);
            let mut stop = shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(self.settings.relay_takeover_interval) => {}
                () = stop.triggered() => return Ok(false),
            }
        }
    }

    /// Publishes as leader: rounds while full ones come back, then a wait for a commit's
    /// notification.
    /// Redis failing (down, refusing writes) is waited out holding the lead, taking the stream
    /// over again before the next round, since a failed one may have reached it in part;
    /// PostgreSQL failing ends the session (and the lead with it).
    async fn relay(&self, conn: &mut AsyncPgConnection, shutdown: &Shutdown) -> anyhow::Result<()> {
        rows::listen(conn).await.context("listening for commits")?;
        let mut redis_outage = Outage::new("Redis");
        let mut lease = None;
        let mut gauges_at: Option<Instant> = None;
        while !shutdown.is_triggered() {
            let Some(held) = lease else {
                match self.take_over(conn).await {
                    Ok(taken) => lease = Some(taken),
                    Err(Failure::Postgres(error)) => return Err(error),
                    Err(Failure::Redis(error)) => {
                        instruments::publish_failed();
                        if !redis_outage.wait(&error, shutdown).await {
                            return Ok(());
                        }
                    }
                }
                continue;
            };
            if gauges_at.is_none_or(|at| at.elapsed() >= POLL) {
                instruments::backlog(&rows::backlog(conn).await?);
                gauges_at = Some(Instant::now());
            }
            let waiting = rows::waiting(conn, self.settings.relay_batch)
                .await
                .context("reading the outbox")?;
            // A short round took every row committed before it: what commits later notifies
            // (kept queued meanwhile), so the next read waits for that instead of finding nothing.
            let drained = waiting.len() < self.settings.relay_batch as usize;
            let round = if waiting.is_empty() {
                Ok(())
            } else {
                self.publish_round(conn, held, &waiting).await
            };
            match round {
                Ok(()) => {
                    redis_outage.ended();
                    if drained && !self.wait_for_commit(conn, shutdown).await? {
                        return Ok(());
                    }
                }
                Err(Failure::Postgres(error)) => return Err(error),
                Err(Failure::Redis(error)) => {
                    instruments::publish_failed();
                    lease = None;
                    if !redis_outage.wait(&error, shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits for a commit that wrote rows (or [`POLL`]); false on shutdown.
    async fn wait_for_commit(
        &self,
        conn: &mut AsyncPgConnection,
        shutdown: &Shutdown,
    ) -> anyhow::Result<bool> {
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        let mut stop = shutdown.clone();
        let mut next = tokio::select! {
            woken = tokio::time::timeout(POLL, notifications.next()) => woken.ok(),
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

    /// Moves the fence on and deletes the rows whose events the stream already holds.
    async fn take_over(&self, conn: &mut AsyncPgConnection) -> Result<Lease, Failure> {
        let readback = self.settings.readback();
        let mut redis = self.redis.get().await.map_err(Failure::redis)?;
        let (lease, published) = self
            .stream
            .take_over(&mut *redis, readback)
            .await
            .map_err(Failure::redis)?;
        let found = rows::delete_published(conn, &published, readback)
            .await
            .map_err(Failure::postgres)?;
        if found > 0 {
            tracing::warn!(
                "order events: {found} row(s) were published by a relay that stopped before \
                 deleting them: found in the stream, not published again"
            );
        }
        Ok(lease)
    }

    /// Publishes `waiting` (one script call) and deletes the rows. A row Redis would refuse
    /// for its size, or refuses alone (a round refused for its entries is tried row by row), is
    /// held with the reason; its order's later rows wait behind it.
    async fn publish_round(
        &self,
        conn: &mut AsyncPgConnection,
        lease: Lease,
        waiting: &[Row],
    ) -> Result<(), Failure> {
        let envelope = Envelope::from(&self.settings);
        let mut held = HashSet::new();
        // The round's rows and their entries, side by side: the entries go to Redis as a slice.
        let (mut sendable, mut data) = (Vec::with_capacity(waiting.len()), Vec::new());
        for row in waiting {
            if held.contains(row.order_id.as_str()) {
                continue;
            }
            let entry = cloud_event::entry_data(row, &envelope);
            if entry.len() > self.max_entry_bytes {
                let reason = format!(
                    "the entry is {} bytes, over MAX_ENTRY_BYTES ({}): subscribers would refuse it",
                    entry.len(),
                    self.max_entry_bytes
                );
                self.hold(conn, row, &reason).await?;
                held.insert(row.order_id.as_str());
            } else {
                sendable.push(row);
                data.push(entry);
            }
        }
        if sendable.is_empty() {
            return Ok(());
        }
        let mut redis = self.redis.get().await.map_err(Failure::redis)?;
        match self.stream.publish(&mut *redis, lease, &data).await {
            Ok(_) => return self.published(conn, sendable.iter().copied()).await,
            Err(error) if !publish::refused_for_the_entry(&error) => {
                return Err(Failure::redis(error))
            }
            Err(_) => {}
        }
        // Refused for an entry's sake: each alone, an order's rows behind a held one waiting.
        for (row, entry) in sendable.iter().zip(&data) {
            if held.contains(row.order_id.as_str()) {
                continue;
            }
            let alone = std::slice::from_ref(entry);
            match self.stream.publish(&mut *redis, lease, alone).await {
                Ok(_) => self.published(conn, [*row]).await?,
                Err(error) if !publish::refused_for_the_entry(&error) => {
                    return Err(Failure::redis(error))
                }
                Err(error) => {
                    self.hold(conn, row, &format!("Redis refused the entry: {error}"))
                        .await?;
                    held.insert(row.order_id.as_str());
                }
            }
        }
        Ok(())
    }

    /// Deletes the rows Redis now holds, and counts them.
    async fn published<'a>(
        &self,
        conn: &mut AsyncPgConnection,
        rows: impl IntoIterator<Item = &'a Row>,
    ) -> Result<(), Failure> {
        let rows: Vec<&Row> = rows.into_iter().collect();
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        rows::delete(conn, &ids).await.map_err(Failure::postgres)?;
        for row in rows {
            instruments::published(row.new_status(), row.created_at);
        }
        Ok(())
    }

    /// Holds `row`, which cannot be published for its content: its order's later rows wait.
    async fn hold(
        &self,
        conn: &mut AsyncPgConnection,
        row: &Row,
        reason: &str,
    ) -> Result<(), Failure> {
        tracing::error!(
            order_id = %row.order_id,
            event_id = %row.event_id,
            "order events: {reason}; the row is held, and the order's later changes wait \
             behind it (order-worker outbox shows it)"
        );
        rows::hold(conn, row.id, reason)
            .await
            .map_err(Failure::postgres)?;
        Ok(())
    }
}

/// What failed: Redis is waited out holding the lead; PostgreSQL ends the session.
enum Failure {
    Redis(anyhow::Error),
    Postgres(anyhow::Error),
}

impl Failure {
    fn redis(error: impl Into<anyhow::Error>) -> Self {
        Self::Redis(error.into().context("publishing to Redis"))
    }

    fn postgres(error: diesel::result::Error) -> Self {
        Self::Postgres(anyhow::Error::new(error).context("writing the outbox"))
    }
}

/// An outage as the relay sees it: logged once when it starts and once when it ends.
struct Outage {
    server: &'static str,
    since: Option<Instant>,
    delays: Option<backon::ExponentialBackoff>,
}

impl Outage {
    fn new(server: &'static str) -> Self {
        Self {
            server,
            since: None,
            delays: None,
        }
    }

    /// Records `error` and waits before the next attempt; false if shutdown came first.
    async fn wait(&mut self, error: &anyhow::Error, shutdown: &Shutdown) -> bool {
        if self.since.is_none() {
            tracing::warn!(
                "order events: the relay cannot reach {} ({error:#}); retrying with backoff, \
                 the outbox keeps every change meanwhile",
                self.server
            );
            self.since = Some(Instant::now());
        } else {
            tracing::debug!("order events: failed again: {error:#}");
        }
        let wait = self
            .delays
            .get_or_insert_with(crate::retry::delays)
            .next()
            .unwrap_or(Duration::from_secs(5));
        let mut stop = shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = stop.triggered() => false,
        }
    }

    fn ended(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::warn!(
                "order events: the relay reaches {} again after {:.1?}",
                self.server,
                since.elapsed()
            );
        }
        self.delays = None;
    }
}
