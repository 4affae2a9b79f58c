//! What a relay does when a server fails: Redis is waited out holding the lead, PostgreSQL
//! ends the session; each outage logged once when it starts and once when it ends.

use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

/// What failed: Redis is waited out holding the lead; PostgreSQL ends the session.
pub enum Failure {
    Redis(anyhow::Error),
    Postgres(anyhow::Error),
}

impl Failure {
    pub fn redis(error: impl Into<anyhow::Error>) -> Self {
        Self::Redis(error.into().context("publishing to Redis"))
    }

    pub fn postgres(error: diesel::result::Error) -> Self {
        Self::Postgres(anyhow::Error::new(error).context("writing the outbox"))
    }
}

/// An outage as the relay sees it: logged once when it starts and once when it ends.
pub struct Outage {
    server: &'static str,
    /// Whose relay: the source's label.
    label: String,
    since: Option<Instant>,
    delays: Option<backon::ExponentialBackoff>,
}

impl Outage {
    pub fn new(server: &'static str, label: &str) -> Self {
        Self {
            server,
            label: label.to_owned(),
            since: None,
            delays: None,
        }
    }

    /// Records `error` and waits before the next attempt; false if shutdown came first.
    pub async fn wait(&mut self, error: &anyhow::Error, shutdown: &Shutdown) -> bool {
        if self.since.is_none() {
            tracing::warn!(
                "{}: the relay cannot reach {} ({error:#}); retrying with backoff, \
                 the outbox keeps every change meanwhile",
                self.label,
                self.server
            );
            self.since = Some(Instant::now());
        } else {
            tracing::debug!("{}: failed again: {error:#}", self.label);
        }
        let wait = self
            .delays
            .get_or_insert_with(crate::retry::delays)
            .next()
            .unwrap_or(Duration::from_secs(5));
        let mut stop = shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = stop.triggered() => false,
        }
    }

    pub fn ended(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::warn!(
                "{}: the relay reaches {} again after {:.1?}",
                self.label,
                self.server,
                since.elapsed()
            );
        }
        self.delays = None;
    }
}
