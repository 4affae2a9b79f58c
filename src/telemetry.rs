//! Logging: tracing to stderr, JSON for log collectors or text for people, filtered by
//! `RUST_LOG` (default: the level the command asks for).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The start of the log lines that people and programs match on (Dapr's own wording, which the
/// order service's operators know): the replica tooling counts events and status changes by
/// them, and waits for the subscription line.
pub const SUBSCRIBING: &str = "Subscribing to stream";
pub const PROCESSING_EVENT: &str = "Processing fulfillment status changed event";
pub const UPDATED_ORDER: &str = "Updated order status";
/// A status change withdrawn from the history: an order recomputed for a late event, where
/// in-order processing would not have made it (its replacement is logged as an update).
pub const WITHDREW_CHANGE: &str = "Withdrew order status change";

/// Installs the global subscriber; keep the guard until the end (dropping it flushes). Lines are
/// written by a thread of their own: a write per line on the worker's thread cost it ~10 % of
/// its time. Never lossy: a full queue makes logging wait.
#[must_use = "dropping the guard stops the logging"]
pub fn init(format: LogFormat, default_level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour codes only help a terminal; piped into a file or collector they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        // The current span only (an event's carries its trace context): the list of every
        // enclosing span repeats it on each line and doubles the cost of the per-event lines.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

/// Log output: `json` for log collectors, `text` for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}
