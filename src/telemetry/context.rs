//! The publisher's trace context, read from what the CloudEvent carries (W3C `traceparent` and
//! `tracestate`) by OpenTelemetry's own propagator. Pure: no span is made here.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::envelope::TraceContext;

/// The publisher's span, if the event names a valid one: the parent of the worker's span of
/// the event. `None` (the worker's span is then a new root) when there is no `traceparent` or
/// it is malformed, all-zero or of a version this reader does not know.
pub fn remote_parent(trace: &TraceContext) -> Option<SpanContext> {
    // Against an empty context: `extract` starts from the current one, so an entry without a
    // traceparent would join whatever span is current (its batch's) instead of starting a trace.
    let context = TraceContextPropagator::new().extract_with_context(&Context::new(), trace);
    let span = context.span();
    let parent = span.span_context();
    parent.is_valid().then(|| parent.clone())
}

/// The propagator reads the two W3C fields by their header names.
impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(parent: &str, state: Option<&str>) -> TraceContext {
        TraceContext {
            traceparent: Some(parent.to_owned()),
            tracestate: state.map(str::to_owned),
        }
    }

    #[test]
    fn a_valid_traceparent_is_the_parent_with_its_state_and_sampling() {
        let parent = remote_parent(&trace(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("congo=t61rcWkgMzE"),
        ))
        .expect("valid");
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled());
        assert!(parent.is_remote());
        assert_eq!(parent.trace_state().get("congo"), Some("t61rcWkgMzE"));
    }

    #[test]
    fn an_unsampled_parent_stays_unsampled() {
        let parent = remote_parent(&trace(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        ));
        assert!(!parent.expect("valid").is_sampled());
    }

    #[test]
    fn no_traceparent_gives_no_parent_whatever_span_is_current() {
        // A batch's span is current while its entries' spans are made.
        let batch = remote_parent(&trace(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        ))
        .expect("valid");
        let _current = Context::new().with_remote_span_context(batch).attach();
        assert!(remote_parent(&TraceContext::default()).is_none());
        assert!(remote_parent(&trace("garbage", None)).is_none());
    }

    #[test]
    fn no_or_malformed_traceparent_gives_no_parent() {
        let cases = [
            "",
            "garbage",
            // All-zero trace id, then all-zero span id: invalid by the spec.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Upper case, a span id not hex, version ff.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9zzzz-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for case in cases {
            assert_eq!(remote_parent(&trace(case, None)), None, "{case:?}");
        }
        assert_eq!(remote_parent(&TraceContext::default()), None);
    }
}
