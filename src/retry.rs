//! Retrying transient failures (a server unreachable, a connection reset, a serialization
//! failure): exponential backoff with jitter, capped, for as long as it takes, unless shutdown
//! asks to stop. The caller then leaves its entries pending; nothing is acked on a failure.
//!
//! A value the retry loop consults rather than a combinator taking a closure, so the futures it
//! retries may borrow the worker mutably and still be `Send`.

use std::fmt::Display;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::shutdown::Shutdown;

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The retry state of one operation.
pub struct Retry<'a> {
    what: &'static str,
    shutdown: &'a Shutdown,
    delays: ExponentialBackoff,
}

impl<'a> Retry<'a> {
    /// `what` names the operation in logs ("applying the batch").
    pub fn new(what: &'static str, shutdown: &'a Shutdown) -> Self {
        let delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(MAX_DELAY)
            .without_max_times()
            .build();
        Self {
            what,
            shutdown,
            delays,
        }
    }

    /// Records a failed attempt and waits before the next one. Returns `false` when the caller
    /// must give up instead: shutdown was triggered.
    pub async fn failed(&mut self, error: &impl Display) -> bool {
        let what = self.what;
        if self.shutdown.is_triggered() {
            tracing::warn!(
                "{what} failed while shutting down: {error:#}; its entries stay pending"
            );
            return false;
        }
        let wait = self.delays.next().unwrap_or(MAX_DELAY);
        tracing::warn!("{what} failed: {error:#}; retrying in {wait:?}");
        let mut stop = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.triggered() => {}
        }
        true
    }
}
