//! What exporting spans costs: the fulfillment drain with the worker's spans exported over OTLP
//! (HTTP/protobuf, to a sink in this process that takes and discards them), sampling every
//! trace and 1 % of them, against the same drain with export off, all in the same run.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

use super::drain::drain;
use super::workload::{Backlog, Workload};

/// The three drains' rates, and what the sink received.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TracedDrain {
    pub off_events_per_second: f64,
    pub sampled_all_events_per_second: f64,
    pub sampled_1_percent_events_per_second: f64,
    /// Export requests (batches of spans) the sink answered.
    pub exports: u64,
}

/// Drains the fulfillment backlog three times (export off, then on at 100 % and at 1 %) and
/// checks each end state.
pub async fn phase(
    workload: &mut Workload,
    order_worker: &Path,
    batch_size: u32,
) -> anyhow::Result<TracedDrain> {
    let exports = Arc::new(AtomicU64::new(0));
    let endpoint = sink(exports.clone()).await?;
    let exporting = |ratio: &str| {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            // The ratio applies to every trace, whatever the publisher sampled (the benchmark's
            // events all carry a sampled `traceparent`).
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", ratio),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
    };
    let mut rates = Vec::new();
    for settings in [
        vec![],
        exporting("1.0").to_vec(),
        exporting("0.01").to_vec(),
    ] {
        workload.reset(Backlog::Fulfillment).await?;
        workload.publish_backlog().await?;
        let drained = drain(workload, order_worker, 1, batch_size, &settings).await?;
        workload.verify("traced drain", true).await?;
        rates.push(drained.events_per_second);
    }
    Ok(TracedDrain {
        off_events_per_second: rates[0],
        sampled_all_events_per_second: rates[1],
        sampled_1_percent_events_per_second: rates[2],
        exports: exports.load(Ordering::Relaxed),
    })
}

/// An OTLP/HTTP endpoint that answers every export with success and keeps nothing.
async fn sink(exports: Arc<AtomicU64>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the OTLP sink")?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move || async move {
            exports.fetch_add(1, Ordering::Relaxed);
            // An empty ExportTraceServiceResponse: full success.
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}"))
}
