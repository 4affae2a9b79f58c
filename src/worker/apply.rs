//! Applying a batch's events: split into lanes by order, each lane one transaction retried
//! until it commits.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tracing::{Instrument, Span};

use super::traced::Failing;
use crate::retry::{until_ok, Dependency};
use crate::shutdown::Shutdown;
use crate::store::{apply_batch, DbPool, Incoming, Plan, StoreError, Tables, Transition};
use crate::stream::StreamEntry;
use crate::telemetry::spans::{self, Step};
use crate::topics::{Event, Outcome};

/// An event let through to be applied, with its entry and span.
pub(super) struct Admitted<'a> {
    pub(super) entry: &'a StreamEntry,
    pub(super) event: &'a Event,
    pub(super) span: &'a Span,
}

/// Where and how events are applied.
pub(super) struct Store<'a> {
    pub(super) db: &'a DbPool,
    pub(super) tables: &'a Tables,
    pub(super) health: &'a Dependency,
    /// Transactions at once, each a lane of orders (`CONCURRENCY`).
    pub(super) lanes: usize,
    /// How long one attempt may take (`APPLY_TIMEOUT`).
    pub(super) timeout: Duration,
}

/// What applying a batch's events did: one outcome per event, in order, the history rows
/// written and withdrawn, the orders recomputed for a late event (or, changed by someone
/// else, not), and when the last lane committed.
pub(super) struct Applied {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) transitions: Vec<Transition>,
    pub(super) withdrawn: Vec<Transition>,
    pub(super) recomputed: Vec<String>,
    pub(super) changed_outside: Vec<String>,
    pub(super) committed_at: Instant,
}

/// Splits the events into lanes by order id, applies the lanes at once, each in its own
/// transaction, and puts the outcomes back in event order. All events of one order share a
/// lane, in stream order, so no order is ever written by two transactions at once and the
/// lanes never wait on each other's locks. `None` when shutdown stops a lane: nothing is acked;
/// what the others committed comes back as duplicates.
pub(super) async fn in_lanes(
    store: &Store<'_>,
    events: &[Admitted<'_>],
    shutdown: &Shutdown,
) -> Option<Applied> {
    let lanes = lanes(events, store.lanes);
    let failing = &Failing::new(events);
    let plans = join_all(lanes.iter().map(|lane| {
        let incoming: Vec<Incoming<'_>> = lane
            .iter()
            .map(|&i| Incoming {
                entry_id: &events[i].entry.id,
                event: events[i].event,
            })
            .collect();
        let attributes = [("order_worker.events", lane.len() as i64)];
        let span = spans::for_entries(
            Step::Apply,
            &attributes,
            lane.iter().map(|&i| events[i].span),
        );
        async move {
            let plan = apply_lane(store, &incoming, failing, shutdown)
                .instrument(span.clone())
                .await;
            if let Some(plan) = &plan {
                spans::count(&span, "order_worker.statements", plan.statements);
            }
            plan
        }
    }))
    .await;
    merge(&lanes, plans, events.len())
}

/// The events' indexes by lane: at most `count` lanes, each order's events in one, in order.
fn lanes(events: &[Admitted<'_>], count: usize) -> Vec<Vec<usize>> {
    let count = count.max(1);
    let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, admitted) in events.iter().enumerate() {
        let mut hasher = DefaultHasher::new();
        admitted.event.change.order_id().hash(&mut hasher);
        lanes[(hasher.finish() % count as u64) as usize].push(index);
    }
    lanes.retain(|lane| !lane.is_empty());
    lanes
}

/// The lanes' plans as one: outcomes back in event order (`events` of them). `None` if a lane
/// was stopped by shutdown.
fn merge(lanes: &[Vec<usize>], plans: Vec<Option<Plan>>, events: usize) -> Option<Applied> {
    let committed_at = Instant::now();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; events];
    let mut applied = Applied {
        outcomes: Vec::new(),
        transitions: Vec::new(),
        withdrawn: Vec::new(),
        recomputed: Vec::new(),
        changed_outside: Vec::new(),
        committed_at,
    };
    for (lane, plan) in lanes.iter().zip(plans) {
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

/// Applies one lane, retrying until it commits. Each attempt is bounded: a connection stalled
/// by a network partition would otherwise hang the worker forever.
async fn apply_lane(
    store: &Store<'_>,
    incoming: &[Incoming<'_>],
    failing: &Failing<'_>,
    shutdown: &Shutdown,
) -> Option<Plan> {
    until_ok("applying a batch", store.health, shutdown, || async {
        let attempt = async {
            let started = Instant::now();
            let mut conn = store.db.get().await.map_err(StoreError::from)?;
            let checked_out = started.elapsed();
            let plan = apply_batch(&mut conn, store.tables, incoming).await;
            tracing::debug!(events = incoming.len(), ?checked_out, took = ?started.elapsed(), "applied");
            plan
        };
        // The connection of an attempt cut short is dropped, not reused.
        let applied = tokio::time::timeout(store.timeout, attempt)
            .await
            .unwrap_or(Err(StoreError::TimedOut(store.timeout)));
        applied.inspect_err(|error| failing.failed(error))
    })
    .await
}
