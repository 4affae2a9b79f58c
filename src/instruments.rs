//! The Prometheus metrics: the names operators already alert on (from the service's Dapr days)
//! plus what this worker adds. Recorded through the `metrics` facade, so the worker's code only
//! says what happened; `/metrics` renders them.

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::Outcome;

/// Entries settled (acked, dead-lettered, or left pending for an unknown order).
pub const EVENTS_CONSUMED: &str = "fulfillment_status_events_consumed_total";
/// Order status changes, by history `reason` (`FulfillmentShipped`, …).
pub const ORDER_STATUS_UPDATES: &str = "order_status_updates_total";
/// Failed attempts, by `kind`: `redis`, `postgres` (transient, retried), `decode` (dead-lettered).
pub const CONSUMER_ERRORS: &str = "fulfillment_consumer_errors_total";
/// From the start of a batch to its COMMIT, recorded once per event of the batch.
pub const PROCESSING_DURATION: &str = "fulfillment_event_processing_duration_seconds";
/// Events by `outcome`: applied, duplicate, stale, ignored, unknown_order, rejected.
pub const OUTCOMES: &str = "fulfillment_event_outcomes_total";
pub const CLAIMED: &str = "fulfillment_entries_claimed_total";
pub const DEAD_LETTERED: &str = "fulfillment_entries_dead_lettered_total";
pub const BATCH_SIZE: &str = "fulfillment_batch_size";
/// The group's lag (entries not yet delivered), pending count and dead-letter length, as last
/// seen by this replica's claim round.
pub const LAG: &str = "fulfillment_stream_lag";
pub const PENDING: &str = "fulfillment_stream_pending";
pub const DEAD_LETTER_LENGTH: &str = "fulfillment_dead_letter_length";

/// Installs the process-wide recorder once and returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; ours then stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A batch was settled.
pub fn batch_settled(entries: usize, outcomes: &[Outcome], reasons: &[String], seconds: f64) {
    counter!(EVENTS_CONSUMED).increment(entries as u64);
    histogram!(BATCH_SIZE).record(entries as f64);
    for outcome in outcomes {
        counter!(OUTCOMES, "outcome" => outcome.as_str()).increment(1);
        histogram!(PROCESSING_DURATION).record(seconds);
    }
    for reason in reasons {
        counter!(ORDER_STATUS_UPDATES, "reason" => reason.clone()).increment(1);
    }
}

pub fn dead_lettered(count: usize, undecodable: usize) {
    counter!(DEAD_LETTERED).increment(count as u64);
    counter!(CONSUMER_ERRORS, "kind" => "decode").increment(undecodable as u64);
}

pub fn claimed(count: usize) {
    counter!(CLAIMED).increment(count as u64);
}

/// A transient failure talking to `server` ("redis" or "postgres").
pub fn transient_error(server: &'static str) {
    counter!(CONSUMER_ERRORS, "kind" => server).increment(1);
}

pub fn backlog(lag: Option<u64>, pending: u64, dead_letters: u64) {
    if let Some(lag) = lag {
        gauge!(LAG).set(lag as f64);
    }
    gauge!(PENDING).set(pending as f64);
    gauge!(DEAD_LETTER_LENGTH).set(dead_letters as f64);
}
