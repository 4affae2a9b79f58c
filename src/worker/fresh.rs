//! Keeping a batch's entries fresh in the pending list while it is worked on: another replica
//! claims what is idle for CLAIM_MIN_IDLE_MS (or CONSUMER_GONE_MS once this one looks gone).

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::StreamConfig;
use crate::stream::{keep_alive, RedisPool};

/// Refreshes the ids it was given every period until dropped. A task of its own, so the
/// refreshes go on while the batch's task is busy (decoding hundreds of entries, logging
/// them) or waiting (for a batch ahead, for PostgreSQL).
pub(super) struct KeptFresh(JoinHandle<()>);

impl KeptFresh {
    /// Starts refreshing `held` (each stream's ids) as `consumer`, the first time one
    /// `period` from now (XREADGROUP or XCLAIM just made them fresh).
    pub(super) fn start(
        redis: RedisPool,
        consumer: String,
        held: Vec<(StreamConfig, Vec<String>)>,
        period: Duration,
    ) -> Self {
        Self(tokio::spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticker = tokio::time::interval_at(start, period);
            loop {
                ticker.tick().await;
                for (stream, ids) in &held {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let refreshed = async {
                        let mut conn = redis.get().await?;
                        anyhow::Ok(keep_alive(&mut *conn, stream, &consumer, &ids).await?)
                    };
                    if let Err(error) = refreshed.await {
                        tracing::warn!("could not keep the batch's entries fresh: {error:#}");
                    }
                }
            }
        }))
    }
}

impl Drop for KeptFresh {
    fn drop(&mut self) {
        self.0.abort();
    }
}
