//! The worker's spans, after OpenTelemetry's messaging conventions: one `process` span per
//! stream entry, a child of the publisher's span (the CloudEvent's `traceparent`) or, without
//! one, a new root; one `apply` span per transaction and one `ack` span per acknowledgement,
//! each linked to the spans of its entries (a batch serves many traces, so it is no one's
//! child). Log lines made inside an entry's span carry its `trace_id` and `span_id`.
//!
//! With export off, only the log side is made: the span's fields, with the publisher's
//! `trace_id` so log lines still join its trace.

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::KeyValue;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::context::remote_parent;
use super::exporting;
use crate::envelope::TraceContext;

/// What a `process` span is about: where the entry was read, and what it said.
pub struct Entry<'a> {
    pub stream: &'a str,
    /// The consumer group; `None` for a replay, which reads outside any group.
    pub group: Option<&'a str>,
    pub entry_id: &'a str,
    /// The CloudEvent id and the order, when the entry decoded.
    pub event: Option<(&'a str, &'a str)>,
    pub trace: &'a TraceContext,
}

/// The span of one entry, from its decoding to its settlement (ack, dead letter or pending).
pub fn process(entry: &Entry<'_>) -> Span {
    let event_id = entry.event.map_or("", |(event_id, _)| event_id);
    let parent = remote_parent(entry.trace);
    if !exporting() {
        let trace_id = parent.map(|p| p.trace_id().to_string());
        return tracing::info_span!(parent: None, "process", entry_id = entry.entry_id, event_id, trace_id);
    }
    let span = tracing::info_span!(
        parent: None,
        "process",
        otel.name = format!("process {}", entry.stream),
        otel.kind = "consumer",
        entry_id = entry.entry_id,
        event_id,
        trace_id = Empty,
        span_id = Empty,
    );
    if let Some(parent) = parent {
        // Only fails if the span is not exported (filtered out): nothing to join then.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    let mut attributes = vec![
        KeyValue::new("messaging.system", "redis"),
        KeyValue::new("messaging.operation.name", "process"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", entry.stream.to_owned()),
        KeyValue::new("order_worker.entry_id", entry.entry_id.to_owned()),
    ];
    match entry.group {
        Some(group) => attributes.push(KeyValue::new(
            "messaging.consumer.group.name",
            group.to_owned(),
        )),
        None => attributes.push(KeyValue::new("order_worker.replay", true)),
    }
    if let Some((event_id, order_id)) = entry.event {
        attributes.push(KeyValue::new("messaging.message.id", event_id.to_owned()));
        attributes.push(KeyValue::new("order_worker.order_id", order_id.to_owned()));
    }
    for attribute in attributes {
        span.set_attribute(attribute.key, attribute.value);
    }
    let context = span.context();
    let started = context.span();
    let ids = started.span_context();
    span.record("trace_id", ids.trace_id().to_string());
    span.record("span_id", ids.span_id().to_string());
    span
}

/// What applying the entry's event did (`applied`, `duplicate`, `stale`, …).
pub fn outcome(span: &Span, outcome: &'static str) {
    if exporting() {
        span.set_attribute("order_worker.outcome", outcome);
    }
}

/// The entry can never apply and went to the dead-letter stream: an error, with the reason.
pub fn dead_lettered(span: &Span, reason: String) {
    if exporting() {
        span.set_attribute("order_worker.outcome", "dead_lettered");
        span.set_status(Status::error(reason));
    }
}

/// A step done for many entries at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A transaction.
    Apply,
    /// An XACK (with the dead letters).
    Ack,
}

/// The span of `step`, linked to the spans of the entries it serves. Disabled (costs nothing)
/// when export is off.
pub fn for_entries<'a>(
    step: Step,
    attributes: &[(&'static str, i64)],
    entries: impl IntoIterator<Item = &'a Span>,
) -> Span {
    if !exporting() {
        return Span::none();
    }
    // Children of the batch's span, which holds a batch's whole life. A span's name is fixed
    // where it is made, hence one macro call each.
    let span = match step {
        Step::Apply => tracing::info_span!("apply"),
        Step::Ack => tracing::info_span!("ack"),
    };
    for (key, value) in attributes {
        span.set_attribute(*key, *value);
    }
    for entry in entries {
        span.add_link(entry.context().span().span_context().clone());
    }
    span
}

/// A count learnt once the step is done (the statements a transaction took).
pub fn count(span: &Span, key: &'static str, value: usize) {
    if exporting() {
        span.set_attribute(key, value as i64);
    }
}
