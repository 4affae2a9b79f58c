//! One replica's consumer: reads new entries, claims stuck ones on a timer, and runs each batch
//! through its life, two at once when their orders differ ([`in_flight`]).
//!
//! [`batch::run_batch`] is a batch's whole life on one page (decode → apply → verdicts →
//! settle → record); its steps are functions in [`apply`], [`settle`] and [`traced`]. Here: the
//! worker and its read loop; [`start`] connects (waiting out an outage); [`claim`] claims stuck
//! entries and does the housekeeping that goes with it.
//!
//! Nothing is acked before the transaction that applied it committed; an entry that can never
//! apply is dead-lettered and acked in the same MULTI; an event whose order does not exist yet
//! stays pending and is retried through claiming until `MAX_DELIVERIES`. Transient failures are
//! retried with backoff until they pass or shutdown.

mod apply;
mod batch;
mod claim;
mod fresh;
mod in_flight;
mod retention;
mod settle;
mod start;
mod traced;

use std::time::{Duration, Instant};

use crate::stream::RedisConnection;
use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use self::in_flight::{InFlight, Ticket};
use crate::config::{Subscription, WorkerConfig};
use crate::instruments::Recorder;
pub use crate::instruments::{Committed, Progress};
use crate::retry::{Dependency, Retry};
use crate::shutdown::Shutdown;
use crate::store::{DbPool, InboxKey, Tables};
use crate::stream::{ReadBatch, Reader, RedisPool};

/// Batches applied at once when they write disjoint orders: two keep PostgreSQL busy while the
/// other commits or is acked; more only add connections.
const IN_FLIGHT: usize = 2;

impl WorkerConfig {
    /// Transactions one replica has open at most: a lane of each batch in flight (the
    /// benchmark's PostgreSQL-alone ceiling opens as many).
    pub fn transactions_at_once(&self) -> usize {
        usize::from(self.concurrency) * IN_FLIGHT
    }
}

/// One replica's consumer: its connections, its place in the group and its progress.
pub struct Worker {
    config: WorkerConfig,
    /// What is consumed; an entry's `source` indexes it (looked up once, as it is read).
    subscriptions: Vec<Subscription>,
    consumer: String,
    db: DbPool,
    /// The orders table's shape and the inbox's key, which the statements of each batch follow.
    tables: Tables,
    redis: RedisPool,
    /// Taken by [`Worker::run`], which owns the reading side.
    reader: Option<Reader>,
    recorder: Recorder,
    redis_health: Dependency,
    db_health: Dependency,
}

/// What a batch's Redis steps need: the pool, our name in the group, and Redis's health.
struct OnRedis<'a> {
    pool: &'a RedisPool,
    consumer: &'a str,
    health: &'a Dependency,
}

impl OnRedis<'_> {
    /// Runs `command` on a connection of the pool (short commands; reads have their own).
    async fn run<T>(
        &self,
        command: impl AsyncFnOnce(&mut RedisConnection) -> redis::RedisResult<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.pool.get().await?;
        Ok(command(&mut conn).await?)
    }
}

impl Worker {
    /// What `/readyz` checks, sharing this worker's connections.
    pub fn readiness(&self) -> crate::http::Readiness {
        crate::http::Readiness {
            redis: self.redis.clone(),
            db: self.db.clone(),
            subscriptions: self.subscriptions.clone(),
        }
    }

    /// Every batch's commit from now on, once it is settled (the benchmark's latency probe).
    pub fn commits(&mut self) -> mpsc::UnboundedReceiver<Committed> {
        self.recorder.commits()
    }

    /// Totals so far, updated after each batch, so the demo and tests can wait for a condition
    /// ("all N events consumed") instead of sleeping.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.recorder.progress()
    }

    /// Runs `command` on a connection of the pool (short commands; reads have their own).
    async fn on_redis<T>(
        &self,
        command: impl AsyncFnOnce(&mut RedisConnection) -> redis::RedisResult<T>,
    ) -> anyhow::Result<T> {
        self.on_redis_side().run(command).await
    }

    fn on_redis_side(&self) -> OnRedis<'_> {
        OnRedis {
            pool: &self.redis,
            consumer: &self.consumer,
            health: &self.redis_health,
        }
    }

    fn store(&self) -> apply::Store<'_> {
        apply::Store {
            db: &self.db,
            tables: &self.tables,
            health: &self.db_health,
            lanes: usize::from(self.config.concurrency),
            timeout: self.config.apply_timeout,
        }
    }

    /// How often a batch's entries are made fresh in the pending list: well within both
    /// idle times after which another replica claims them (CLAIM_MIN_IDLE_MS, or
    /// CONSUMER_GONE_MS when this one looks gone).
    fn keep_alive_period(&self) -> Duration {
        let config = &self.config;
        config.claim_min_idle().min(config.consumer_gone()) / 3
    }

    /// Consumes until `shutdown` fires, then returns once every batch in flight is settled.
    /// Claims first thing (a cut-over from Dapr finds Dapr's stuck entries at once), then every
    /// claim interval. The next batch is read and decoded while another applies, so PostgreSQL
    /// never waits on Redis.
    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let reader = self.reader.take().context("the worker runs only once")?;
        // The gauges on a timer of their own: claim rounds wait for the batches in flight,
        // which wait for PostgreSQL, so in an outage the lag would freeze just when it grows.
        let retention = tokio::spawn(self.retention().run(shutdown.clone()));
        let relays: Vec<_> = self
            .sources()
            .into_iter()
            .map(|source| {
                let relay = crate::outbox::Relay::new(
                    self.config.order_events.clone(),
                    source,
                    self.consumer.clone(),
                    self.config.max_entry_bytes,
                    self.config.connections.database_url.clone(),
                    self.redis.clone(),
                );
                tokio::spawn(relay.run(shutdown.clone()))
            })
            .collect();
        tokio::select! {
            () = self.consume(reader, &shutdown) => {}
            () = self.observe_backlogs() => {}
            () = self.follow_the_inbox_key() => {}
        }
        // They stop between steps; a step takes milliseconds.
        let _ = retention.await;
        for relay in relays {
            let _ = relay.await;
        }
        tracing::info!(consumer = %self.consumer, "worker stopped");
        Ok(())
    }

    /// The tables relayed: the own outbox unless ORDER_EVENTS is off, and RELAY_TABLE if set.
    fn sources(&self) -> Vec<crate::outbox::Source> {
        let events = &self.config.order_events;
        // Kept with ORDER_EVENTS_TABLE too: what order_events_outbox still holds (written
        // before it was set, or by `replay`, which writes there) is published, not stranded.
        let own = events
            .order_events
            .then(|| crate::outbox::Source::own(events));
        own.into_iter()
            .chain(crate::outbox::Source::mapped(&self.config.relay))
            .collect()
    }

    /// The read loop of [`Worker::run`].
    async fn consume(&self, mut reader: Reader, shutdown: &Shutdown) {
        let count = self.config.batch_size as usize;
        let mut next_claim = Instant::now();
        let mut in_flight = InFlight::new(IN_FLIGHT);
        while !shutdown.is_triggered() {
            if Instant::now() >= next_claim {
                // Claimed entries may belong to orders in flight: let those finish first.
                in_flight.drain().await;
                self.claim_stuck(shutdown).await;
                next_claim = Instant::now() + self.config.claim_interval();
                continue;
            }
            // Read only for a free slot: while the batches in flight cannot commit (an outage),
            // nothing more waits under our name, where a crash would strand it until claimed
            // (by then its order may have moved on: it would apply as stale).
            in_flight.wait_for_slot().await;
            let block = next_claim.saturating_duration_since(Instant::now());
            let read = self.read(&mut reader, count, block, shutdown);
            let Some(batch) = in_flight.alongside(read).await else {
                break;
            };
            if batch.is_empty() {
                continue;
            }
            // Once read, a batch is ours: it is finished even if shutdown comes meanwhile,
            // rather than left pending under our name. Its place in line is taken in read order.
            let size = batch.entries.len() + batch.deleted.len();
            let span = tracing::info_span!("batch", size);
            let run = batch::run_batch(self, batch, in_flight.ticket(), shutdown);
            in_flight.push(run.instrument(span));
        }
        in_flight.drain().await;
    }

    /// One read, retried until it succeeds or shutdown stops it.
    async fn read(
        &self,
        reader: &mut Reader,
        count: usize,
        block: Duration,
        shutdown: &Shutdown,
    ) -> Option<ReadBatch> {
        let mut retry = Retry::new("reading the stream", &self.redis_health, shutdown);
        loop {
            match reader.next_batch(count, block).await {
                Ok(mut batch) => {
                    retry.succeeded();
                    batch.sort_by_position(|source| self.subscriptions[source].topic.stage());
                    return Some(batch);
                }
                Err(error) if retry.failed(&error).await => {}
                Err(_) => return None,
            }
        }
    }

    /// Until `migrate --contract` has run, reads the inbox's key every claim interval, so that
    /// replicas running when it does take the key by order at once: reading by event id alone,
    /// which that step no longer indexes, would scan the inbox on every batch. Never returns.
    async fn follow_the_inbox_key(&self) {
        let mut every = tokio::time::interval(self.config.claim_interval());
        while self.tables.inbox() == InboxKey::EventId {
            every.tick().await;
            let reinspected = async {
                let mut conn = self.db.get().await?;
                self.tables.reinspect_inbox(&mut conn).await
            };
            match reinspected.await {
                Ok(true) => tracing::info!(
                    "the inbox is keyed by order now (`migrate --contract` ran): an event id \
                     under another order is another event from here on"
                ),
                Ok(false) => {}
                Err(error) => tracing::debug!("could not read the inbox's key: {error:#}"),
            }
        }
        std::future::pending().await
    }

    fn retention(&self) -> retention::Retention {
        retention::Retention {
            database_url: self.config.connections.database_url.clone(),
            keep: self.config.inbox_retention,
            every: self.config.inbox_prune_interval,
        }
    }

    /// Runs a batch alone (claimed entries: nothing else is in flight).
    async fn process(&self, batch: ReadBatch, shutdown: &Shutdown) {
        batch::run_batch(self, batch, Ticket::alone(), shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::instruments::{Progress, Recorder, Settled};
    use crate::topics::Outcome::{self, *};

    /// `instruments` counts outcomes by the names the worker hands it: each outcome's name must
    /// move a total (a rejected event's is counted with the dead letters).
    #[test]
    fn every_outcome_moves_its_total_by_name() {
        // Names every variant, so a new one fails to compile here until it is listed.
        let listed = |outcome: &Outcome| match outcome {
            Applied | Duplicate | Stale | Ignored | UnknownOrder | Conflict | Rejected(_) => {}
        };
        let outcomes = [
            Applied,
            Duplicate,
            Stale,
            Ignored,
            UnknownOrder,
            Conflict,
            Rejected(String::new()),
        ];
        for outcome in outcomes {
            listed(&outcome);
            let recorder = Recorder::default();
            recorder.settled(&Settled {
                entries: vec!["topic"],
                deleted: 0,
                outcomes: vec![("topic", outcome.as_str())],
                transitions: Vec::new(),
                recomputed: 0,
                dead_letters: Vec::new(),
                seconds: 0.0,
                committed: (std::time::Instant::now(), Vec::new()),
            });
            let only_consumed = Progress {
                consumed: 1,
                ..Progress::default()
            };
            let counted = *recorder.progress().borrow() != only_consumed;
            assert_eq!(counted, !matches!(outcome, Rejected(_)), "{outcome:?}");
        }
    }
}
