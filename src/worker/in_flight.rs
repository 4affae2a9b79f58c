//! The batches being worked on at once. Each takes a [`Ticket`] when it is read; once decoded it
//! enters with the orders it writes, and waits until no batch read before it writes any of
//! them. So the rows two transactions touch are disjoint and every order's events still apply
//! one transaction after another, in stream order; the rest overlaps: one batch is decoded
//! while another applies, commits or is acked.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;

/// Batches in flight, at most `limit` at once.
pub(super) struct InFlight<'a> {
    batches: FuturesUnordered<BoxFuture<'a, ()>>,
    gate: Arc<Gate>,
    limit: usize,
}

impl<'a> InFlight<'a> {
    /// At most `limit` batches at once (at least one).
    pub(super) fn new(limit: usize) -> Self {
        Self {
            batches: FuturesUnordered::new(),
            gate: Arc::default(),
            limit: limit.max(1),
        }
    }

    /// The place in line of the batch read next: take it in read order.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket::new(&self.gate)
    }

    /// Starts `batch`. Call [`InFlight::wait_for_slot`] first.
    pub(super) fn push(&mut self, batch: impl Future<Output = ()> + Send + 'a) {
        self.batches.push(Box::pin(batch));
    }

    /// Waits, the batches in flight going on, until a slot is free.
    pub(super) async fn wait_for_slot(&mut self) {
        while self.batches.len() >= self.limit {
            self.batches.next().await;
        }
    }

    /// Waits until every batch in flight is done.
    pub(super) async fn drain(&mut self) {
        while self.batches.next().await.is_some() {}
    }

    /// Runs `work` to its end while the batches in flight go on (a read).
    pub(super) async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                Some(()) = self.batches.next(), if !self.batches.is_empty() => {}
            }
        }
    }
}

/// The line of batches: each ticket's orders once known (`None` while it decodes).
#[derive(Default)]
struct Gate {
    line: Mutex<BTreeMap<u64, Option<HashSet<String>>>>,
    next: AtomicU64,
    changed: Notify,
}

impl Gate {
    fn line(&self) -> MutexGuard<'_, BTreeMap<u64, Option<HashSet<String>>>> {
        self.line
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether ticket `number`, writing `orders`, may apply: every ticket ahead of it said
    /// which orders it writes, and none of them is one of these.
    fn clear(&self, number: u64, orders: &HashSet<String>) -> bool {
        let line = self.line();
        line.range(..number).all(|(_, theirs)| {
            theirs
                .as_ref()
                .is_some_and(|theirs| theirs.is_disjoint(orders))
        })
    }
}

/// A batch's place in line; leaving (dropping it) lets the batches behind it go on.
pub(super) struct Ticket {
    gate: Arc<Gate>,
    number: u64,
}

impl Ticket {
    /// A line of its own: for a batch run while nothing else is in flight.
    pub(super) fn alone() -> Self {
        Self::new(&Arc::default())
    }

    fn new(gate: &Arc<Gate>) -> Self {
        let number = gate.next.fetch_add(1, Ordering::Relaxed);
        gate.line().insert(number, None);
        Self {
            gate: Arc::clone(gate),
            number,
        }
    }

    /// Says the batch writes `orders`, then waits until no batch ahead of it writes any of them.
    pub(super) async fn enter(&self, orders: HashSet<String>) {
        self.gate.line().insert(self.number, Some(orders.clone()));
        // Batches behind this one may have waited only for it to say.
        self.gate.changed.notify_waiters();
        loop {
            let changed = self.gate.changed.notified();
            if self.gate.clear(self.number, &orders) {
                return;
            }
            changed.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.line().remove(&self.number);
        self.gate.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// Two batches' places in line, in read order.
    fn two_in_line() -> (Ticket, Ticket) {
        let in_flight = InFlight::new(2);
        (in_flight.ticket(), in_flight.ticket())
    }

    fn orders(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn a_batch_of_other_orders_enters_at_once() {
        let (first, second) = two_in_line();
        assert!(first.enter(orders(&["a", "b"])).now_or_never().is_some());
        assert!(second.enter(orders(&["c"])).now_or_never().is_some());
    }

    #[test]
    fn a_batch_sharing_an_order_waits_until_the_one_ahead_is_done() {
        let (first, second) = two_in_line();
        assert!(first.enter(orders(&["a", "b"])).now_or_never().is_some());
        let mut waiting = Box::pin(second.enter(orders(&["b", "c"])));
        assert!((&mut waiting).now_or_never().is_none());
        drop(first);
        assert!(waiting.now_or_never().is_some());
    }

    #[test]
    fn a_batch_waits_for_one_ahead_that_has_not_said_its_orders() {
        let (first, second) = two_in_line();
        let mut waiting = Box::pin(second.enter(orders(&["c"])));
        assert!((&mut waiting).now_or_never().is_none());
        assert!(first.enter(orders(&["a"])).now_or_never().is_some());
        assert!(waiting.now_or_never().is_some());
    }

    #[test]
    fn a_batch_never_waits_for_one_behind_it() {
        let (first, second) = two_in_line();
        assert!(second.enter(orders(&["a"])).now_or_never().is_none());
        assert!(first.enter(orders(&["a"])).now_or_never().is_some());
    }

    #[test]
    fn no_more_than_the_limit_are_in_flight() {
        let mut in_flight = InFlight::new(1);
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        in_flight.push(async move {
            let _ = held.await;
        });
        assert!(in_flight.wait_for_slot().now_or_never().is_none());
        drop(release);
        assert!(in_flight.wait_for_slot().now_or_never().is_some());
    }

    #[test]
    fn work_alongside_lets_the_batches_in_flight_finish() {
        let mut in_flight = InFlight::new(2);
        in_flight.push(async {});
        assert_eq!(in_flight.alongside(async { 7 }).now_or_never(), Some(7));
        assert!(in_flight.drain().now_or_never().is_some());
    }
}
