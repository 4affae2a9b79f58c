//! The table `bench` prints: one line per measurement, its name and its figures.

use super::drain::Drain;
use super::grown::{self, GrownDrain};
use super::late::{self, LateDrain};
use super::latency::Latency;
use super::per_event;
use super::publishing::PublishingDrain;
use super::relay_table::{Relayed, RelayedTable};
use super::sizes::AtSize;
use super::traced::TracedDrain;
use super::Report;

/// A line of the table: what was measured, and the figures.
type Row = (String, String);

/// The table `run` prints.
pub fn render(report: &Report) -> String {
    let mut rows: Vec<Row> = report.sizes.iter().map(size_row).collect();
    let mixed = report.mixed.as_ref();
    rows.extend(mixed.map(|mixed| drain_row("mixed, 3 streams (payments + fulfillments)", mixed)));
    rows.extend(report.late.as_ref().map(late_row));
    rows.extend(report.traced.as_ref().map(traced_row));
    rows.extend(report.publishing.as_ref().map(publishing_row));
    rows.extend(report.grown.as_ref().map(grown_row));
    rows.extend(baseline_rows(report));
    rows.extend(report.latency.iter().flat_map(latency_rows));
    rows.extend(report.relay_table.iter().flat_map(relay_table_rows));
    // The largest drain's process is the one that held the most.
    let (orders, peak_rss_mb) = (report.sizes.iter())
        .map(|size| (size.orders, size.drain.peak_rss_mb))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((report.orders, report.drain.peak_rss_mb));
    rows.push((
        format!(
            "peak RSS of a worker process (largest, at {} orders)",
            grouped(orders as f64)
        ),
        format!("{peak_rss_mb:>10.1} MB"),
    ));
    rows.push((
        "ready (spawn → first read)".to_owned(),
        format!("{:>10.0} ms", report.drain.ready_ms),
    ));
    let width = (rows.iter())
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let table = rows
        .iter()
        .map(|(name, value)| format!("{name:<width$}  {value}\n"));
    let profiles = (report.sizes.iter()).filter_map(|size| {
        Some(super::profile::render(
            size.orders,
            size.drain.profile.as_ref()?,
        ))
    });
    table.chain(profiles).collect()
}

/// The drain at one size, and what it is of PostgreSQL alone.
fn size_row(size: &AtSize) -> Row {
    let (drain, ceiling) = (&size.drain, &size.ceiling);
    (
        format!(
            "drain at {} orders ({} events), worker defaults ({} replica(s), batch {})",
            grouped(size.orders as f64),
            grouped(drain.events as f64),
            drain.replicas,
            drain.batch_size
        ),
        format!(
            "{:>10} events/s  ({:.2} s) = {:.0} % of PostgreSQL alone ({} events/s: {} \
             connections, batches of {})",
            grouped(drain.events_per_second),
            drain.seconds,
            size.percent_of_ceiling,
            grouped(ceiling.events_per_second),
            ceiling.connections,
            ceiling.batch_size
        ),
    )
}

fn drain_row(what: &str, drain: &Drain) -> Row {
    (
        format!(
            "{what}, worker defaults ({} replica(s), batch {})",
            drain.replicas, drain.batch_size
        ),
        format!(
            "{:>10.0} events/s  ({:.2} s)",
            drain.events_per_second, drain.seconds
        ),
    )
}

fn late_row(late: &LateDrain) -> Row {
    (
        format!(
            "1 event in {} late (its order recomputed), 1 replica",
            late::LATE_EVERY
        ),
        format!(
            "{:>10.0} events/s  ({:.2} s; the late ones alone {:.0} events/s)",
            late.events_per_second, late.seconds, late.late_events_per_second
        ),
    )
}

fn traced_row(traced: &TracedDrain) -> Row {
    (
        "spans exported over OTLP: sampling 100 % / 1 % / export off, 1 replica".to_owned(),
        format!(
            "{:>6.0} / {:.0} / {:.0} events/s",
            traced.sampled_all_events_per_second,
            traced.sampled_1_percent_events_per_second,
            traced.off_events_per_second
        ),
    )
}

fn publishing_row(publishing: &PublishingDrain) -> Row {
    (
        format!(
            "publishing status changes (ORDER_EVENTS), {} replica(s) (medians of {})",
            publishing.replicas,
            publishing.on_events_per_second.len()
        ),
        format!(
            "on {:.0} events/s vs off {:.0} events/s ({:.1} % of off; target ≥ {:.0} %){}",
            publishing.on_median_events_per_second,
            publishing.off_median_events_per_second,
            publishing.on_percent_of_off,
            publishing.target_percent_of_off,
            match publishing.orders_with_steps_skipped() {
                0 => String::new(),
                n => format!("; {n} order(s) published skipping a status (applied late)"),
            }
        ),
    )
}

fn grown_row(grown: &GrownDrain) -> Row {
    (
        format!(
            "inbox and history empty / holding {} rows each, 1 replica, shared_buffers {} \
             (medians of {})",
            grown.rows,
            grown.shared_buffers,
            grown.empty_events_per_second.len()
        ),
        format!(
            "{:>6.0} / {:.0} events/s  ({:+.1} %; loaded in {:.0} s)",
            grown::median(&grown.empty_events_per_second),
            grown::median(&grown.grown_events_per_second),
            grown.change_percent,
            grown.load_seconds
        ),
    )
}

/// The per-event pattern, the worker against it, and its ceiling.
fn baseline_rows(report: &Report) -> Vec<Row> {
    let mut rows = Vec::new();
    if let (Some(per_event), Some(speedup)) = (report.per_event_events_per_second, report.speedup) {
        rows.push((
            format!(
                "per-event pattern (Dapr's shape: {} handlers, 1 tx + 1 XACK per event)",
                per_event::HANDLERS
            ),
            format!("{per_event:>10.0} events/s"),
        ));
        rows.push((
            format!(
                "worker / per-event (at {} orders)",
                grouped(report.orders as f64)
            ),
            format!("{speedup:>10.1} ×"),
        ));
    }
    if let Some(ceiling) = report.postgres_ceiling_events_per_second {
        rows.push((
            format!(
                "PostgreSQL ceiling, 1 transaction per event ({} connections)",
                per_event::HANDLERS
            ),
            format!("{ceiling:>10.0} events/s"),
        ));
    }
    rows
}

fn latency_rows(latency: &Latency) -> [Row; 2] {
    let published = match &latency.commit_to_published {
        Some(published) => (
            format!(
                "COMMIT → status change on the order events stream ({} changes, at {:.0}/s)",
                published.changes, published.changes_per_second
            ),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 ≤ {:.0} ms)",
                published.p50_ms, published.p99_ms, published.max_ms, published.target_p99_ms
            ),
        ),
        None => (
            "COMMIT → status change on the order events stream".to_owned(),
            "none measured: no probe event moved a status (fewer events than orders)".to_owned(),
        ),
    };
    [
        (
            format!(
                "XADD → COMMIT at {} events/s ({} events)",
                latency.rate, latency.events
            ),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                latency.p50_ms, latency.p99_ms, latency.max_ms
            ),
        ),
        published,
    ]
}

/// COMMIT → XADD of the order service's rows, with the trigger and polled.
fn relay_table_rows(relayed: &RelayedTable) -> [Row; 2] {
    let row = |how: &str, side: &Relayed| {
        (
            format!(
                "order service's outbox (RELAY_TABLE), {how}: COMMIT → XADD ({} rows at {:.0}/s, \
                 {} writers)",
                grouped(side.rows as f64),
                side.rows_per_second,
                relayed.writers
            ),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                side.p50_ms, side.p99_ms, side.max_ms
            ),
        )
    };
    [
        row("notify trigger", &relayed.trigger),
        row("no trigger (polled)", &relayed.poll),
    ]
}

/// `value` (not negative) rounded, its thousands separated by commas: 17,100.
pub(super) fn grouped(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn thousands_are_separated_by_commas() {
        for (value, expected) in [
            (0.0, "0"),
            (999.4, "999"),
            (1_000.0, "1,000"),
            (65_800.4, "65,800"),
            (900_000.0, "900,000"),
            (1_234_567.0, "1,234,567"),
        ] {
            assert_eq!(grouped(value), expected, "{value}");
        }
    }
}
