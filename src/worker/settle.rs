//! Settling a batch: each entry as its verdict says, in one MULTI per stream, under the
//! batch's `ack` span.

use futures_util::future::join_all;
use tracing::{Instrument, Span};

use super::batch::{by_stream, Batch, Delivered};
use super::OnRedis;
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
    let deleted = batch.deleted.iter().map(|(subscription, id)| {
        tracing::warn!(entry_id = %id, "pending entry was deleted from the stream: acking it");
        (&subscription.stream, Fate::Ack(id.as_str()))
    });
    let fates = batch.entries.iter().zip(verdicts);
    let fates = fates.filter_map(|(delivered, verdict)| {
        Some((&delivered.subscription.stream, fate(delivered, verdict)?))
    });
    // Only streams with something to settle; each retried on its own: one whose MULTI went
    // through is never sent again (its dead letters would be copied twice) because another's
    // failed.
    let settlements: Vec<Settlement<'_>> = by_stream(deleted.chain(fates))
        .into_iter()
        .map(|(stream, fates)| {
            let mut settlement = Settlement {
                stream,
                ack_ids: Vec::new(),
                dead: Vec::new(),
            };
            for fate in fates {
                match fate {
                    Fate::Ack(id) => settlement.ack_ids.push(id),
                    Fate::Dead(dead) => settlement.dead.push(dead),
                }
            }
            settlement
        })
        .collect();
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

/// What settling does with one entry on its stream.
enum Fate<'a> {
    Ack(&'a str),
    Dead(DeadLetter<'a>),
}

/// The entry's fate as its verdict says, logged as operators grep it; `None` leaves it pending.
fn fate<'a>(delivered: &'a Delivered<'_>, verdict: &Verdict) -> Option<Fate<'a>> {
    let (entry, delivery_count) = (&delivered.entry, delivered.deliveries);
    match verdict {
        Verdict::Ack => Some(Fate::Ack(&entry.id)),
        Verdict::DeadLetter(refusal) => {
            // Poison input is expected: WARN, in the words of the operators' greps.
            let topic = delivered.subscription.topic.name();
            tracing::warn!(entry_id = %entry.id, delivery_count, error = %refusal,
                "failed to update order status: error in a {topic} entry that can never apply: dead-lettering it");
            Some(Fate::Dead(DeadLetter {
                entry,
                error: refusal.to_string(),
                delivery_count,
            }))
        }
        Verdict::Pending => {
            tracing::warn!(
                entry_id = %entry.id,
                delivery_count,
                "order does not exist: leaving the entry pending, to be retried once it is idle"
            );
            None
        }
    }
}
