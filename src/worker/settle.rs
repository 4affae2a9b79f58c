//! Settling a batch: each entry as its verdict says, in one MULTI per stream, under the
//! batch's `ack` span.

use futures_util::future::join_all;
use tracing::{Instrument, Span};

use super::batch::Batch;
use super::OnRedis;
use crate::config::StreamConfig;
use crate::retry::until_ok;
use crate::shutdown::Shutdown;
use crate::stream::{settle as settle_stream, DeadLetter, Settlement};
use crate::telemetry::spans::{self, Step};
use crate::verdict::Verdict;

/// Carries out the verdicts (one per entry, in order): dead-letters and acks in one MULTI per
/// stream, acks the ids whose entry was deleted, leaves the rest pending. `None` when shutdown
/// interrupts the retries.
pub(super) async fn settle(
    redis: &OnRedis<'_>,
    batch: &Batch<'_>,
    verdicts: &[Verdict],
    spans: &[Span],
    shutdown: &Shutdown,
) -> Option<()> {
    let mut settlements: Vec<Settlement<'_>> = Vec::new();
    for (subscription, id) in &batch.deleted {
        tracing::warn!(entry_id = %id, "pending entry was deleted from the stream: acking it");
        on(&mut settlements, &subscription.stream).ack_ids.push(id);
    }
    for (delivered, fate) in batch.entries.iter().zip(verdicts) {
        let (entry, delivery_count) = (&delivered.entry, delivered.deliveries);
        let settlement = on(&mut settlements, &delivered.subscription.stream);
        match fate {
            Verdict::Ack => settlement.ack_ids.push(&entry.id),
            Verdict::DeadLetter(refusal) => {
                // Poison input is expected: WARN, in the words of the operators' greps.
                let topic = delivered.subscription.topic.name();
                tracing::warn!(entry_id = %entry.id, delivery_count, error = %refusal,
                    "failed to update order status: error in a {topic} entry that can never apply: dead-lettering it");
                settlement.dead.push(DeadLetter {
                    entry,
                    error: refusal.to_string(),
                    delivery_count,
                });
            }
            Verdict::Pending => tracing::warn!(
                entry_id = %entry.id,
                delivery_count,
                "order does not exist: leaving the entry pending, to be retried once it is idle"
            ),
        }
    }
    // Each stream retried on its own: one whose MULTI went through is never sent again (its
    // dead letters would be copied twice) because another's failed.
    settlements.retain(|s| !s.ack_ids.is_empty() || !s.dead.is_empty());
    let acking = settlements.iter().map(|settlement| {
        until_ok("acking the batch", redis.health, shutdown, || {
            redis.run(async |conn| settle_stream(conn, redis.consumer, settlement).await)
        })
    });
    let dead = settlements.iter().map(|s| s.dead.len()).sum::<usize>();
    let attributes = [
        ("order_worker.entries", spans.len() as i64),
        ("order_worker.dead_lettered", dead as i64),
    ];
    let settled = join_all(acking)
        .instrument(spans::for_entries(Step::Ack, &attributes, spans))
        .await;
    settled.into_iter().all(|done| done.is_some()).then_some(())
}

/// The settlement of `stream`, added the first time it is named.
fn on<'a, 's>(
    settlements: &'s mut Vec<Settlement<'a>>,
    stream: &'a StreamConfig,
) -> &'s mut Settlement<'a> {
    let at = match settlements
        .iter()
        .position(|s| std::ptr::eq(s.stream, stream))
    {
        Some(at) => at,
        None => {
            settlements.push(Settlement {
                stream,
                ack_ids: Vec::new(),
                dead: Vec::new(),
            });
            settlements.len() - 1
        }
    };
    &mut settlements[at]
}
