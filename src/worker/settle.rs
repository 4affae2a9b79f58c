//! Settling a batch: each entry as its verdict says, in one MULTI per stream, under the
//! batch's `ack` span.

use tracing::Instrument;

use super::batch::Prepared;
use super::Worker;
use crate::retry::until_ok;
use crate::shutdown::Shutdown;
use crate::stream::{settle, DeadLetter, Settlement, StreamEntry};
use crate::telemetry::spans::{self, Step};
use crate::verdict::Verdict;

impl Worker {
    /// Carries out the verdicts: dead-letters and acks in one MULTI per stream (deleted entries
    /// are acked too), leaves the rest pending. `None` when shutdown interrupts the retries.
    pub(super) async fn settle(
        &self,
        prepared: &Prepared,
        verdicts: &[(&StreamEntry, Verdict)],
        shutdown: &Shutdown,
    ) -> Option<()> {
        let mut settlements: Vec<Settlement<'_>> = self
            .streams()
            .map(|stream| Settlement {
                stream,
                ack_ids: Vec::new(),
                dead: Vec::new(),
            })
            .collect();
        for (source, id) in &prepared.batch.deleted {
            tracing::warn!(entry_id = %id, "pending entry was deleted from the stream: acking it");
            settlements[*source].ack_ids.push(id);
        }
        for (entry, fate) in verdicts {
            let delivery_count = prepared.counts.of(entry);
            let settlement = &mut settlements[entry.source];
            match fate {
                Verdict::Ack => settlement.ack_ids.push(&entry.id),
                Verdict::DeadLetter(refusal) => {
                    // Poison input is expected: WARN, in the words of the operators' greps.
                    let topic = self.subscriptions[entry.source].topic.name();
                    tracing::warn!(entry_id = %entry.id, delivery_count, error = %refusal,
                        "failed to update order status: error in a {topic} entry that can never apply: dead-lettering it");
                    settlement.dead.push(DeadLetter {
                        entry,
                        error: refusal.to_string(),
                        delivery_count,
                    });
                }
                Verdict::Pending | Verdict::Apply => tracing::warn!(
                    entry_id = %entry.id,
                    delivery_count,
                    "order does not exist: leaving the entry pending, to be retried once it is idle"
                ),
            }
        }
        // Each stream retried on its own: one whose MULTI went through is never sent again
        // (its dead letters would be copied twice) because another's failed.
        let consumer = &self.consumer;
        let unsettled = settlements
            .iter()
            .filter(|s| !s.ack_ids.is_empty() || !s.dead.is_empty());
        let acking = unsettled.map(|settlement| {
            until_ok("acking the batch", &self.redis_health, shutdown, || {
                self.on_redis(async |conn| settle(conn, consumer, settlement).await)
            })
        });
        let acking = async {
            let settled = futures_util::future::join_all(acking).await;
            settled.into_iter().all(|done| done.is_some()).then_some(())
        };
        let dead = settlements.iter().map(|s| s.dead.len()).sum::<usize>();
        let attributes = [
            ("order_worker.entries", prepared.spans.len() as i64),
            ("order_worker.dead_lettered", dead as i64),
        ];
        acking
            .instrument(spans::for_entries(Step::Ack, &attributes, &prepared.spans))
            .await
    }
}
