//! Logging: tracing to stdout, JSON for log collectors or text for people, filtered by
//! `RUST_LOG` (default: the level the command asks for).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
}
