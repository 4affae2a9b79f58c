//! The inbox's retention, run by every replica beside its reading: each INBOX_PRUNE_INTERVAL it
//! refreshes the inbox gauges and, if no other replica is at it, drops what is older than
//! INBOX_RETENTION ([`store::retention`]). A failure is logged and tried again next round: it
//! never stops the consuming.

use std::time::Duration;

use crate::instruments;
use crate::shutdown::Shutdown;
use crate::store::{self, retention};

/// What a round needs: where, how long to keep, how often.
#[derive(Debug, Clone)]
pub(super) struct Retention {
    pub database_url: String,
    pub keep: Duration,
    pub every: Duration,
}

impl Retention {
    /// Rounds every `every` (the first one `every` after the start) until shutdown.
    pub(super) async fn run(self, mut shutdown: Shutdown) {
        instruments::inbox_retention(self.keep);
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.every) => {}
                () = shutdown.triggered() => return,
            }
            if let Err(error) = self.round(&shutdown).await {
                tracing::warn!(
                    "inbox retention: this round failed, the next one retries: {error:#}"
                );
            }
        }
    }

    /// One round on a connection of its own (the pool's are the batches'), closed after.
    async fn round(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut conn = store::connect(self.database_url.clone()).await?;
        if let Some(pruned) = retention::prune(&mut conn, self.keep, shutdown).await? {
            instruments::inbox_pruned(pruned.rows, pruned.finished);
            if pruned.rows > 0 {
                tracing::info!(
                    rows = pruned.rows,
                    steps = pruned.steps,
                    longest_step_ms = pruned.longest_step.as_millis() as u64,
                    "inbox retention: dropped the records of orders quiet for more than {}",
                    humantime::format_duration(self.keep)
                );
            }
        }
        let extent = retention::extent(&mut conn).await?;
        instruments::inbox(extent.rows_estimate, extent.oldest);
        Ok(())
    }
}
