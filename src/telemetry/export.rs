//! OTLP export of the worker's spans, configured only by the standard variables: on when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, over
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the spec's default, or `grpc`). The SDK reads
//! the rest itself: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the resource),
//! `OTEL_TRACES_SAMPLER` / `_ARG` (default `parentbased_always_on`), `OTEL_BSP_*` (the queue).
//!
//! Spans leave from the SDK's batch processor, on a thread of its own: a slow or unreachable
//! collector never holds up the worker. What cannot be sent is dropped, counted in
//! [`SPANS_DROPPED`](crate::instruments::SPANS_DROPPED) and said once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use opentelemetry::Context as OtelContext;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanProcessor,
};
use opentelemetry_sdk::Resource;

use crate::instruments::SPANS_DROPPED;

/// What `run --help` says of tracing: the standard variables, read by OpenTelemetry's SDK.
pub const HELP: &str = "\
Tracing (OpenTelemetry; each entry's span continues its publisher's trace):
      OTLP collector URL; unset: no spans exported (nothing to pay)  [env: OTEL_EXPORTER_OTLP_ENDPOINT]
      http/protobuf (default, port 4318) or grpc (port 4317)  [env: OTEL_EXPORTER_OTLP_PROTOCOL]
      Service name [default: order-worker]  [env: OTEL_SERVICE_NAME]
      More resource attributes, k=v,k=v (the pod's name and namespace)  [env: OTEL_RESOURCE_ATTRIBUTES]
      Sampler [default: parentbased_always_on]; also parentbased_traceidratio  [env: OTEL_TRACES_SAMPLER]
      Its ratio, for the traceidratio samplers (0.01 = 1 %)  [env: OTEL_TRACES_SAMPLER_ARG]";

/// The log line said the first time spans are dropped (tests match on it).
pub const EXPORT_FAILING: &str = "Spans could not be exported to the OpenTelemetry collector";

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives one.
const SERVICE_NAME: &str = "order-worker";

/// A batch's `apply` and `ack` spans link to every event of the batch (up to `BATCH_SIZE`,
/// times the topics); the SDK's default keeps 128.
const MAX_LINKS: u32 = 10_000;

/// Spans going out: where, how, and the provider that sends them.
pub struct Export {
    pub provider: SdkTracerProvider,
    pub endpoint: String,
    pub protocol: String,
}

/// The export the environment asks for, or `None` when export is off. Fails only for what
/// retrying cannot fix: an endpoint that is not a URL, a protocol this build lacks.
pub fn from_env() -> anyhow::Result<Option<Export>> {
    let set = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let Some(endpoint) =
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
    else {
        return Ok(None);
    };
    let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    if !matches!(protocol.as_str(), "grpc" | "http/protobuf") {
        bail!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol:?} is not supported: use `grpc` or `http/protobuf`");
    }
    url::Url::parse(&endpoint)
        .with_context(|| format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint:?} is not a URL"))?;
    let exporter = SpanExporter::builder()
        .build()
        .with_context(|| format!("exporting spans to {endpoint} over {protocol}"))?;

    let queue = Arc::new(Queue::default());
    let batch = BatchConfigBuilder::default();
    let limit = std::env::var("OTEL_BSP_MAX_QUEUE_SIZE")
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or(2_048);
    let processor = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        queue: queue.clone(),
    })
    .with_batch_config(batch.with_max_queue_size(limit).build())
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Bounded {
            inner: processor,
            queue,
            limit,
        })
        .with_resource(resource())
        .with_max_links_per_span(MAX_LINKS)
        .build();
    Ok(Some(Export {
        provider,
        endpoint,
        protocol,
    }))
}

/// The SDK's resource (from the environment), named `order-worker` unless it says otherwise.
fn resource() -> Resource {
    let resource = Resource::builder().build();
    let named = resource
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        resource
    } else {
        Resource::builder().with_service_name(SERVICE_NAME).build()
    }
}

/// Exports what is left, waiting at most `timeout` (a collector that does not answer must not
/// hold up the pod's exit).
pub async fn flush(provider: SdkTracerProvider, timeout: Duration) {
    let shut = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout)).await;
    if let Ok(Err(error)) = shut {
        tracing::warn!("exporting the last spans: {error}");
    }
}

/// Spans handed to the batch processor and not yet exported or dropped.
#[derive(Debug, Default)]
struct Queue {
    held: AtomicUsize,
    dropping: AtomicBool,
}

impl Queue {
    /// `count` spans will never reach the collector.
    fn dropped(&self, count: usize, why: &dyn std::fmt::Display) {
        metrics::counter!(SPANS_DROPPED).increment(count as u64);
        if !self.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{EXPORT_FAILING} ({why}): dropping them, the worker carries on; {SPANS_DROPPED} counts them (said once)"
            );
        }
    }
}

/// The SDK's batch processor, with its queue bounded here: a span that would overflow it is
/// dropped and counted (the SDK drops it too, but only says so at shutdown).
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queue: Arc<Queue>,
    limit: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &OtelContext) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queue.held.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.queue.held.fetch_sub(1, Ordering::AcqRel);
            self.queue.dropped(1, &"the export queue is full");
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, releasing the queue's count for each batch sent, and counting what a
/// failed (or abandoned) export lost.
#[derive(Debug)]
struct Counted {
    inner: SpanExporter,
    queue: Arc<Queue>,
}

impl opentelemetry_sdk::trace::SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut sending = Sending {
            queue: &self.queue,
            count: batch.len(),
            settled: false,
        };
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            self.queue.dropped(sending.count, error);
        }
        sending.settled = true;
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A batch on its way out: leaves the queue's count however the export ends. Dropped before
/// it settled (the SDK stopped waiting for the collector), its spans count as lost.
struct Sending<'a> {
    queue: &'a Queue,
    count: usize,
    settled: bool,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.queue.held.fetch_sub(self.count, Ordering::AcqRel);
        if !self.settled {
            self.queue
                .dropped(self.count, &"the collector did not answer in time");
        }
    }
}
