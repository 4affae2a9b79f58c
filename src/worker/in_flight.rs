//! The batches being applied at once. A batch joins only when it writes none of the orders the
//! others write, so the rows two transactions touch are disjoint and every order's events still
//! apply one transaction after another, in stream order; the rest overlaps: one batch commits
//! while the next is decoded, applied and acked.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

/// Batches in flight, each with the orders it writes.
pub(super) struct InFlight<'a> {
    batches: FuturesUnordered<BoxFuture<'a, u64>>,
    orders: HashMap<u64, HashSet<String>>,
    next_token: u64,
    limit: usize,
}

impl<'a> InFlight<'a> {
    /// At most `limit` batches at once (at least one).
    pub(super) fn new(limit: usize) -> Self {
        Self {
            batches: FuturesUnordered::new(),
            orders: HashMap::new(),
            next_token: 0,
            limit: limit.max(1),
        }
    }

    /// Starts `batch`, which writes `orders`. Call [`InFlight::make_room`] first.
    pub(super) fn push(
        &mut self,
        orders: HashSet<String>,
        batch: impl Future<Output = ()> + Send + 'a,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.orders.insert(token, orders);
        self.batches.push(Box::pin(async move {
            batch.await;
            token
        }));
    }

    /// Waits, the batches in flight going on, until a slot is free and none of them writes
    /// any of `orders`.
    pub(super) async fn make_room(&mut self, orders: &HashSet<String>) {
        while self.batches.len() >= self.limit
            || self
                .orders
                .values()
                .any(|theirs| !theirs.is_disjoint(orders))
        {
            self.next_done().await;
        }
    }

    /// Waits, the batches in flight going on, until a slot is free.
    pub(super) async fn wait_for_slot(&mut self) {
        self.make_room(&HashSet::new()).await;
    }

    /// Waits until every batch in flight is done.
    pub(super) async fn drain(&mut self) {
        while !self.batches.is_empty() {
            self.next_done().await;
        }
    }

    /// Runs `work` to its end while the batches in flight go on (a read, a decode).
    pub(super) async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                Some(token) = self.batches.next(), if !self.batches.is_empty() => {
                    self.orders.remove(&token);
                }
            }
        }
    }

    async fn next_done(&mut self) {
        if let Some(token) = self.batches.next().await {
            self.orders.remove(&token);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    fn orders(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    /// A batch in flight until the returned sender fires (or is dropped).
    fn push_held(in_flight: &mut InFlight<'_>, ids: &[&str]) -> oneshot::Sender<()> {
        let (release, held) = oneshot::channel::<()>();
        in_flight.push(orders(ids), async move {
            let _ = held.await;
        });
        release
    }

    #[test]
    fn a_batch_of_other_orders_joins_at_once() {
        let mut in_flight = InFlight::new(2);
        let _held = push_held(&mut in_flight, &["a", "b"]);
        assert!(in_flight
            .make_room(&orders(&["c"]))
            .now_or_never()
            .is_some());
    }

    #[test]
    fn a_batch_sharing_an_order_waits_until_the_other_is_done() {
        let mut in_flight = InFlight::new(2);
        let held = push_held(&mut in_flight, &["a", "b"]);
        assert!(in_flight
            .make_room(&orders(&["b", "c"]))
            .now_or_never()
            .is_none());
        held.send(()).expect("still in flight");
        assert!(in_flight
            .make_room(&orders(&["b", "c"]))
            .now_or_never()
            .is_some());
    }

    #[test]
    fn no_more_than_the_limit_are_in_flight() {
        let mut in_flight = InFlight::new(1);
        let held = push_held(&mut in_flight, &["a"]);
        assert!(in_flight
            .make_room(&orders(&["z"]))
            .now_or_never()
            .is_none());
        drop(held);
        assert!(in_flight
            .make_room(&orders(&["z"]))
            .now_or_never()
            .is_some());
    }

    #[test]
    fn work_alongside_lets_the_batches_in_flight_finish() {
        let mut in_flight = InFlight::new(2);
        let held = push_held(&mut in_flight, &["a"]);
        held.send(()).expect("still in flight");
        assert_eq!(in_flight.alongside(async { 7 }).now_or_never(), Some(7));
        assert!(in_flight.drain().now_or_never().is_some());
    }
}
