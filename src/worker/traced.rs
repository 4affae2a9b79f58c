//! A batch's spans and log lines about its entries: each entry's `process` span (made when it
//! is decoded, ended when it is settled) holds the lines about it, so they carry its trace;
//! a failed apply is logged once per batch ([`Failing`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Span;

use super::apply::{Admitted, Applied};
use crate::config::Subscription;
use crate::store::StoreError;
use crate::stream::StreamEntry;
use crate::telemetry::spans::{self, Entry};
use crate::telemetry::{UPDATED_ORDER, WITHDREW_CHANGE};
use crate::topics::{Event, Outcome, Undecodable};
use crate::verdict::Verdict;

/// The span of an entry of `subscription`, child of its publisher's span: an entry that did
/// not decode still joins its publisher's trace when its envelope names one.
pub(super) fn entry_span(
    subscription: &Subscription,
    entry: &StreamEntry,
    decoded: &Result<Event, Undecodable>,
) -> Span {
    let (event, trace) = match decoded {
        Ok(event) => (
            Some((event.event_id.as_str(), event.change.order_id())),
            &event.trace,
        ),
        Err(undecodable) => (None, &undecodable.trace),
    };
    spans::process(&Entry {
        stream: &subscription.stream.stream,
        group: Some(&subscription.stream.group),
        entry_id: &entry.id,
        event,
        trace,
    })
}

/// Puts each entry's fate on its span: the outcome of its event, or the dead letter's reason.
pub(super) fn record_verdicts(
    verdicts: &[Verdict],
    spans: &[Span],
    events: &[Admitted<'_>],
    outcomes: &[Outcome],
) {
    for (admitted, outcome) in events.iter().zip(outcomes) {
        spans::outcome(admitted.span, outcome.as_str());
    }
    for (fate, span) in verdicts.iter().zip(spans) {
        if let Verdict::DeadLetter(refusal) = fate {
            spans::dead_lettered(span, refusal.to_string());
        }
    }
}

/// The per-event log lines, each in its event's span.
pub(super) fn log_events(events: &[Admitted<'_>]) {
    for admitted in events {
        admitted
            .span
            .in_scope(|| tracing::info!("{}", admitted.event.change.describe()));
    }
}

/// What the transaction did that operators read in the log: conflicts, recomputed orders and
/// every status change.
pub(super) fn log_applied(events: &[Admitted<'_>], applied: &Applied) {
    for (admitted, outcome) in events.iter().zip(&applied.outcomes) {
        if *outcome == Outcome::Conflict {
            let (entry, event) = (admitted.entry, admitted.event);
            tracing::warn!(entry_id = %entry.id, event_id = %event.event_id, order_id = event.change.order_id(),
                "event contradicts its order's state (a payment for a closed order?): nothing moved; someone must resolve it (refund)");
        }
    }
    for order_id in &applied.recomputed {
        tracing::info!(order_id, "recomputed the order from its recorded events in stream order: an event older than one applied to it arrived late");
    }
    for order_id in &applied.changed_outside {
        tracing::warn!(order_id, "a late event was applied to the order as it stands, not recomputed: its status was changed outside this worker since the worker last moved it, and that change stands");
    }
    log_status_changes(&applied.withdrawn, &applied.transitions, events);
}

/// The history rows withdrawn, then written, each in the span of the event that made it (the
/// words are the ones the order service's operators know).
fn log_status_changes(
    withdrawn: &[crate::store::Transition],
    written: &[crate::store::Transition],
    events: &[Admitted<'_>],
) {
    if withdrawn.is_empty() && written.is_empty() {
        return;
    }
    let spans: HashMap<&str, &Span> = events
        .iter()
        .map(|admitted| (admitted.event.event_id.as_str(), admitted.span))
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
    events: &'a [Admitted<'a>],
    logged: AtomicBool,
}

impl<'a> Failing<'a> {
    pub(super) fn new(events: &'a [Admitted<'a>]) -> Self {
        Self {
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

    /// The topics of the batch, each once, comma-separated.
    fn topics(&self) -> String {
        let names: BTreeSet<&str> = self.events.iter().map(|a| a.event.topic.name()).collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    }
}
