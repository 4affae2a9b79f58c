//! An OTLP trace receiver in the test process, standing in for a collector: the worker under
//! test exports to it over gRPC or HTTP/protobuf, and tests assert on the spans it decoded,
//! flattened so that assertions need no protobuf types.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use prost::Message;
use tonic::transport::server::TcpIncoming;

/// The OTLP transport the receiver serves (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// A span as received: ids in lowercase hex (as in a `traceparent`), attribute values as text.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// "" for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// The proto `SpanKind` (5: consumer).
    pub kind: i32,
    /// The proto `StatusCode` (0: unset, 1: ok, 2: error).
    pub status_code: i32,
    pub status_message: String,
    pub attributes: HashMap<String, String>,
    /// (trace id, span id) of each linked span.
    pub links: Vec<(String, String)>,
    /// The attributes of the resource that exported the span (`service.name`, …).
    pub resource: HashMap<String, String>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

type Store = Arc<Mutex<Vec<ReceivedSpan>>>;

/// Serves from a task of the test's runtime: until the test ends.
pub struct Receiver {
    addr: SocketAddr,
    protocol: Protocol,
    spans: Store,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1.
    pub fn start(protocol: Protocol) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let spans = Store::default();
        match protocol {
            Protocol::Grpc => {
                let server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(Grpc(spans.clone())))
                    .serve_with_incoming(TcpIncoming::from(listener));
                tokio::spawn(async move { server.await.expect("OTLP gRPC receiver serves") });
            }
            Protocol::HttpProtobuf => {
                let store = spans.clone();
                let export = move |body: Bytes| export_http(store.clone(), body);
                let app = axum::Router::new().route("/v1/traces", axum::routing::post(export));
                let server = axum::serve(listener, app);
                tokio::spawn(async move { server.await.expect("OTLP HTTP receiver serves") });
            }
        }
        Ok(Self {
            addr,
            protocol,
            spans,
        })
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the worker: the base URL (HTTP exporters append
    /// `/v1/traces` to it).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `OTEL_EXPORTER_OTLP_PROTOCOL` for the worker.
    pub fn protocol_env(&self) -> &'static str {
        match self.protocol {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// Every span received so far, in order of arrival.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("span store").clone()
    }

    /// Polls until `pred` holds of the spans received, failing after [`super::DEADLINE`]:
    /// exports arrive in batches at the exporter's pace, never at a known moment.
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> anyhow::Result<Vec<ReceivedSpan>> {
        let deadline = tokio::time::Instant::now() + super::DEADLINE;
        loop {
            let spans = self.spans();
            if pred(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
                anyhow::bail!(
                    "{what}: not received within {:?}; spans received: {names:?}",
                    super::DEADLINE
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Grpc(Store);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// OTLP/HTTP with binary protobuf: the request and the response bodies are protobuf messages.
async fn export_http(
    store: Store,
    body: Bytes,
) -> Result<impl axum::response::IntoResponse, (StatusCode, String)> {
    let request = ExportTraceServiceRequest::decode(body)
        .map_err(|error| (StatusCode::BAD_REQUEST, error.to_string()))?;
    record(&store, request);
    let response = ExportTraceServiceResponse::default().encode_to_vec();
    Ok(([(header::CONTENT_TYPE, "application/x-protobuf")], response))
}

/// Stored before the reply, so an exporter that got its answer has its spans visible here.
fn record(store: &Store, request: ExportTraceServiceRequest) {
    let mut stored = store.lock().expect("span store");
    for resource_spans in request.resource_spans {
        let resource = attributes(resource_spans.resource.unwrap_or_default().attributes);
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            let status = span.status.unwrap_or_default();
            stored.push(ReceivedSpan {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                status_code: status.code,
                status_message: status.message,
                attributes: attributes(span.attributes),
                links: span
                    .links
                    .iter()
                    .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                    .collect(),
                resource: resource.clone(),
                start_unix_nano: span.start_time_unix_nano,
                end_unix_nano: span.end_time_unix_nano,
            });
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attributes(pairs: Vec<KeyValue>) -> HashMap<String, String> {
    let text = |value: Value| match value {
        Value::StringValue(text) => text,
        Value::BoolValue(flag) => flag.to_string(),
        Value::IntValue(number) => number.to_string(),
        Value::DoubleValue(number) => number.to_string(),
        other => format!("{other:?}"),
    };
    pairs
        .into_iter()
        .map(|pair| {
            let value = pair.value.and_then(|any| any.value).map(text);
            (pair.key, value.unwrap_or_default())
        })
        .collect()
}
