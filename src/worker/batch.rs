//! A batch's whole life: delivery counts → decode → apply (kept alive) → verdicts → settle →
//! record. [`Worker::prepare`] takes the first two steps while earlier batches are still in
//! flight (the orders it writes decide when it may join them); [`Worker::finish`] the rest.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use futures_util::future::join_all;
use tracing::{Instrument, Span};

use super::traced::{self, Failing};
use super::{Committed, Worker};
use crate::instruments::Settled;
use crate::retry::until_ok;
use crate::shutdown::Shutdown;
use crate::store::{apply_batch, Incoming, Plan, StoreError, Transition};
use crate::stream::{by_source, delivery_counts, keep_alive, ReadBatch, StreamEntry};
use crate::telemetry::spans::{self, Step};
use crate::topics::{self, Event, Outcome};
use crate::verdict::{verdict, Known, Refusal, Verdict};

/// What applying a batch's events did: one outcome per event, in order, the history rows
/// written and withdrawn, and the orders recomputed for a late event (or, changed by someone
/// else, not).
#[derive(Default)]
struct Applied {
    outcomes: Vec<Outcome>,
    transitions: Vec<Transition>,
    withdrawn: Vec<Transition>,
    recomputed: Vec<String>,
    changed_outside: Vec<String>,
}

/// Delivery counts of a redelivered batch's entries, by source then id.
#[derive(Default)]
pub(super) struct DeliveryCounts(HashMap<usize, HashMap<String, u64>>);

impl DeliveryCounts {
    /// How many times `entry` was delivered, this time included (absent: the first).
    pub(super) fn of(&self, entry: &StreamEntry) -> u64 {
        let counted = self.0.get(&entry.source).and_then(|ids| ids.get(&entry.id));
        counted.copied().unwrap_or(1)
    }
}

/// A batch read and decoded, not yet applied.
pub(super) struct Prepared {
    pub(super) batch: ReadBatch,
    pub(super) counts: DeliveryCounts,
    /// One per entry, in order: the event to apply, or why the entry never will be.
    decoded: Vec<Result<Event, Refusal>>,
    /// One per entry, in order: its `process` span, ended when the batch is done with it.
    pub(super) spans: Vec<Span>,
    started: Instant,
}

impl Prepared {
    /// The orders this batch writes. Two batches that share none touch disjoint rows, so they
    /// may be applied at once without changing the order in which any order's events apply.
    pub(super) fn order_ids(&self) -> HashSet<String> {
        self.events()
            .map(|(_, event)| event.change.order_id().to_owned())
            .collect()
    }

    /// The entries whose event is to be applied, in stream order.
    fn events(&self) -> impl Iterator<Item = (&StreamEntry, &Event)> {
        self.batch
            .entries
            .iter()
            .zip(&self.decoded)
            .filter_map(|(entry, decoded)| Some((entry, decoded.as_ref().ok()?)))
    }

    /// The spans of [`Self::events`], in the same order.
    fn event_spans(&self) -> impl Iterator<Item = &Span> {
        let decoded = self.decoded.iter().zip(&self.spans);
        decoded.filter_map(|(decoded, span)| decoded.is_ok().then_some(span))
    }

    /// Every entry's verdict, given the outcomes of the events applied (in [`Self::events`] order).
    fn verdicts(&self, outcomes: &[Outcome], max_deliveries: u64) -> Vec<(&StreamEntry, Verdict)> {
        let mut outcomes = outcomes.iter();
        let entries = self.batch.entries.iter().zip(&self.decoded);
        entries
            .map(|(entry, decoded)| {
                let fate = match decoded {
                    Err(refusal) => Verdict::DeadLetter(refusal.clone()),
                    Ok(event) => match outcomes.next() {
                        Some(outcome) => {
                            let order_id = event.change.order_id();
                            let known = Known::Applied { outcome, order_id };
                            verdict(known, self.counts.of(entry), max_deliveries)
                        }
                        // Every event has an outcome; one without would stay pending.
                        None => Verdict::Pending,
                    },
                };
                (entry, fate)
            })
            .collect()
    }
}

impl Worker {
    /// Runs one batch to the end. Returns without settling only when shutdown interrupts a
    /// retry; the entries then stay pending and are read again or claimed later.
    pub(super) async fn process(&self, batch: ReadBatch, shutdown: &Shutdown) {
        if let Some(prepared) = self.prepare(batch, shutdown).await {
            self.finish(prepared, shutdown).await;
        }
    }

    /// Looks up delivery counts (for a redelivered batch) and decodes every entry. `None` when
    /// shutdown interrupts the lookup: nothing was done, the entries stay pending.
    pub(super) async fn prepare(&self, batch: ReadBatch, shutdown: &Shutdown) -> Option<Prepared> {
        let started = Instant::now();
        let mut counts = DeliveryCounts::default();
        if batch.redelivered {
            for (source, ids) in by_source(batch.ids()) {
                let stream = &self.subscriptions[source].stream;
                let counted = until_ok(
                    "reading delivery counts",
                    &self.redis_health,
                    shutdown,
                    || self.on_redis(async |conn| delivery_counts(conn, stream, &ids).await),
                );
                let counted = counted.await?;
                counts.0.insert(source, counted);
            }
        }
        let max = u64::from(self.config.max_deliveries);
        let (max_bytes, order_ids) = (self.config.max_entry_bytes, self.tables.orders.order_ids());
        let decoded = batch
            .entries
            .iter()
            .map(|entry| {
                let deliveries = counts.of(entry);
                let topic = self.subscriptions[entry.source].topic;
                let event = topics::decode(topic, &entry.fields, max_bytes, order_ids);
                match verdict(Known::Decoded(event.as_ref().map(drop)), deliveries, max) {
                    Verdict::DeadLetter(refusal) => Err(refusal),
                    // Only a decoded event is let through.
                    _ => event.map_err(Refusal::Undecodable),
                }
            })
            .collect::<Vec<_>>();
        let entries = batch.entries.iter().zip(&decoded);
        let spans = entries
            .map(|(entry, decoded)| self.entry_span(entry, decoded))
            .collect();
        Some(Prepared {
            batch,
            counts,
            decoded,
            spans,
            started,
        })
    }

    /// Applies a prepared batch, then settles each entry as its verdict says and records it.
    /// Returns early only when shutdown interrupts a retry (see [`Worker::process`]).
    pub(super) async fn finish(&self, prepared: Prepared, shutdown: &Shutdown) {
        let events: Vec<_> = prepared.events().collect();
        let spans: Vec<&Span> = prepared.event_spans().collect();
        for ((_, event), span) in events.iter().zip(&spans) {
            traced::log_event(span, event);
        }
        let ids: Vec<(usize, &str)> = prepared.batch.ids().collect();
        let applying = self.apply_kept_alive(&ids, &events, &spans, shutdown);
        let Some(applied) = applying.await else {
            return;
        };
        for ((entry, event), outcome) in events.iter().zip(&applied.outcomes) {
            if *outcome == Outcome::Conflict {
                tracing::warn!(entry_id = %entry.id, event_id = %event.event_id, order_id = event.change.order_id(),
                    "event contradicts its order's state (a payment for a closed order?): nothing moved; someone must resolve it (refund)");
            }
        }
        self.notify_commit(&events);
        let max = u64::from(self.config.max_deliveries);
        let verdicts = prepared.verdicts(&applied.outcomes, max);
        traced::record_verdicts(
            &verdicts,
            &prepared.spans,
            spans.iter().copied().zip(&applied.outcomes),
        );
        if self.settle(&prepared, &verdicts, shutdown).await.is_none() {
            // Committed but not acked: read again later, then reported as duplicates.
            return;
        }
        for order_id in &applied.recomputed {
            tracing::info!(order_id, "recomputed the order from its recorded events in stream order: an event older than one applied to it arrived late");
        }
        for order_id in &applied.changed_outside {
            tracing::warn!(order_id, "a late event was applied to the order as it stands, not recomputed: its status was changed outside this worker since the worker last moved it, and that change stands");
        }
        let events_spans = events
            .iter()
            .map(|(_, event)| *event)
            .zip(spans.iter().copied());
        traced::log_status_changes(&applied.withdrawn, &applied.transitions, events_spans);
        let batch = &prepared.batch;
        let topic = |source: usize| self.subscriptions[source].topic.name();
        self.recorder.settled(&Settled {
            entries: batch.ids().map(|(source, _)| topic(source)).collect(),
            deleted: batch.deleted.len(),
            outcomes: events
                .iter()
                .zip(&applied.outcomes)
                .map(|((entry, _), outcome)| (topic(entry.source), outcome.as_str()))
                .collect(),
            transitions: applied
                .transitions
                .iter()
                .map(|t| t.reason.as_str())
                .collect(),
            recomputed: applied.recomputed.len() + applied.changed_outside.len(),
            dead_letters: verdicts
                .iter()
                .filter_map(|(entry, fate)| match fate {
                    Verdict::DeadLetter(refusal) => {
                        Some((topic(entry.source), refusal.error_kind()))
                    }
                    _ => None,
                })
                .collect(),
            seconds: prepared.started.elapsed().as_secs_f64(),
        });
    }

    /// Tells the benchmark's latency probe, if it listens, which events just became durable.
    fn notify_commit(&self, events: &[(&StreamEntry, &Event)]) {
        if let Some(commits) = &self.commits {
            let entry_ids = events.iter().map(|(entry, _)| entry.id.clone()).collect();
            // A receiver that went away only means nobody watches any more.
            let _ = commits.send(Committed {
                at: Instant::now(),
                entry_ids,
            });
        }
    }

    /// Applies the events while keeping the batch's entries (and any read ahead) fresh in the
    /// pending list, so a slow database never lets another replica claim what we still hold.
    async fn apply_kept_alive(
        &self,
        ids: &[(usize, &str)],
        events: &[(&StreamEntry, &Event)],
        spans: &[&Span],
        shutdown: &Shutdown,
    ) -> Option<Applied> {
        let work = self.apply_in_lanes(events, spans, shutdown);
        tokio::pin!(work);
        // Fresh well within both: another replica claims what is idle for CLAIM_MIN_IDLE_MS, or
        // for CONSUMER_GONE_MS when this one looks gone.
        let period = self
            .config
            .claim_min_idle()
            .min(self.config.consumer_gone())
            / 3;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                applied = &mut work => return applied,
                _ = ticker.tick() => {
                    let ahead = self.read_ahead_ids();
                    let held = ids.iter().copied().chain(ahead.iter().map(|(s, id)| (*s, id.as_str())));
                    let consumer = &self.consumer;
                    for (source, held) in by_source(held) {
                        let stream = &self.subscriptions[source].stream;
                        let refreshed = self.on_redis(async |conn| keep_alive(conn, stream, consumer, &held).await);
                        if let Err(error) = refreshed.await {
                            tracing::warn!("could not keep the batch's entries fresh: {error:#}");
                        }
                    }
                }
            }
        }
    }

    /// Splits the events into `CONCURRENCY` lanes by order id, applies the lanes at once, each
    /// in its own transaction, and puts the outcomes back in event order. All events of one
    /// order share a lane, in stream order, so no order is ever written by two transactions at
    /// once and the lanes never wait on each other's locks.
    async fn apply_in_lanes(
        &self,
        events: &[(&StreamEntry, &Event)],
        spans: &[&Span],
        shutdown: &Shutdown,
    ) -> Option<Applied> {
        let lane_count = usize::from(self.config.concurrency).max(1);
        let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); lane_count];
        for (index, (_, event)) in events.iter().enumerate() {
            let mut hasher = DefaultHasher::new();
            event.change.order_id().hash(&mut hasher);
            lanes[(hasher.finish() % lane_count as u64) as usize].push(index);
        }
        lanes.retain(|lane| !lane.is_empty());
        let failing = Failing::new(self, events);
        let failing = &failing;
        let plans = join_all(lanes.iter().map(|lane| {
            let incoming: Vec<Incoming<'_>> = lane
                .iter()
                .map(|&i| Incoming {
                    entry_id: &events[i].0.id,
                    event: events[i].1,
                })
                .collect();
            let attributes = [("order_worker.events", lane.len() as i64)];
            let span = spans::for_entries(Step::Apply, &attributes, lane.iter().map(|&i| spans[i]));
            async move {
                let plan = self
                    .apply(&incoming, failing, shutdown)
                    .instrument(span.clone())
                    .await;
                if let Some(plan) = &plan {
                    spans::count(&span, "order_worker.statements", plan.statements);
                }
                plan
            }
        }))
        .await;

        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut applied = Applied::default();
        for (lane, plan) in lanes.iter().zip(plans) {
            // A lane stopped by shutdown: nothing is acked; what others committed comes back
            // as duplicates.
            let plan = plan?;
            for (&index, outcome) in lane.iter().zip(plan.outcomes) {
                outcomes[index] = Some(outcome);
            }
            applied.transitions.extend(plan.transitions);
            applied.withdrawn.extend(plan.history_dropped);
            applied.recomputed.extend(plan.recomputed);
            applied.changed_outside.extend(plan.changed_outside);
        }
        // Every index is in exactly one lane; an unfilled one would stay pending.
        applied.outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::UnknownOrder))
            .collect();
        Some(applied)
    }

    /// Applies one lane, retrying until it commits. Each attempt is bounded: a connection
    /// stalled by a network partition would otherwise hang the worker forever.
    async fn apply(
        &self,
        incoming: &[Incoming<'_>],
        failing: &Failing<'_>,
        shutdown: &Shutdown,
    ) -> Option<Plan> {
        until_ok("applying a batch", &self.db_health, shutdown, || async {
            let attempt = async {
                let started = Instant::now();
                let mut conn = self.db.get().await.map_err(StoreError::from)?;
                let checked_out = started.elapsed();
                let plan = apply_batch(&mut conn, &self.tables, incoming).await;
                tracing::debug!(events = incoming.len(), ?checked_out, took = ?started.elapsed(), "applied");
                plan
            };
            // The connection of an attempt cut short is dropped, not reused.
            let timeout = self.config.apply_timeout;
            let applied = tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or(Err(StoreError::TimedOut(timeout)));
            applied.inspect_err(|error| failing.failed(error))
        })
        .await
    }
}
