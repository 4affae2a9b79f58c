//! A worker process exporting its spans to a receiver of the test's own, and the Dapr-shaped
//! entries (with or without a `traceparent`) it is fed: shared by the tracing tests.

use order_worker::FulfillmentStatus;
use order_worker_dev::publisher::{self, Format};
use tokio::process::Child;

use super::otlp::{Protocol, ReceivedSpan, Receiver};
use super::process::terminate;
use super::TestEnv;

/// The proto values of `SpanKind::SPAN_KIND_CONSUMER` and `StatusCode::STATUS_CODE_ERROR`.
pub const CONSUMER: i32 = 5;
pub const ERROR: i32 = 2;
pub const MESSAGE_ID: &str = "messaging.message.id";
pub const ENTRY_ID: &str = "order_worker.entry_id";
pub const OUTCOME: &str = "order_worker.outcome";

/// A worker process ("traced") exporting to a receiver of its own.
pub struct Traced {
    pub env: TestEnv,
    pub receiver: Receiver,
    pub worker: Child,
}

impl Traced {
    /// Seeds `orders` at `confirmed` and starts the worker exporting over `protocol`.
    pub async fn start(protocol: Protocol, orders: &[&str], settings: &[(&str, &str)]) -> Self {
        let env = TestEnv::new().await;
        env.seed_orders(orders, "confirmed").await;
        let receiver = Receiver::start(protocol).expect("receiver starts");
        let worker = spawn(
            &env,
            &receiver.endpoint(),
            receiver.protocol_env(),
            settings,
        );
        Self {
            env,
            receiver,
            worker,
        }
    }

    pub fn stream(&self) -> &str {
        &self.env.stream.stream
    }

    /// SIGTERM; the worker must exit 0.
    pub async fn stop(&mut self) {
        let status = terminate(&mut self.worker).await;
        assert_eq!(status.code(), Some(0), "exit status");
    }
}

/// Worker "traced" exporting to `endpoint`; spans leave within 100 ms unless `settings` (which
/// win) say otherwise.
pub fn spawn(env: &TestEnv, endpoint: &str, protocol: &str, settings: &[(&str, &str)]) -> Child {
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    all.extend_from_slice(settings);
    env.spawn_process("traced", &env.redis_url, &env.database_url, &all)
}

/// A sampled `traceparent` of a new trace: (it, its trace id, its parent span id).
pub fn new_traceparent() -> (String, String, String) {
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let parent_id = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
    (format!("00-{trace_id}-{parent_id}-01"), trace_id, parent_id)
}

/// Publishes `status` for `order` (fulfillment `f-<order>`) as Dapr does, with the envelope's
/// `traceparent` (and Dapr's copy of it, `traceid`) as given, or without either. Returns
/// (entry id, CloudEvent id).
pub async fn publish(
    env: &TestEnv,
    order: &str,
    status: FulfillmentStatus,
    traceparent: Option<&str>,
) -> (String, String) {
    publish_for(env, order, &format!("f-{order}"), status, traceparent).await
}

/// [`publish`], of `fulfillment`.
pub async fn publish_for(
    env: &TestEnv,
    order: &str,
    fulfillment: &str,
    status: FulfillmentStatus,
    traceparent: Option<&str>,
) -> (String, String) {
    let event_id = uuid::Uuid::new_v4().to_string();
    let now = super::payments::now();
    let event = publisher::event(order, fulfillment, None, status, &now);
    let mut fields = publisher::entry_fields(
        env.stream.stream.as_str(),
        &event,
        &event_id,
        Format::CloudEvent,
    );
    let (name, data) = &mut fields[0];
    assert_eq!(name, "data");
    let mut envelope: serde_json::Value = serde_json::from_str(data).expect("CloudEvent JSON");
    let envelope_fields = envelope.as_object_mut().expect("CloudEvent object");
    for key in ["traceparent", "traceid"] {
        match traceparent {
            Some(traceparent) => envelope_fields.insert(key.to_owned(), traceparent.into()),
            None => envelope_fields.remove(key),
        };
    }
    *data = envelope.to_string();
    (env.xadd(&fields).await, event_id)
}

/// The `process` span of the entry whose attribute `key` is `value`.
pub fn process_span<'a>(
    spans: &'a [ReceivedSpan],
    stream: &str,
    key: &str,
    value: &str,
) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|span| {
        span.name == format!("process {stream}") && attribute(span, key) == Some(value)
    })
}

pub fn attribute<'a>(span: &'a ReceivedSpan, key: &str) -> Option<&'a str> {
    span.attributes.get(key).map(String::as_str)
}

/// The span named `name` that links to `target`.
pub fn linking<'a>(
    spans: &'a [ReceivedSpan],
    name: &str,
    target: &ReceivedSpan,
) -> Option<&'a ReceivedSpan> {
    let link = (target.trace_id.clone(), target.span_id.clone());
    spans
        .iter()
        .find(|span| span.name == name && span.links.contains(&link))
}
