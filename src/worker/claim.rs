//! Claiming: taking over entries idle in the group's pending list for at least
//! `CLAIM_MIN_IDLE_MS` — held by a replica that died, by Dapr's `order-service` consumer after a
//! cut-over, or by ourselves for an event whose order did not exist yet — and running them
//! through the same path as new entries.

use tracing::Instrument;

use super::Worker;
use crate::retry::until_ok;
use crate::shutdown::Shutdown;
use crate::stream::autoclaim;
use crate::stream::pending::{consumers, remove_consumer_if_empty};

/// Where XAUTOCLAIM starts, and what it answers once it walked the whole pending list.
const START: &str = "0-0";

impl Worker {
    /// Removes consumers idle longer than CONSUMER_IDLE_TIMEOUT that hold nothing (replicas
    /// long gone), so `XINFO CONSUMERS` shows the live ones. A failure only postpones it.
    async fn remove_idle_consumers(&self) {
        let timeout = self.config.consumer_idle_timeout;
        let removed = async {
            let mut conn = self.redis.get().await?;
            let mut removed = Vec::new();
            for (name, pending, idle) in consumers(&mut *conn, &self.config.stream).await? {
                let stale = name != self.consumer && pending == 0 && idle > timeout;
                if stale && remove_consumer_if_empty(&mut *conn, &self.config.stream, &name).await?
                {
                    removed.push(name);
                }
            }
            anyhow::Ok(removed)
        };
        match removed.await {
            Ok(removed) if !removed.is_empty() => tracing::info!(
                ?removed,
                "removed consumers idle for more than {timeout:?} with nothing pending"
            ),
            Ok(_) => {}
            Err(error) => tracing::debug!("could not look for idle consumers: {error:#}"),
        }
    }

    /// Updates the lag, pending and dead-letter gauges; a failure only leaves them stale.
    async fn observe_backlog(&self) {
        let observed = async {
            let mut conn = self.redis.get().await?;
            anyhow::Ok(crate::stream::pending::backlog(&mut *conn, &self.config.stream).await?)
        };
        match observed.await {
            Ok((lag, pending, dead_letters)) => {
                crate::instruments::backlog(lag, pending, dead_letters)
            }
            Err(error) => tracing::debug!("could not read the backlog for the gauges: {error:#}"),
        }
    }

    /// Walks the whole pending list once with XAUTOCLAIM, processing each page as it comes.
    pub(super) async fn claim_stuck(&self, shutdown: &Shutdown) {
        let count = self.config.batch_size as usize;
        let min_idle = self.config.claim_min_idle();
        let mut cursor = START.to_owned();
        loop {
            let page = until_ok(
                "claiming stuck entries",
                &self.redis_health,
                shutdown,
                || async {
                    let mut conn = self.redis.get().await?;
                    let claimed = autoclaim(
                        &mut *conn,
                        &self.config.stream,
                        &self.consumer,
                        min_idle,
                        &cursor,
                        count,
                    );
                    anyhow::Ok(claimed.await?)
                },
            );
            let Some((next, batch)) = page.await else {
                return;
            };
            if !batch.is_empty() {
                tracing::info!(
                    claimed = batch.entries.len(),
                    deleted = batch.deleted.len(),
                    "claimed entries idle for at least {min_idle:?}"
                );
                self.progress
                    .send_modify(|progress| progress.claimed += batch.entries.len() as u64);
                let span = tracing::info_span!(
                    "claimed_batch",
                    size = batch.entries.len() + batch.deleted.len()
                );
                let mut batch = batch;
                batch.redelivered = true;
                self.process(batch, shutdown).instrument(span).await;
            }
            if next == START || shutdown.is_triggered() {
                self.observe_backlog().await;
                self.remove_idle_consumers().await;
                return;
            }
            cursor = next;
        }
    }
}
