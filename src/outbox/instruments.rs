//! The relay's metrics: what it published, what waits, and who relays.

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};

use super::rows::Backlog;

/// Events published, by `new_status`.
pub const PUBLISHED: &str = "order_events_published_total";
/// Rounds (and takeovers) Redis refused or failed, each retried after a pause.
pub const PUBLISH_ERRORS: &str = "order_events_publish_errors_total";
/// Rows waiting to be published, and how long the oldest has waited.
pub const WAITING: &str = "order_events_outbox_rows";
pub const OLDEST_AGE: &str = "order_events_outbox_oldest_age_seconds";
/// Rows Redis refused for their content, held with the reason (their orders' later rows wait).
pub const HELD: &str = "order_events_outbox_held_rows";
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
        "Outbox rows Redis refused for their content, held with the reason."
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

pub fn published(new_status: &str, written: DateTime<Utc>) {
    counter!(PUBLISHED, "new_status" => new_status.to_owned()).increment(1);
    let delay = (Utc::now() - written).to_std().unwrap_or_default();
    histogram!(DELAY).record(delay.as_secs_f64());
}

pub fn publish_failed() {
    counter!(PUBLISH_ERRORS).increment(1);
}

pub fn backlog(seen: &Backlog) {
    gauge!(WAITING).set(seen.waiting as f64);
    gauge!(OLDEST_AGE).set(seen.oldest.as_secs_f64());
    gauge!(HELD).set(seen.held as f64);
}

pub fn leader(leads: bool) {
    gauge!(LEADER).set(if leads { 1.0 } else { 0.0 });
}
