//! The relay's metrics: what it published, what waits, and who relays; each labelled with the
//! table relayed (`outbox`: `order_events_outbox`, or `RELAY_TABLE`).

use chrono::Utc;
use metrics::{counter, gauge, histogram};

use super::cloud_event::Outgoing;
use super::rows::Backlog;
use super::Source;

/// Events published, by `new_status` (`unknown` for an event without one).
pub const PUBLISHED: &str = "order_events_published_total";
/// Rounds (and takeovers) Redis refused or failed, each retried after a pause.
pub const PUBLISH_ERRORS: &str = "order_events_publish_errors_total";
/// Rows waiting to be published, and how long the oldest has waited.
pub const WAITING: &str = "order_events_outbox_rows";
pub const OLDEST_AGE: &str = "order_events_outbox_oldest_age_seconds";
/// Rows failed (held, in the own outbox): refused by Redis for their content, or never
/// publishable (an empty topic, no order id).
pub const HELD: &str = "order_events_outbox_held_rows";
/// Rows marked failed (each also logged once with `OUTBOX_FAILED`).
pub const FAILED: &str = "order_events_outbox_failed_total";
/// 1 on the replica that relays, 0 on the others.
pub const LEADER: &str = "order_events_relay_leader";
/// From the transaction that wrote a row to its XADD.
pub const DELAY: &str = "order_events_publish_delay_seconds";

/// HELP lines, with the others' (`crate::instruments::install`).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        PUBLISHED,
        "orders.order.status_changed events published, by new_status."
    );
    describe_counter!(
        PUBLISH_ERRORS,
        "Publishing rounds and takeovers Redis failed or refused (retried after a pause)."
    );
    describe_gauge!(WAITING, "Outbox rows waiting to be published.");
    describe_gauge!(
        OLDEST_AGE,
        "Seconds the oldest outbox row not held has waited (0 when none)."
    );
    describe_gauge!(
        HELD,
        "Outbox rows failed or held: Redis refused them for their content, or they cannot be published."
    );
    describe_counter!(
        FAILED,
        "Outbox rows marked failed (logged with OUTBOX_FAILED)."
    );
    describe_gauge!(
        LEADER,
        "1 on the replica that relays the outbox, 0 on the others."
    );
    describe_histogram!(
        DELAY,
        "Seconds from the transaction that wrote an outbox row to its XADD."
    );
}

pub fn published(source: &Source, outgoing: &Outgoing<'_>) {
    counter!(PUBLISHED, "outbox" => source.table.clone(), "new_status" => outgoing.new_status.clone())
        .increment(1);
    let delay = (Utc::now() - outgoing.row.created_at)
        .to_std()
        .unwrap_or_default();
    histogram!(DELAY, "outbox" => source.table.clone()).record(delay.as_secs_f64());
}

pub fn publish_failed(source: &Source) {
    counter!(PUBLISH_ERRORS, "outbox" => source.table.clone()).increment(1);
}

/// Exports the failed rows' counter at 0 from the start, so that an alert on its increase sees
/// the first failure.
pub fn started(source: &Source) {
    counter!(FAILED, "outbox" => source.table.clone()).increment(0);
}

pub fn failed(source: &Source) {
    counter!(FAILED, "outbox" => source.table.clone()).increment(1);
}

pub fn backlog(source: &Source, seen: &Backlog) {
    let outbox = source.table.clone();
    gauge!(WAITING, "outbox" => outbox.clone()).set(seen.waiting as f64);
    gauge!(OLDEST_AGE, "outbox" => outbox.clone()).set(seen.oldest.as_secs_f64());
    gauge!(HELD, "outbox" => outbox).set(seen.failed as f64);
}

pub fn leader(source: &Source, leads: bool) {
    gauge!(LEADER, "outbox" => source.table.clone()).set(if leads { 1.0 } else { 0.0 });
}
