//! Shutdown, modelled as its own small type: the signal handler (or a test) triggers it, the
//! worker's loop checks it between batches, so the batch in flight is finished and acked.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Handed to whatever must stop; cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Starts the shutdown. Dropping it without calling [`ShutdownTrigger::trigger`] does not.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A new trigger and the listener it controls.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is triggered (at once if it already was).
    pub async fn triggered(&mut self) {
        // An error means every trigger was dropped without firing: then it never fires.
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `work` to its end, but once shutdown is triggered gives it only `timeout` more: past
/// that, returns anyway (Kubernetes would SIGKILL the pod at the end of its grace period). What
/// was not acked by then stays pending and is claimed by another replica.
pub async fn within<F>(timeout: Duration, mut shutdown: Shutdown, work: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = shutdown.triggered() => {}
    }
    match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(
                "shutdown timeout ({timeout:?}) reached with a batch in flight: exiting; its \
                 entries stay pending and another replica claims them"
            );
            Ok(())
        }
    }
}

/// SIGTERM and SIGINT, listened for from the moment this exists. Installed before anything
/// else starts, so a signal that arrives during start-up (a pod deleted while connecting) stops
/// the worker cleanly instead of killing it with the default action.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Triggers shutdown on the first SIGTERM or SIGINT; a second one exits at once (status
    /// 130): what was not acked stays pending and is re-read or claimed later.
    pub async fn forward(mut self, trigger: ShutdownTrigger) {
        for first in [true, false] {
            let name = tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            };
            if first {
                tracing::info!("{name} received: finishing the batch in flight, then exiting");
                trigger.trigger();
            } else {
                tracing::warn!("{name} received again: exiting now; unacked entries stay pending");
                // Exits without flushing the log queue: this line may be the one lost.
                std::process::exit(130);
            }
        }
    }
}
