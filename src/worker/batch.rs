//! A batch's whole life, on one page: [`run_batch`]. Every step is a function of what it is
//! given: delivery counts, decoding and admission here, applying in [`super::apply`],
//! settling in [`super::settle`], spans and log lines in [`super::traced`].

use std::collections::HashSet;
use std::time::Instant;

use tracing::Span;

use super::apply::{self, Admitted, Applied};
use super::fresh::KeptFresh;
use super::in_flight::Ticket;
use super::{settle, traced, OnRedis, Worker};
use crate::config::{StreamConfig, Subscription};
use crate::envelope::OrderIds;
use crate::instruments::Settled;
use crate::retry::until_ok;
use crate::shutdown::Shutdown;
use crate::stream::{delivery_counts, ReadBatch, StreamEntry};
use crate::topics::{self, Event, Outcome};
use crate::verdict::{self, Refusal, Verdict};

/// A batch read: its entries, and the ids pending for us whose entry was deleted from the
/// stream (nothing to apply: they are acked).
pub(super) struct Batch<'a> {
    pub(super) entries: Vec<Delivered<'a>>,
    pub(super) deleted: Vec<(&'a Subscription, String)>,
}

/// An entry read, with its subscription and how many times it was delivered (this time
/// included).
pub(super) struct Delivered<'a> {
    pub(super) subscription: &'a Subscription,
    pub(super) entry: StreamEntry,
    pub(super) deliveries: u64,
}

/// Runs a batch from the entries read to the figures recorded: decode → apply (one
/// transaction per lane, once no batch ahead writes its orders) → verdicts → settle → record,
/// its entries kept fresh in the pending list all along.
/// Returns early only when shutdown interrupts a retry: the entries then stay pending, to be
/// read again or claimed.
pub(super) async fn run_batch(w: &Worker, read: ReadBatch, ticket: Ticket, shutdown: &Shutdown) {
    let (started, redis) = (Instant::now(), w.on_redis_side());
    let _fresh = keep_fresh(w, &read); // Until the batch is done with, settled or not.
    let max = u64::from(w.config.max_deliveries);
    let Some(batch) = delivered(&redis, &w.subscriptions, read, shutdown).await else {
        return;
    };
    let order_ids = w.tables.orders.order_ids();
    let (decoded, spans) = decode(&batch.entries, w.config.max_entry_bytes, order_ids);
    let admitted: Vec<_> = (batch.entries.iter().zip(decoded))
        .map(|(entry, decoded)| verdict::admission(decoded, entry.deliveries, max))
        .collect();
    let events = admitted_events(&batch.entries, &admitted, &spans);
    traced::log_events(&events);
    ticket.enter(orders_of(&events)).await;
    let Some(applied) = apply::in_lanes(&w.store(), &events, shutdown).await else {
        return;
    };
    traced::log_applied(&events, &applied);
    let verdicts = verdicts(&batch.entries, &admitted, &applied.outcomes, max);
    traced::record_verdicts(&verdicts, &spans, &events, &applied.outcomes);
    if settle::settle(&redis, &batch, &verdicts, &spans, shutdown)
        .await
        .is_none()
    {
        return; // Committed but not acked: read again later, then reported as duplicates.
    }
    let settled = record(&batch, &events, &applied, &verdicts, started);
    w.recorder.settled(&settled);
}

/// Keeps the entries read fresh in the pending list from now until the guard is dropped.
fn keep_fresh(w: &Worker, read: &ReadBatch) -> KeptFresh {
    let ids = read
        .ids()
        .map(|(source, id)| (&w.subscriptions[source].stream, id));
    let held = by_stream(ids).into_iter();
    let held =
        held.map(|(stream, ids)| (stream.clone(), ids.into_iter().map(str::to_owned).collect()));
    let (redis, consumer) = (w.redis.clone(), w.consumer.clone());
    KeptFresh::start(redis, consumer, held.collect(), w.keep_alive_period())
}

/// `items` by stream, streams in the order first named: a command names one stream.
pub(super) fn by_stream<'s, T>(
    items: impl IntoIterator<Item = (&'s StreamConfig, T)>,
) -> Vec<(&'s StreamConfig, Vec<T>)> {
    let mut grouped: Vec<(&StreamConfig, Vec<T>)> = Vec::new();
    for (stream, item) in items {
        match grouped.iter_mut().find(|(s, _)| std::ptr::eq(*s, stream)) {
            Some((_, items)) => items.push(item),
            None => grouped.push((stream, vec![item])),
        }
    }
    grouped
}

/// The batch's entries with their subscriptions and delivery counts (looked up for a batch
/// read from a pending list), and the ids whose entry was deleted. `None` when shutdown
/// interrupts the lookup: nothing was done, the entries stay pending.
async fn delivered<'a>(
    redis: &OnRedis<'_>,
    subscriptions: &'a [Subscription],
    read: ReadBatch,
    shutdown: &Shutdown,
) -> Option<Batch<'a>> {
    let mut counts = Vec::new();
    if read.redelivered {
        let ids = read
            .ids()
            .map(|(source, id)| (&subscriptions[source].stream, id));
        for (stream, ids) in by_stream(ids) {
            let counting = until_ok("reading delivery counts", redis.health, shutdown, || {
                redis.run(async |conn| delivery_counts(conn, stream, &ids).await)
            });
            counts.push((stream, counting.await?));
        }
    }
    let entries = (read.entries.into_iter())
        .map(|entry| {
            let subscription = &subscriptions[entry.source];
            let counted = counts
                .iter()
                .find(|(stream, _)| std::ptr::eq(*stream, &subscription.stream))
                .and_then(|(_, counted)| counted.get(&entry.id));
            Delivered {
                subscription,
                deliveries: counted.copied().unwrap_or(1),
                entry,
            }
        })
        .collect();
    let deleted = (read.deleted.into_iter())
        .map(|(source, id)| (&subscriptions[source], id))
        .collect();
    Some(Batch { entries, deleted })
}

/// Decodes every entry (the envelope opened once) and makes its span, which joins its
/// publisher's trace even when the payload did not decode.
fn decode(
    entries: &[Delivered<'_>],
    max_bytes: usize,
    order_ids: OrderIds,
) -> (Vec<Result<Event, crate::envelope::DecodeError>>, Vec<Span>) {
    entries
        .iter()
        .map(|delivered| {
            let (subscription, entry) = (delivered.subscription, &delivered.entry);
            let decoded = topics::decode(subscription.topic, &entry.fields, max_bytes, order_ids);
            let span = traced::entry_span(subscription, entry, &decoded);
            (decoded.map_err(|undecodable| undecodable.error), span)
        })
        .unzip()
}

/// The events let through, with their entries and spans, in stream order.
fn admitted_events<'a>(
    entries: &'a [Delivered<'a>],
    admitted: &'a [Result<Event, Refusal>],
    spans: &'a [Span],
) -> Vec<Admitted<'a>> {
    let each = entries.iter().zip(admitted).zip(spans);
    each.filter_map(|((delivered, admitted), span)| {
        Some(Admitted {
            entry: &delivered.entry,
            event: admitted.as_ref().ok()?,
            span,
        })
    })
    .collect()
}

/// The orders the events write. Two batches that share none touch disjoint rows, so they may
/// be applied at once without changing the order in which any order's events apply.
fn orders_of(events: &[Admitted<'_>]) -> HashSet<String> {
    let orders = events.iter().map(|a| a.event.change.order_id().to_owned());
    orders.collect()
}

/// Every entry's verdict: a refused one is dead-lettered, an admitted one's follows from its
/// event's outcome (`outcomes` in the order of the admitted events).
fn verdicts(
    entries: &[Delivered<'_>],
    admitted: &[Result<Event, Refusal>],
    outcomes: &[Outcome],
    max_deliveries: u64,
) -> Vec<Verdict> {
    let mut outcomes = outcomes.iter();
    let each = entries.iter().zip(admitted);
    each.map(|(delivered, admitted)| match admitted {
        Err(refusal) => Verdict::DeadLetter(refusal.clone()),
        Ok(event) => match outcomes.next() {
            Some(outcome) => {
                let order_id = event.change.order_id();
                verdict::verdict(outcome, order_id, delivered.deliveries, max_deliveries)
            }
            // Every event has an outcome; one without would stay pending.
            None => Verdict::Pending,
        },
    })
    .collect()
}

/// What the batch did, by name and number, for the metrics and the totals.
fn record<'a>(
    batch: &Batch<'_>,
    events: &'a [Admitted<'a>],
    applied: &'a Applied,
    verdicts: &[Verdict],
    started: Instant,
) -> Settled<'a> {
    let (entries, deleted) = (&batch.entries, &batch.deleted);
    let topic = |delivered: &Delivered<'_>| delivered.subscription.topic.name();
    let dead_letters = entries
        .iter()
        .zip(verdicts)
        .filter_map(|(delivered, fate)| match fate {
            Verdict::DeadLetter(refusal) => Some((topic(delivered), refusal.error_kind())),
            _ => None,
        });
    Settled {
        entries: (entries.iter().map(topic))
            .chain(deleted.iter().map(|(s, _)| s.topic.name()))
            .collect(),
        deleted: deleted.len(),
        outcomes: (events.iter().zip(&applied.outcomes))
            .map(|(a, outcome)| (a.event.topic.name(), outcome.as_str()))
            .collect(),
        transitions: applied
            .transitions
            .iter()
            .map(|t| t.reason.as_str())
            .collect(),
        recomputed: applied.recomputed.len() + applied.changed_outside.len(),
        dead_letters: dead_letters.collect(),
        seconds: (applied.committed_at - started).as_secs_f64(),
        committed: (
            applied.committed_at,
            events.iter().map(|a| a.entry.id.as_str()).collect(),
        ),
    }
}
