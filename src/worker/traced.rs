//! A batch's spans and log lines about its entries: each entry's `process` span (made when it
//! is decoded, ended when it is settled) holds the lines about it, so they carry its trace;
//! a failed apply is logged once per batch ([`Failing`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Span;

use super::Worker;
use crate::envelope;
use crate::store::{StoreError, Transition};
use crate::stream::StreamEntry;
use crate::telemetry::spans::{self, Entry};
use crate::telemetry::{UPDATED_ORDER, WITHDREW_CHANGE};
use crate::topics::{Event, Outcome};
use crate::verdict::{Refusal, Verdict};

impl Worker {
    /// The span of `entry`, child of its publisher's span. An entry that did not decode still
    /// joins its publisher's trace when its envelope names one.
    pub(super) fn entry_span(&self, entry: &StreamEntry, decoded: &Result<Event, Refusal>) -> Span {
        let stream = &self.subscriptions[entry.source].stream;
        let refused;
        let (event, trace) = match decoded {
            Ok(event) => (
                Some((event.event_id.as_str(), event.change.order_id())),
                &event.trace,
            ),
            Err(_) => {
                refused = envelope::open(&entry.fields, self.config.max_entry_bytes)
                    .map(|opened| opened.trace)
                    .unwrap_or_default();
                (None, &refused)
            }
        };
        spans::process(&Entry {
            stream: &stream.stream,
            group: Some(&stream.group),
            entry_id: &entry.id,
            event,
            trace,
        })
    }
}

/// Puts each entry's fate on its span: the outcome of its event, or the dead letter's reason.
pub(super) fn record_verdicts<'a>(
    verdicts: &[(&StreamEntry, Verdict)],
    spans: &[Span],
    outcomes: impl IntoIterator<Item = (&'a Span, &'a Outcome)>,
) {
    for (span, outcome) in outcomes {
        spans::outcome(span, outcome.as_str());
    }
    for ((_, fate), span) in verdicts.iter().zip(spans) {
        if let Verdict::DeadLetter(refusal) = fate {
            spans::dead_lettered(span, refusal.to_string());
        }
    }
}

/// The per-event log line, in the event's span.
pub(super) fn log_event(span: &Span, event: &Event) {
    span.in_scope(|| tracing::info!("{}", event.change.describe()));
}

/// The history rows withdrawn, then written, each in the span of the event that made it (the
/// words are the ones the order service's operators know).
pub(super) fn log_status_changes<'a>(
    withdrawn: &[Transition],
    written: &[Transition],
    events: impl IntoIterator<Item = (&'a Event, &'a Span)>,
) {
    if withdrawn.is_empty() && written.is_empty() {
        return;
    }
    let spans: HashMap<&str, &Span> = events
        .into_iter()
        .map(|(event, span)| (event.event_id.as_str(), span))
        .collect();
    let changes = withdrawn
        .iter()
        .map(|t| (WITHDREW_CHANGE, t))
        .chain(written.iter().map(|t| (UPDATED_ORDER, t)));
    for (what, t) in changes {
        let log = || {
            tracing::info!(
                event_id = %t.event_id,
                "{what}: order_id={}, old_status={}, new_status={}",
                t.order_id,
                t.from,
                t.to
            );
        };
        match spans.get(t.event_id.as_str()) {
            Some(span) => span.in_scope(log),
            // A recomputed order's rows may come from its earlier events.
            None => log(),
        }
    }
}

/// A batch's failed attempts to apply, across its lanes: the first is logged in words the
/// operators' greps know (`error.*<topic>`, "failed to update order status"), once per batch, as
/// the outage line is once per server; later attempts only at debug (in [`crate::retry`]).
/// The batch's topics are named only when an attempt fails: nothing is added to a batch that
/// applies.
pub(super) struct Failing<'a> {
    worker: &'a Worker,
    events: &'a [(&'a StreamEntry, &'a Event)],
    logged: AtomicBool,
}

impl<'a> Failing<'a> {
    pub(super) fn new(worker: &'a Worker, events: &'a [(&'a StreamEntry, &'a Event)]) -> Self {
        Self {
            worker,
            events,
            logged: AtomicBool::new(false),
        }
    }

    pub(super) fn failed(&self, error: &StoreError) {
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "failed to update order status: error applying {} events (will retry): {error:#}",
                self.topics()
            );
        }
    }

    /// The topics of the batch, in subscription order: "fulfillment.status_changed, payment.confirmed".
    fn topics(&self) -> String {
        let sources: BTreeSet<usize> = self.events.iter().map(|(entry, _)| entry.source).collect();
        let names: Vec<&str> = sources
            .into_iter()
            .map(|source| self.worker.subscriptions[source].topic.name())
            .collect();
        names.join(", ")
    }
}
