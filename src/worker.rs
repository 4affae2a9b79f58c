//! The pipeline: read a batch → decode → apply in one transaction → dead-letter and ack.
//!
//! Nothing is acked before the transaction that applied it committed; an entry that can never
//! apply is dead-lettered and acked in the same MULTI; an event whose order does not exist yet
//! stays pending. Transient failures are retried with backoff until they pass or shutdown.

use anyhow::Context;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::envelope::{decode, FulfillmentEvent};
use crate::retry::Retry;
use crate::shutdown::Shutdown;
use crate::store::{self, apply_batch, migrate, DbPool, Incoming, Outcome, Plan};
use crate::stream::read::ReadBatch;
use crate::stream::settle::Origin;
use crate::stream::{self, ensure_group, settle, DeadLetter, Reader, RedisPool, StreamEntry};

/// Running totals since start, published after every batch so the demo and tests can wait for
/// a condition ("all N events consumed") instead of sleeping.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Entries read and settled (acked, dead-lettered or, for unknown orders, left pending).
    pub consumed: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub ignored: u64,
    pub unknown_order: u64,
    pub dead_lettered: u64,
    /// Order status changes written (history rows).
    pub transitions: u64,
}

impl Progress {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Applied => self.applied += 1,
            Outcome::Duplicate => self.duplicate += 1,
            Outcome::Stale => self.stale += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::UnknownOrder => self.unknown_order += 1,
            Outcome::Rejected(_) => self.dead_lettered += 1,
        }
    }
}

/// One replica's consumer: its connections, its place in the group and its progress.
pub struct Worker {
    config: WorkerConfig,
    consumer: String,
    db: DbPool,
    redis: RedisPool,
    reader: Reader,
    progress: watch::Sender<Progress>,
}

impl Worker {
    /// Checks the schema, joins the group (creating it if needed) and connects the reader.
    /// Fails with a clear message rather than starting half-configured.
    pub async fn start(config: WorkerConfig) -> anyhow::Result<Self> {
        migrate::ensure_current(&config.connections.database_url).await?;
        let consumer = config.stream.consumer_name();
        let redis = stream::pool(&config.connections.redis_url)?;
        {
            let mut conn = redis.get().await.with_context(|| {
                format!(
                    "connecting to Redis at {}",
                    crate::config::redact_url(&config.connections.redis_url)
                )
            })?;
            ensure_group(&mut *conn, &config.stream)
                .await
                .context("creating the consumer group")?;
        }
        let reader = Reader::connect(
            &config.connections.redis_url,
            config.stream.clone(),
            consumer.clone(),
            config.block(),
        )
        .await
        .context("connecting the stream reader")?;
        let db = store::pool(&config.connections.database_url, 2);
        tracing::info!(
            "Subscribing to stream: {}, group: {}, consumer: {}",
            config.stream.stream,
            config.stream.group,
            consumer
        );
        Ok(Self {
            config,
            consumer,
            db,
            redis,
            reader,
            progress: watch::Sender::new(Progress::default()),
        })
    }

    /// This replica's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Totals so far, updated after each batch.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Consumes until `shutdown` fires, then returns once the batch in flight is settled.
    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let count = self.config.batch_size as usize;
        while !shutdown.is_triggered() {
            let mut retry = Retry::new("reading the stream", &shutdown);
            let batch = loop {
                match self.reader.next_batch(count).await {
                    Ok(batch) => break Some(batch),
                    Err(error) if retry.failed(&error).await => {}
                    Err(_) => break None,
                }
            };
            let Some(batch) = batch else { break };
            if batch.is_empty() {
                continue;
            }
            let span =
                tracing::info_span!("batch", size = batch.entries.len() + batch.deleted.len());
            self.process(batch, &shutdown).instrument(span).await;
        }
        tracing::info!(consumer = %self.consumer, "worker stopped");
        Ok(())
    }

    /// Decodes, applies and settles one batch. Returns without settling only when shutdown
    /// interrupts a retry; the entries then stay pending and are read again later.
    async fn process(&mut self, batch: ReadBatch, shutdown: &Shutdown) {
        let mut events: Vec<(&StreamEntry, FulfillmentEvent)> = Vec::new();
        let mut dead: Vec<DeadLetter<'_>> = Vec::new();
        for entry in &batch.entries {
            match decode(&entry.fields, self.config.max_entry_bytes) {
                Ok(event) => events.push((entry, event)),
                Err(error) => {
                    tracing::warn!(entry_id = %entry.id, error = %error, "undecodable entry: dead-lettering it");
                    dead.push(DeadLetter {
                        entry,
                        error: error.to_string(),
                    });
                }
            }
        }
        let undecodable = dead.len() as u64;
        for id in &batch.deleted {
            tracing::warn!(entry_id = %id, "pending entry was deleted from the stream: acking it");
        }
        let incoming: Vec<Incoming<'_>> = events
            .iter()
            .map(|(entry, event)| {
                log_event(entry, event);
                Incoming {
                    entry_id: &entry.id,
                    event,
                }
            })
            .collect();

        let mut retry = Retry::new("applying the batch", shutdown);
        let plan = loop {
            match self.apply(&incoming).await {
                Ok(plan) => break plan,
                Err(error) if retry.failed(&error).await => {}
                Err(_) => return,
            }
        };

        let mut ack_ids: Vec<&str> = batch.deleted.iter().map(String::as_str).collect();
        // `incoming` was built from `events` in order, so outcomes line up with both.
        for ((entry, event), outcome) in events.iter().zip(&plan.outcomes) {
            match outcome {
                Outcome::UnknownOrder => tracing::warn!(
                    entry_id = %entry.id,
                    order_id = %event.order_id,
                    "order does not exist: leaving the entry pending"
                ),
                Outcome::Rejected(reason) => {
                    tracing::warn!(entry_id = %entry.id, error = %reason, "event can never apply: dead-lettering it");
                    dead.push(DeadLetter {
                        entry,
                        error: reason.clone(),
                    });
                }
                _ => ack_ids.push(&entry.id),
            }
        }

        let origin = Origin {
            config: &self.config.stream,
            consumer: &self.consumer,
        };
        let mut retry = Retry::new("acking the batch", shutdown);
        loop {
            match self.settle(origin, &ack_ids, &dead).await {
                Ok(()) => break,
                Err(error) if retry.failed(&error).await => {}
                // Committed but not acked: read again later and reported as duplicates.
                Err(_) => return,
            }
        }
        self.record(&plan, undecodable, batch);
    }

    async fn apply(&self, incoming: &[Incoming<'_>]) -> Result<Plan, store::StoreError> {
        let mut conn = self.db.get().await?;
        apply_batch(&mut conn, incoming).await
    }

    async fn settle(
        &self,
        origin: Origin<'_>,
        ack_ids: &[&str],
        dead: &[DeadLetter<'_>],
    ) -> anyhow::Result<()> {
        let mut conn = self.redis.get().await?;
        settle(&mut *conn, origin, ack_ids, dead).await?;
        Ok(())
    }

    fn record(&self, plan: &Plan, undecodable: u64, batch: ReadBatch) {
        for t in &plan.transitions {
            tracing::info!(
                "Updated order status: order_id={}, old_status={}, new_status={}",
                t.order_id,
                t.from,
                t.to
            );
        }
        self.progress.send_modify(|progress| {
            progress.consumed += (batch.entries.len() + batch.deleted.len()) as u64;
            progress.dead_lettered += undecodable;
            progress.transitions += plan.transitions.len() as u64;
            for outcome in &plan.outcomes {
                progress.count(outcome);
            }
        });
    }
}

/// The per-event log line, in a span carrying the CloudEvent's trace context so logs join the
/// publisher's trace.
fn log_event(entry: &StreamEntry, event: &FulfillmentEvent) {
    let span = tracing::info_span!(
        "event",
        entry_id = %entry.id,
        event_id = %event.event_id,
        traceparent = event.traceparent.as_deref().unwrap_or(""),
        traceid = event.traceid.as_deref().unwrap_or(""),
    );
    let _entered = span.enter();
    tracing::info!(
        "Processing fulfillment status changed event: fulfillment_id={}, order_id={}, new_status={}",
        event.fulfillment_id,
        event.order_id,
        event.new_status
    );
}
