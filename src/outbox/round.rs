//! One round of the leader: the rows read turned into entries, the streams they go to taken
//! over first, then published stream by stream in id order, and each row marked published or
//! refused. A refused row's order's later rows in the round wait behind it, so an order's
//! events stay in order; other orders' rows go on.

use std::collections::HashSet;

use diesel_async::AsyncPgConnection;

use super::cloud_event::{self, Envelope, Outgoing};
use super::outage::Failure;
use super::publish::{self, Lease, Stream};
use super::rows::{self, Row};
use super::{instruments, Leases, Relay, Step};

impl Relay {
    /// Publishes `waiting`, after taking over the streams this leader has no lease on yet.
    pub(super) async fn step(
        &self,
        conn: &mut AsyncPgConnection,
        leases: &mut Leases,
        waiting: &[Row],
    ) -> Result<Step, Failure> {
        let envelope = Envelope::from(&self.settings);
        let mut ready = Vec::with_capacity(waiting.len());
        for row in waiting {
            match cloud_event::prepare(row, &self.source, &envelope) {
                Ok(outgoing) => ready.push(outgoing),
                Err(reason) => self.refuse(conn, row, None, &reason, true).await?,
            }
        }
        let mut new: Vec<&str> = ready
            .iter()
            .map(|outgoing| outgoing.stream)
            .filter(|stream| !leases.contains_key(*stream))
            .collect();
        if !new.is_empty() {
            new.sort_unstable();
            new.dedup();
            for stream in new {
                self.take_over(conn, leases, stream).await?;
            }
            return Ok(Step::TookOver);
        }
        self.publish_round(conn, leases, &ready).await?;
        Ok(Step::Published)
    }

    /// Publishes `ready` in id order, each run of rows to one stream in one script call. An
    /// entry Redis would refuse for its size is refused before it is sent.
    async fn publish_round(
        &self,
        conn: &mut AsyncPgConnection,
        leases: &Leases,
        ready: &[Outgoing<'_>],
    ) -> Result<(), Failure> {
        let mut held = HashSet::new();
        let mut sendable = Vec::with_capacity(ready.len());
        for outgoing in ready {
            if held.contains(&outgoing.order) {
                continue;
            }
            if outgoing.data.len() > self.max_entry_bytes {
                let reason = format!(
                    "the entry is {} bytes, over MAX_ENTRY_BYTES ({}): subscribers would refuse it",
                    outgoing.data.len(),
                    self.max_entry_bytes
                );
                self.refuse(conn, outgoing.row, Some(&outgoing.order), &reason, true)
                    .await?;
                held.insert(outgoing.order.clone());
            } else {
                sendable.push(outgoing);
            }
        }
        for run in sendable.chunk_by(|a, b| a.stream == b.stream) {
            let lease = leases[run[0].stream];
            self.publish_run(conn, lease, run, &mut held).await?;
        }
        Ok(())
    }

    /// Publishes a run of rows to one stream in one call; refused for an entry's sake, each
    /// alone, an order's rows behind a refused one waiting.
    async fn publish_run(
        &self,
        conn: &mut AsyncPgConnection,
        lease: Lease,
        run: &[&Outgoing<'_>],
        held: &mut HashSet<String>,
    ) -> Result<(), Failure> {
        let run: Vec<&Outgoing> = run
            .iter()
            .copied()
            .filter(|outgoing| !held.contains(&outgoing.order))
            .collect();
        let Some(first) = run.first() else {
            return Ok(());
        };
        let stream = Stream::new(first.stream, &self.source);
        let data: Vec<&str> = run.iter().map(|outgoing| outgoing.data.as_str()).collect();
        let mut redis = self.redis.get().await.map_err(Failure::redis)?;
        match stream.publish(&mut *redis, lease, &data).await {
            Ok(_) => return self.published(conn, &run).await,
            Err(error) if !publish::refused_for_the_entry(&error) => {
                return Err(Failure::redis(error))
            }
            Err(_) => {}
        }
        for (outgoing, entry) in run.iter().zip(&data) {
            if held.contains(&outgoing.order) {
                continue;
            }
            match stream.publish(&mut *redis, lease, &[entry]).await {
                Ok(_) => self.published(conn, &[outgoing]).await?,
                Err(error) if !publish::refused_for_the_entry(&error) => {
                    return Err(Failure::redis(error))
                }
                Err(error) => {
                    let reason = format!("Redis refused the entry: {error}");
                    let order = Some(outgoing.order.as_str());
                    self.refuse(conn, outgoing.row, order, &reason, false)
                        .await?;
                    held.insert(outgoing.order.clone());
                }
            }
        }
        Ok(())
    }

    /// Marks the rows Redis now holds, and counts them.
    async fn published(
        &self,
        conn: &mut AsyncPgConnection,
        run: &[&Outgoing<'_>],
    ) -> Result<(), Failure> {
        let ids: Vec<i64> = run.iter().map(|outgoing| outgoing.row.id).collect();
        rows::published(conn, &self.source, &ids)
            .await
            .map_err(Failure::postgres)?;
        for outgoing in run {
            instruments::published(&self.source, outgoing);
        }
        Ok(())
    }

    /// Records that `row` was not published for `reason`: failed at once when it never can be
    /// (`permanent`), else once it has been refused RELAY_MAX_ATTEMPTS times. A failed row is
    /// logged once, as the order service's relay did, with `OUTBOX_FAILED`.
    async fn refuse(
        &self,
        conn: &mut AsyncPgConnection,
        row: &Row,
        order: Option<&str>,
        reason: &str,
        permanent: bool,
    ) -> Result<(), Failure> {
        let (attempts, failed) = gives_up(row.attempts, self.source.max_attempts, permanent);
        let (label, table) = (&self.source.label, &self.source.table);
        if failed {
            tracing::error!(
                outbox = %table, row = row.id, event_id = %row.event_id,
                order_id = order.unwrap_or(""), attempts,
                "[OUTBOX_FAILED] {label}: row {} of {table} not published: {reason}; marked \
                 failed (order-worker outbox lists it; requeue it once the cause is fixed)",
                row.id
            );
            instruments::failed(&self.source);
        } else {
            tracing::warn!(
                outbox = %table, row = row.id, event_id = %row.event_id, attempts,
                "{label}: row {} of {table} refused ({reason}); tried again", row.id
            );
        }
        rows::refused(conn, &self.source, row.id, reason, failed)
            .await
            .map_err(Failure::postgres)?;
        Ok(())
    }
}

/// This refusal's number, and whether the row is failed with it: at once when it can never be
/// published, else at the `max_attempts`th refusal.
fn gives_up(attempts_before: i32, max_attempts: u32, permanent: bool) -> (u32, bool) {
    let attempts = u32::try_from(attempts_before).unwrap_or(0) + 1;
    (attempts, permanent || attempts >= max_attempts)
}

#[cfg(test)]
mod tests {
    use super::gives_up;

    #[test]
    fn a_row_fails_at_its_last_attempt_or_at_once_when_it_never_can_go() {
        let cases = [
            ((0, 10, false), (1, false)),
            ((8, 10, false), (9, false)),
            ((9, 10, false), (10, true)),
            ((0, 10, true), (1, true)),
            // The own outbox gives up at the first refusal, as it always held.
            ((0, 1, false), (1, true)),
            // A negative count written by someone else counts as none.
            ((-3, 10, false), (1, false)),
        ];
        for ((before, max, permanent), want) in cases {
            assert_eq!(
                gives_up(before, max, permanent),
                want,
                "{before} {max} {permanent}"
            );
        }
    }
}
