//! Retrying transient failures (a server unreachable, a connection reset, a serialization
//! failure): exponential backoff with jitter, capped, for as long as it takes, unless shutdown
//! asks to stop. The caller then leaves its entries pending; nothing is acked on a failure.
//!
//! Outages are logged once when they start and once when they end, per server, however many
//! attempts they take: a log line per retry would bury everything else during an outage.

use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::shutdown::Shutdown;

/// A connection attempt the server did not answer or hung up on: worth waiting out (it is
/// down or restarting), unlike a refusal it gave (credentials, database, TLS) or a bad URL.
/// Either server's connect says so with this one type, so start-up tells them apart alike.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The waits between attempts: doubling from 50 ms, each plus a random jitter of up to as much
/// again. backon adds the jitter after its cap, so the cap it is given is half of
/// [`MAX_DELAY`]: the waits then stay below it, and still spread out once they reach it.
pub(crate) fn delays() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(MAX_DELAY / 2)
        .without_max_times()
        .build()
}

/// A server the worker depends on, and whether it is currently failing.
#[derive(Debug)]
pub struct Dependency {
    name: &'static str,
    /// Its `kind` in `fulfillment_consumer_errors_total`.
    kind: &'static str,
    outage: Mutex<Option<Outage>>,
    /// Where the worker's totals count each failed attempt too.
    recorder: Option<crate::instruments::Recorder>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    failures: u64,
}

impl Dependency {
    pub const fn new(name: &'static str, kind: &'static str) -> Self {
        Self {
            name,
            kind,
            outage: Mutex::new(None),
            recorder: None,
        }
    }

    /// Counts each failed attempt in `recorder`'s totals as well.
    pub fn recording(self, recorder: crate::instruments::Recorder) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    fn failed(&self, what: &str, error: &dyn Display) {
        crate::instruments::transient_error(self.kind);
        if let Some(recorder) = &self.recorder {
            recorder.retried();
        }
        let mut outage = self
            .outage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match outage.as_mut() {
            Some(outage) => {
                outage.failures += 1;
                tracing::debug!("{what} failed again: {error:#}");
            }
            None => {
                tracing::warn!(
                    "{} unavailable ({what} failed: {error:#}); retrying with backoff, nothing is acked meanwhile",
                    self.name
                );
                *outage = Some(Outage {
                    since: Instant::now(),
                    failures: 1,
                });
            }
        }
    }

    fn succeeded(&self) {
        let mut outage = self
            .outage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ended) = outage.take() {
            tracing::warn!(
                "{} is back after {:.1?} ({} failed attempts)",
                self.name,
                ended.since.elapsed(),
                ended.failures
            );
        }
    }
}

/// The retry state of one operation against one dependency.
pub struct Retry<'a> {
    what: &'static str,
    dependency: &'a Dependency,
    shutdown: &'a Shutdown,
    delays: ExponentialBackoff,
}

impl<'a> Retry<'a> {
    /// `what` names the operation in logs ("applying the batch").
    pub fn new(what: &'static str, dependency: &'a Dependency, shutdown: &'a Shutdown) -> Self {
        Self {
            what,
            dependency,
            shutdown,
            delays: delays(),
        }
    }

    /// Records a failed attempt and waits before the next one. Returns `false` when the caller
    /// must give up instead: shutdown was triggered.
    pub async fn failed(&mut self, error: &impl Display) -> bool {
        self.dependency.failed(self.what, error);
        if self.shutdown.is_triggered() {
            tracing::warn!(
                "shutting down while {} fails: its entries stay pending",
                self.what
            );
            return false;
        }
        let wait = self.delays.next().unwrap_or(MAX_DELAY);
        let mut stop = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.triggered() => {}
        }
        true
    }

    /// Records a success: ends the dependency's outage, if there was one.
    pub fn succeeded(&self) {
        self.dependency.succeeded();
    }
}

/// Runs `op` until it succeeds (`Some`) or shutdown stops the retries (`None`).
pub async fn until_ok<T, E: Display, Fut: Future<Output = Result<T, E>>>(
    what: &'static str,
    dependency: &Dependency,
    shutdown: &Shutdown,
    mut op: impl FnMut() -> Fut,
) -> Option<T> {
    let mut retry = Retry::new(what, dependency, shutdown);
    loop {
        match op().await {
            Ok(value) => {
                retry.succeeded();
                return Some(value);
            }
            Err(error) if retry.failed(&error).await => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn waits_double_from_50_ms_with_jitter_and_never_exceed_5_s() {
        for _ in 0..20 {
            let waits: Vec<Duration> = delays().take(200).collect();
            assert_eq!(waits.len(), 200, "retried for as long as it takes");
            let first = waits[0];
            assert!(
                first >= Duration::from_millis(50) && first < Duration::from_millis(100),
                "{first:?}"
            );
            // Base 50 ms · 2^n reaches the cap's half (2.5 s) by the seventh attempt.
            for (attempt, wait) in waits.iter().enumerate() {
                let base = Duration::from_millis(50)
                    .saturating_mul(1 << attempt.min(20))
                    .min(MAX_DELAY / 2);
                assert!(
                    *wait >= base && *wait < base * 2 && *wait <= MAX_DELAY,
                    "attempt {attempt}: {wait:?}"
                );
            }
            let capped: BTreeSet<Duration> = waits[10..].iter().copied().collect();
            assert!(capped.len() > 100, "jittered at the cap: {capped:?}");
        }
    }
}
