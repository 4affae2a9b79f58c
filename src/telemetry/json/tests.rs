//! Each line as `tracing-subscriber`'s own JSON format writes it (timestamps aside).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::field::Empty;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::{Fields, Lines};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

impl Captured {
    /// The lines written, each parsed, the timestamp checked and taken out.
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().expect("buffer").clone()).expect("UTF-8");
        (text.lines())
            .map(|line| {
                let mut line: Value = serde_json::from_str(line).expect(line);
                let timestamp = line["timestamp"].take();
                let timestamp = timestamp.as_str().expect("a timestamp");
                chrono::DateTime::parse_from_rfc3339(timestamp).expect(timestamp);
                line
            })
            .collect()
    }
}

/// Logs every kind of field, in and out of spans, some recorded after the span was made.
fn log_everything() {
    tracing::info!("outside any span: \"quoted\", a\nnew line, \u{7} and ünïcødé");
    let span = tracing::info_span!(
        "process",
        entry_id = "1-0",
        event_id = "e\"1",
        trace_id = Empty
    );
    span.in_scope(|| {
        tracing::warn!(
            order_id = "o-1",
            count = 3_u64,
            delta = -2_i64,
            ok = true,
            "in a span"
        );
    });
    span.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
    span.in_scope(|| {
        let error = std::io::Error::other("disk full");
        tracing::error!(ratio = 0.25, error = %error, debug = ?("a", 1), "recorded later");
        tracing::info_span!("inner").in_scope(|| tracing::debug!("the innermost span is named"));
    });
    let empty = tracing::info_span!("empty");
    empty.in_scope(|| tracing::info!(n = 1_i64, "a span without fields"));
    tracing::info!(parent: &span, "a parent named, not entered");
}

#[test]
fn lines_are_what_tracing_subscribers_json_format_writes() {
    let ours = Captured::default();
    let theirs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(ours.clone())
                .fmt_fields(Fields)
                .event_format(Lines),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(theirs.clone())
                .json()
                .with_current_span(true)
                .with_span_list(false),
        );
    tracing::subscriber::with_default(subscriber, log_everything);
    let (ours, theirs) = (ours.lines(), theirs.lines());
    assert_eq!(ours.len(), 6);
    assert_eq!(ours, theirs);
}
