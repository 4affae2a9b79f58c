//! Claiming: taking over entries idle in the group's pending list for at least
//! `CLAIM_MIN_IDLE_MS` — held by a replica that died, by Dapr's consumer (named as its group) after a
//! cut-over, or by ourselves for an event whose order did not exist yet — and running them
//! through the same path as new entries.

use tracing::Instrument;

use super::Worker;
use crate::config::{StreamConfig, Subscription};
use crate::instruments;
use crate::retry::until_ok;
use crate::shutdown::Shutdown;
use crate::stream::pending::{
    backlog, consumers, remove_consumer_if_empty, AUTOCLAIM_START as START,
};
use crate::stream::{autoclaim, claim_held, ReadBatch};

impl Worker {
    /// Removes consumers idle longer than CONSUMER_IDLE_TIMEOUT that hold nothing (replicas
    /// long gone), so `XINFO CONSUMERS` shows the live ones. A failure only postpones it.
    async fn remove_idle_consumers(&self, stream: &StreamConfig) {
        let timeout = self.config.consumer_idle_timeout;
        let me = &self.consumer;
        let removed = self.on_redis(async |conn| {
            let mut removed = Vec::new();
            for (name, pending, idle) in consumers(conn, stream).await? {
                let stale = name != *me && pending == 0 && idle > timeout;
                if stale && remove_consumer_if_empty(conn, stream, &name).await? {
                    removed.push(name);
                }
            }
            Ok(removed)
        });
        match removed.await {
            Ok(removed) if !removed.is_empty() => tracing::info!(
                stream = %stream.stream,
                ?removed,
                "removed consumers idle for more than {timeout:?} with nothing pending"
            ),
            Ok(_) => {}
            Err(error) => tracing::debug!("could not look for idle consumers: {error:#}"),
        }
    }

    /// Updates every stream's backlog gauges every CLAIM_INTERVAL_MS,
    /// forever (the caller drops it).
    pub(super) async fn observe_backlogs(&self) {
        let mut every = tokio::time::interval(self.config.claim_interval());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            for subscription in &self.subscriptions {
                self.observe_backlog(subscription).await;
            }
        }
    }

    /// Updates the lag, pending, dead-letter, length and oldest-entry gauges; a failure only
    /// leaves them stale.
    async fn observe_backlog(&self, subscription: &Subscription) {
        let stream = &subscription.stream;
        let observed = self.on_redis(async |conn| backlog(conn, stream).await);
        match observed.await {
            Ok(seen) => {
                let claim_min_idle = self.config.claim_min_idle();
                instruments::backlog(subscription.topic.name(), &seen, claim_min_idle)
            }
            Err(error) => tracing::debug!("could not read the backlog for the gauges: {error:#}"),
        }
    }

    /// Walks each stream's whole pending list once with XAUTOCLAIM, processing each page as
    /// it comes; then the housekeeping of each stream (the gauges are on their own timer).
    pub(super) async fn claim_stuck(&self, shutdown: &Shutdown) {
        for (source, subscription) in self.subscriptions.iter().enumerate() {
            self.claim_from_gone((source, subscription), shutdown).await;
            self.claim_stream((source, subscription), shutdown).await;
            if shutdown.is_triggered() {
                return;
            }
            self.remove_idle_consumers(&subscription.stream).await;
        }
        self.recorder.claim_round();
    }

    /// Takes over what consumers that are gone hold, without waiting for CLAIM_MIN_IDLE_MS: a
    /// consumer silent for CONSUMER_GONE_MS while holding entries (a replica killed), its
    /// entries idle that long. A failure to look only leaves them to the usual walk.
    async fn claim_from_gone(&self, of: (usize, &Subscription), shutdown: &Shutdown) {
        let (source, subscription) = of;
        let stream = &subscription.stream;
        let gone_after = self.config.consumer_gone();
        let (me, count) = (&self.consumer, self.config.batch_size as usize);
        let Ok(listed) = self
            .on_redis(async |conn| consumers(conn, stream).await)
            .await
        else {
            return;
        };
        let gone = listed
            .into_iter()
            .filter(|(name, pending, idle)| name != me && *pending > 0 && *idle >= gone_after);
        for (holder, _, idle) in gone {
            loop {
                let page = until_ok(
                    "claiming from a consumer that is gone",
                    &self.redis_health,
                    shutdown,
                    || {
                        self.on_redis(async |conn| {
                            claim_held(conn, (source, stream), &holder, me, gone_after, count).await
                        })
                    },
                );
                let Some(batch) = page.await else {
                    return;
                };
                if batch.is_empty() {
                    break;
                }
                tracing::info!(
                    stream = %stream.stream,
                    consumer = %holder,
                    claimed = batch.entries.len(),
                    "took over the entries of a consumer silent for {idle:?} (gone)"
                );
                self.process_claimed(subscription, batch, shutdown).await;
            }
        }
    }

    /// Walks the pending list of `of` (the subscription and its index in the reads), claiming
    /// and processing what is idle, a page at a time.
    async fn claim_stream(&self, of: (usize, &Subscription), shutdown: &Shutdown) {
        let (source, subscription) = of;
        let stream = &subscription.stream;
        let count = self.config.batch_size as usize;
        let min_idle = self.config.claim_min_idle();
        let consumer = &self.consumer;
        let mut cursor = START.to_owned();
        loop {
            let page = until_ok(
                "claiming stuck entries",
                &self.redis_health,
                shutdown,
                || {
                    self.on_redis(async |conn| {
                        autoclaim(conn, (source, stream), consumer, min_idle, &cursor, count).await
                    })
                },
            );
            let Some((next, batch)) = page.await else {
                return;
            };
            if !batch.is_empty() {
                tracing::info!(
                    stream = %stream.stream,
                    claimed = batch.entries.len(),
                    deleted = batch.deleted.len(),
                    "claimed entries idle for at least {min_idle:?}"
                );
                self.process_claimed(subscription, batch, shutdown).await;
            }
            if next == START || shutdown.is_triggered() {
                return;
            }
            cursor = next;
        }
    }

    /// Runs entries just claimed from `subscription`'s pending list through the same path as
    /// new ones; they may have been delivered before.
    async fn process_claimed(
        &self,
        subscription: &Subscription,
        mut batch: ReadBatch,
        shutdown: &Shutdown,
    ) {
        let topic = subscription.topic.name();
        self.recorder.claimed(topic, batch.entries.len());
        let size = batch.entries.len() + batch.deleted.len();
        let span = tracing::info_span!("claimed_batch", size);
        batch.redelivered = true;
        self.process(batch, shutdown).instrument(span).await;
    }
}
