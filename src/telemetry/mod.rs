//! Telemetry: log lines to stderr (JSON for log collectors or text for people, filtered by
//! `RUST_LOG`, default: the level the command asks for) and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set, the worker's spans exported over OTLP ([`export`]); [`spans`] makes them.

mod context;
mod export;
mod json;
pub mod spans;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use export::{EXPORT_FAILING, HELP as TRACING_HELP};

/// The start of the log lines that people and programs match on (Dapr's own wording, which the
/// order service's operators know): the replica tooling counts events and status changes by
/// them, and waits for the subscription line. Each topic words its own event's line
/// ([`crate::topics`]).
pub const SUBSCRIBING: &str = "Subscribing to stream";
pub const UPDATED_ORDER: &str = "Updated order status";
/// A status change withdrawn from the history: an order recomputed for a late event, where
/// in-order processing would not have made it (its replacement is logged as an update).
pub const WITHDREW_CHANGE: &str = "Withdrew order status change";

/// Log lines queued for the writer thread at most (the crate's default, 128,000, held tens of
/// MB during a long drain when the disk was slower than the worker).
const LINES_QUEUED: usize = 4_096;

/// Whether spans are exported: only then does making them do the OpenTelemetry part.
static EXPORTING: AtomicBool = AtomicBool::new(false);

fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// What keeps telemetry going; [`Telemetry::finish`] flushes it at exit.
#[must_use = "dropping it stops the logging"]
pub struct Telemetry {
    _logging: tracing_appender::non_blocking::WorkerGuard,
    spans: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans not sent yet (waiting at most `timeout`), then flushes the log.
    pub async fn finish(self, timeout: Duration) {
        if let Some(provider) = self.spans {
            export::flush(provider, timeout).await;
        }
    }
}

/// Installs the global subscriber: the log, and the span export if the environment asks for
/// it. Fails for an export setting that cannot work (the reason is printed to stderr).
pub fn init(format: LogFormat, default_level: &str) -> anyhow::Result<Telemetry> {
    // Lines are written by a thread of their own: a write per line on the worker's thread
    // cost it ~10 % of its time. That thread buffers what it finds queued and writes it at
    // once (it flushes whenever the queue is empty), not one write per line. Never lossy: a
    // full queue makes logging wait; kept short, so a drain's lines are not held in memory.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LINES_QUEUED)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        // Colour codes only help a terminal; piped into a file or collector they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    let lines = match format {
        // The current span only (an event's carries its trace context), as `json()` writes
        // it with its span list off, at a fraction of its cost ([`json`]).
        LogFormat::Json => lines
            .fmt_fields(json::Fields)
            .event_format(json::Lines)
            .boxed(),
        LogFormat::Text => lines.boxed(),
    };
    let export = export::from_env()?;
    // The worker's own spans only: the exporter's HTTP and gRPC clients trace too, and
    // exporting their spans would feed itself.
    let otel = export.as_ref().map(|export| {
        tracing_opentelemetry::layer()
            .with_tracer(export.provider.tracer("order-worker"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(Targets::new().with_target("order_worker", tracing::Level::INFO))
    });
    EXPORTING.store(export.is_some(), Ordering::Relaxed);
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(otel)
        .init();
    if let Some(export) = &export {
        tracing::info!(
            endpoint = export.endpoint,
            protocol = export.protocol,
            "exporting spans over OTLP"
        );
    }
    Ok(Telemetry {
        _logging: guard,
        spans: export.map(|export| export.provider),
    })
}

/// Log output: `json` for log collectors, `text` for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}
