//! Retrying transient failures (a server unreachable, a connection reset, a serialization
//! failure): exponential backoff with jitter, capped, for as long as it takes, unless shutdown
//! asks to stop. The caller then leaves its entries pending; nothing is acked on a failure.

use std::fmt::Display;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::shutdown::Shutdown;

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds (`Some`) or shutdown is triggered after a failure (`None`).
pub async fn until_done<T, E: Display>(
    what: &str,
    shutdown: &Shutdown,
    mut op: impl AsyncFnMut() -> Result<T, E>,
) -> Option<T> {
    let mut delays = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(MAX_DELAY)
        .without_max_times()
        .build();
    loop {
        let error = match op().await {
            Ok(value) => return Some(value),
            Err(error) => error,
        };
        if shutdown.is_triggered() {
            tracing::warn!(
                "{what} failed while shutting down: {error:#}; its entries stay pending"
            );
            return None;
        }
        let wait = delays.next().unwrap_or(MAX_DELAY);
        tracing::warn!("{what} failed: {error:#}; retrying in {wait:?}");
        let mut stop = shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.triggered() => {}
        }
    }
}
