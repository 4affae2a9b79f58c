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
    /// Carries out the verdicts: dead-letters and acks in one MULTI (deleted entries are acked
    /// too), leaves the rest pending. `None` when shutdown interrupts the retries.
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
                    tracing::warn!(entry_id = %entry.id, delivery_count, error = %refusal, "dead-lettering an entry that can never apply");
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
        let consumer = &self.consumer;
        let acking = until_ok("acking the batch", &self.redis_health, shutdown, || {
            self.on_redis(async |conn| settle(conn, consumer, &settlements).await)
        });
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
