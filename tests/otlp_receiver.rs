//! The tests' OTLP receiver decodes what the OpenTelemetry SDK's own exporters send, over gRPC
//! and HTTP/protobuf: the ground `tests/tracing.rs` stands on.

mod support;

use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use support::otlp::{Protocol, Receiver};

/// Exports one span named "probe" to `receiver` with the SDK's exporter for its protocol;
/// returns the span's trace id. Runs on a blocking thread: the simple processor exports on the
/// thread that ends the span, and the blocking HTTP client must not run on an async one.
async fn export_probe(receiver: &Receiver, protocol: Protocol) -> String {
    let endpoint = receiver.endpoint();
    tokio::task::spawn_blocking(move || {
        let builder = opentelemetry_otlp::SpanExporter::builder();
        let exporter = match protocol {
            Protocol::Grpc => builder
                .with_tonic()
                .with_endpoint(endpoint)
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .build(),
            // Given in code, the HTTP endpoint is the full URL: only the environment variable's
            // value gets `/v1/traces` appended.
            Protocol::HttpProtobuf => builder
                .with_http()
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build(),
        }
        .expect("exporter builds");
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("probe-service")
                    .build(),
            )
            .build();
        let mut span = provider.tracer("otlp_receiver").start("probe");
        span.set_attribute(KeyValue::new("probe.answer", 42));
        let trace_id = span.span_context().trace_id().to_string();
        span.end();
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
        trace_id
    })
    .await
    .expect("exporting thread")
}

async fn receives_the_sdks_span(protocol: Protocol) {
    let receiver = Receiver::start(protocol).expect("receiver starts");
    let trace_id = export_probe(&receiver, protocol).await;
    let spans = receiver
        .wait_for("the probe span", |spans| {
            spans.iter().any(|span| span.name == "probe")
        })
        .await
        .expect("received");
    let probe = spans
        .iter()
        .find(|span| span.name == "probe")
        .expect("probe");
    assert_eq!(probe.trace_id, trace_id);
    assert_eq!(probe.span_id.len(), 16, "{probe:?}");
    assert_eq!(probe.parent_span_id, "", "a root span");
    assert_eq!(probe.attributes["probe.answer"], "42");
    assert_eq!(probe.resource["service.name"], "probe-service");
    assert!(probe.start_unix_nano <= probe.end_unix_nano, "{probe:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn receives_spans_over_grpc() {
    receives_the_sdks_span(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn receives_spans_over_http_protobuf() {
    receives_the_sdks_span(Protocol::HttpProtobuf).await;
}
