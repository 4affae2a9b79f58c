//! What the worker did, recorded once for two readers: the Prometheus metrics (the names
//! operators already alert on from the service's Dapr days, plus this worker's own) and the
//! running [`Progress`] totals that the demo and tests wait on. One [`Recorder`] feeds both, so
//! they cannot disagree. It takes names and numbers, never the domain's types: every module may
//! record, and this one depends on none of them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::{mpsc, watch};

/// The seed's names (operators alert on them since the service's Dapr days) count the
/// fulfillment topic alone and carry no label; every other series has a `topic` label.
///
/// Fulfillment entries settled (acked, dead-lettered, or left pending for an unknown order).
pub const EVENTS_CONSUMED: &str = "fulfillment_status_events_consumed_total";
/// Payment entries settled, by `topic`.
pub const PAYMENT_EVENTS_CONSUMED: &str = "payment_events_consumed_total";
/// Order status changes, by history `reason` (`FulfillmentShipped`, `PaymentConfirmed`, …).
pub const ORDER_STATUS_UPDATES: &str = "order_status_updates_total";
/// Failed attempts, by `kind`: `redis`, `postgres` (transient, retried), `decode`,
/// `max_deliveries` (dead-lettered).
pub const CONSUMER_ERRORS: &str = "fulfillment_consumer_errors_total";
/// From the start of a batch to its COMMIT, recorded once per fulfillment event of the batch.
pub const PROCESSING_DURATION: &str = "fulfillment_event_processing_duration_seconds";
/// Events by `topic` and `outcome`: applied, duplicate, stale, ignored, conflict,
/// unknown_order, rejected.
pub const OUTCOMES: &str = "fulfillment_event_outcomes_total";
/// Events that contradict their order's state (a payment for a closed order), by `topic`.
pub const CONFLICTS: &str = "order_event_conflicts_total";
/// Orders with a late event: one older than an event already applied to the order (a replica
/// died holding it), recomputed from their recorded events (or, changed outside the
/// worker since, applied as it stands; the log says which).
pub const RECOMPUTES: &str = "order_recomputes_total";
pub const CLAIMED: &str = "fulfillment_entries_claimed_total";
/// Claim rounds this replica finished: that it looks for stuck work at all.
pub const CLAIM_ROUNDS: &str = "fulfillment_claim_rounds_total";
pub const DEAD_LETTERED: &str = "fulfillment_entries_dead_lettered_total";
pub const BATCH_SIZE: &str = "fulfillment_batch_size";
/// Per `topic`: the group's lag (entries not yet delivered), pending count and dead-letter
/// length, as last seen by this replica's claim round.
pub const LAG: &str = "fulfillment_stream_lag";
pub const PENDING: &str = "fulfillment_stream_pending";
pub const DEAD_LETTER_LENGTH: &str = "fulfillment_dead_letter_length";
/// Per `topic`: how long the oldest pending entry has waited since its last delivery. Past a
/// few CLAIM_MIN_IDLE_MS, no replica is claiming it.
pub const OLDEST_PENDING_IDLE: &str = "fulfillment_stream_oldest_pending_idle_seconds";
/// Per `topic`: entries the stream holds (acknowledged ones until `trim` deletes them) and how
/// long ago its oldest one was written, as last seen by this replica's claim round. An age past
/// trim's keep window says retention is not running (or a group holds the cut).
pub const STREAM_LENGTH: &str = "fulfillment_stream_length";
pub const OLDEST_ENTRY_AGE: &str = "fulfillment_stream_oldest_entry_age_seconds";
/// CLAIM_MIN_IDLE_MS as configured, so alerts compare against it rather than a copy.
pub const CLAIM_MIN_IDLE: &str = "fulfillment_claim_min_idle_seconds";

/// The inbox (`processed_events`): its rows (PostgreSQL's estimate), the age of its oldest row,
/// INBOX_RETENTION as configured, the rows its retention dropped, and when this replica last
/// walked it to the end (the alert's signal: an active order's record may be older than the
/// retention, so the oldest row's age alone cannot say whether retention runs).
pub const INBOX_ROWS: &str = "order_inbox_rows";
pub const INBOX_OLDEST_AGE: &str = "order_inbox_oldest_event_age_seconds";
pub const INBOX_RETENTION: &str = "order_inbox_retention_seconds";
pub const INBOX_PRUNED: &str = "order_inbox_pruned_total";
pub const INBOX_LAST_PRUNE: &str = "order_inbox_last_prune_timestamp_seconds";

/// Spans that never reached the OpenTelemetry collector (unreachable, too slow, queue full).
pub const SPANS_DROPPED: &str = "otel_spans_dropped_total";

/// The topic the seed's unlabelled names count.
const FULFILLMENT: &str = crate::topics::BASE;

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
            describe();
            process_collector().describe();
            handle
        })
        .clone()
}

/// How often [`upkeep`] drains the histograms.
const UPKEEP: Duration = Duration::from_secs(5);

/// Drains the histograms' recorded values into their buckets every few seconds, forever: the
/// recorder otherwise holds each value until a scrape renders it, and a worker nobody scrapes
/// (a drain before Prometheus finds the pod, a test) held eight bytes per event, tens of MB over
/// a real backlog.
pub async fn upkeep(handle: PrometheusHandle) {
    loop {
        tokio::time::sleep(UPKEEP).await;
        handle.run_upkeep();
    }
}

/// HELP lines for `/metrics`: what the doc comments above say, for whoever reads a scrape
/// (and promtool's lint, which wants one per metric).
fn describe() {
    describe_consumption();
    describe_inbox();
    describe_streams();
    describe_counter!(
        SPANS_DROPPED,
        "Spans that never reached the OpenTelemetry collector."
    );
}

/// Events consumed and what they did to orders.
fn describe_consumption() {
    describe_counter!(
        EVENTS_CONSUMED,
        "Fulfillment entries settled (acked, dead-lettered, or left pending for an unknown order)."
    );
    describe_counter!(
        PAYMENT_EVENTS_CONSUMED,
        "Payment entries settled, by topic."
    );
    describe_counter!(
        ORDER_STATUS_UPDATES,
        "Order status changes, by history reason."
    );
    describe_counter!(CONSUMER_ERRORS, "Failed attempts, by kind: redis, postgres (retried), decode, max_deliveries (dead-lettered).");
    describe_histogram!(
        PROCESSING_DURATION,
        "From the start of a fulfillment event's batch to its COMMIT, in seconds."
    );
    describe_counter!(OUTCOMES, "Events by topic and outcome.");
    describe_counter!(
        CONFLICTS,
        "Events that contradict their order's state (a payment for a closed order), by topic."
    );
    describe_counter!(RECOMPUTES, "Orders recomputed for a late event.");
}

/// The inbox and its retention.
fn describe_inbox() {
    describe_gauge!(
        INBOX_ROWS,
        "Rows of the inbox, as PostgreSQL estimates them."
    );
    describe_gauge!(
        INBOX_OLDEST_AGE,
        "Age of the inbox's oldest row, in seconds; past INBOX_RETENTION, its retention is not running."
    );
    describe_gauge!(
        INBOX_RETENTION,
        "INBOX_RETENTION as configured, in seconds."
    );
    describe_counter!(INBOX_PRUNED, "Inbox rows dropped by its retention.");
    describe_gauge!(
        INBOX_LAST_PRUNE,
        "When this replica last walked the inbox's retention to its end (Unix time)."
    );
}

/// The streams and their groups as the claim rounds see them, and the entries taken from
/// them: claimed, dead-lettered, read per batch.
fn describe_streams() {
    describe_counter!(
        CLAIMED,
        "Entries taken over from the pending list, by topic."
    );
    describe_counter!(
        CLAIM_ROUNDS,
        "Claim rounds finished (every stream's pending list walked once)."
    );
    describe_counter!(
        DEAD_LETTERED,
        "Entries sent to the topic's dead-letter stream, by topic."
    );
    describe_histogram!(BATCH_SIZE, "Entries per batch, all topics.");
    describe_gauge!(
        LAG,
        "The group's lag (entries not yet delivered), by topic, as of the last claim round."
    );
    describe_gauge!(
        PENDING,
        "Entries pending in the group, by topic, as of the last claim round."
    );
    describe_gauge!(
        OLDEST_PENDING_IDLE,
        "Seconds since the oldest pending entry was last delivered, by topic."
    );
    describe_gauge!(
        DEAD_LETTER_LENGTH,
        "The dead-letter stream's length, by topic."
    );
    describe_gauge!(
        STREAM_LENGTH,
        "Entries the stream holds (acknowledged ones until trimmed), by topic."
    );
    describe_gauge!(
        OLDEST_ENTRY_AGE,
        "Seconds since the stream's oldest entry was written (0 when empty), by topic."
    );
    describe_gauge!(
        CLAIM_MIN_IDLE,
        "CLAIM_MIN_IDLE_MS as configured, in seconds."
    );
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Refreshes the `process_*` gauges (resident memory, open fds, CPU): called on each scrape,
/// so they are as of the scrape.
pub fn process() {
    process_collector().collect();
}

/// Running totals since start, published after every batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Entries settled: acked, dead-lettered, or (unknown order) left pending to retry.
    pub consumed: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub ignored: u64,
    pub unknown_order: u64,
    /// Events that contradict their order's state (a payment for a cancelled order).
    pub conflict: u64,
    pub dead_lettered: u64,
    /// Entries taken over from the pending list (XAUTOCLAIM), whoever held them.
    pub claimed: u64,
    /// Claim rounds finished: a replica that claimed nothing did look.
    pub claim_rounds: u64,
    /// Pending ids whose entry had been deleted from the stream.
    pub deleted: u64,
    /// Order status changes written (history rows).
    pub transitions: u64,
    /// Failed attempts, each retried: reads, applies, acks, claims (an outage, a stalled or
    /// reset connection, a deadlock).
    pub retried: u64,
}

/// A settled batch, as recorded: topics, outcomes and reasons by name.
pub struct Settled<'a> {
    /// The topic of each entry read, deleted ones included.
    pub entries: Vec<&'static str>,
    pub deleted: usize,
    /// (topic, outcome) of each event that went through the transaction; outcomes as
    /// `fulfillment_event_outcomes_total` labels them (`applied`, `duplicate`, …).
    pub outcomes: Vec<(&'static str, &'static str)>,
    /// The history `reason` of each order status change written.
    pub transitions: Vec<&'a str>,
    /// Orders with a late event.
    pub recomputed: usize,
    /// (topic, error kind if the refusal is an error) of each entry dead-lettered.
    pub dead_letters: Vec<(&'static str, Option<&'static str>)>,
    /// From the start of the batch to its COMMIT.
    pub seconds: f64,
    /// When its transactions committed, and the stream ids of the events they applied.
    pub committed: (Instant, Vec<&'a str>),
}

/// A batch's events became durable (the benchmark measures XADD → COMMIT with it).
#[derive(Debug, Clone)]
pub struct Committed {
    pub at: Instant,
    /// The stream ids of the events the transaction applied.
    pub entry_ids: Vec<String>,
}

/// Where the worker records what it did; clones share the totals.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    progress: std::sync::Arc<watch::Sender<Progress>>,
    /// Who listens to commits, if anyone (the benchmark): nothing is sent otherwise.
    commits: std::sync::Arc<std::sync::Mutex<Option<mpsc::UnboundedSender<Committed>>>>,
}

impl Recorder {
    /// The totals so far, updated after each batch.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Every batch's commit from now on, told once the batch is settled.
    pub fn commits(&self) -> mpsc::UnboundedReceiver<Committed> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.listening() = Some(tx);
        rx
    }

    fn listening(&self) -> std::sync::MutexGuard<'_, Option<mpsc::UnboundedSender<Committed>>> {
        self.commits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Entries of `topic` taken over from the pending list.
    pub fn claimed(&self, topic: &'static str, count: usize) {
        counter!(CLAIMED, "topic" => topic).increment(count as u64);
        self.progress
            .send_modify(|progress| progress.claimed += count as u64);
    }

    /// A claim round walked every stream's pending list.
    pub fn claim_round(&self) {
        counter!(CLAIM_ROUNDS).increment(1);
        self.progress
            .send_modify(|progress| progress.claim_rounds += 1);
    }

    /// An attempt failed and will be retried (any operation, on either server).
    pub fn retried(&self) {
        self.progress.send_modify(|progress| progress.retried += 1);
    }

    pub fn settled(&self, batch: &Settled<'_>) {
        if let Some(commits) = self.listening().as_ref() {
            let (at, ids) = &batch.committed;
            let entry_ids = ids.iter().map(|id| (*id).to_owned()).collect();
            // A receiver that went away only means nobody watches any more.
            let _ = commits.send(Committed { at: *at, entry_ids });
        }
        histogram!(BATCH_SIZE).record(batch.entries.len() as f64);
        for &topic in &batch.entries {
            match topic {
                FULFILLMENT => counter!(EVENTS_CONSUMED).increment(1),
                _ => counter!(PAYMENT_EVENTS_CONSUMED, "topic" => topic).increment(1),
            }
        }
        for &(topic, outcome) in &batch.outcomes {
            counter!(OUTCOMES, "topic" => topic, "outcome" => outcome).increment(1);
            if outcome == "conflict" {
                counter!(CONFLICTS, "topic" => topic).increment(1);
            }
            if topic == FULFILLMENT {
                histogram!(PROCESSING_DURATION).record(batch.seconds);
            }
        }
        counter!(RECOMPUTES).increment(batch.recomputed as u64);
        for &reason in &batch.transitions {
            counter!(ORDER_STATUS_UPDATES, "reason" => reason.to_owned()).increment(1);
        }
        for &(topic, error_kind) in &batch.dead_letters {
            counter!(DEAD_LETTERED, "topic" => topic).increment(1);
            if let Some(kind) = error_kind {
                counter!(CONSUMER_ERRORS, "kind" => kind).increment(1);
            }
        }
        self.progress.send_modify(|progress| {
            progress.consumed += batch.entries.len() as u64;
            progress.deleted += batch.deleted as u64;
            progress.dead_lettered += batch.dead_letters.len() as u64;
            progress.transitions += batch.transitions.len() as u64;
            for &(_, outcome) in &batch.outcomes {
                match outcome {
                    "applied" => progress.applied += 1,
                    "duplicate" => progress.duplicate += 1,
                    "stale" => progress.stale += 1,
                    "ignored" => progress.ignored += 1,
                    "unknown_order" => progress.unknown_order += 1,
                    "conflict" => progress.conflict += 1,
                    // `rejected`: counted with the dead letters.
                    _ => {}
                }
            }
        });
    }
}

/// A transient failure talking to `server` ("redis" or "postgres").
pub fn transient_error(server: &'static str) {
    counter!(CONSUMER_ERRORS, "kind" => server).increment(1);
}

/// What the backlog gauges show of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// The group's lag: None before Redis 7 or when Redis cannot tell.
    pub lag: Option<u64>,
    pub pending: u64,
    /// The idle time of the oldest (lowest id) pending entry; zero when nothing is pending.
    /// Claims reset an entry's idle time, so this grows past CLAIM_MIN_IDLE_MS only while no
    /// replica claims.
    pub oldest_idle: Duration,
    /// The dead-letter stream's length.
    pub dead_letters: u64,
    /// Entries the stream holds, acknowledged ones included until trimmed.
    pub length: u64,
    /// How long ago its oldest entry was written (by this machine's clock; zero when empty):
    /// past trim's keep window, retention is not running or a group holds the cut.
    pub oldest_entry_age: Duration,
}

/// The gauges of one stream's backlog and extent, and the claim idle they are judged against.
pub fn backlog(topic: &'static str, seen: &Backlog, claim_min_idle: Duration) {
    if let Some(lag) = seen.lag {
        gauge!(LAG, "topic" => topic).set(lag as f64);
    }
    gauge!(PENDING, "topic" => topic).set(seen.pending as f64);
    gauge!(OLDEST_PENDING_IDLE, "topic" => topic).set(seen.oldest_idle.as_secs_f64());
    gauge!(DEAD_LETTER_LENGTH, "topic" => topic).set(seen.dead_letters as f64);
    gauge!(STREAM_LENGTH, "topic" => topic).set(seen.length as f64);
    gauge!(OLDEST_ENTRY_AGE, "topic" => topic).set(seen.oldest_entry_age.as_secs_f64());
    gauge!(CLAIM_MIN_IDLE).set(claim_min_idle.as_secs_f64());
}

/// INBOX_RETENTION, for the alerts to compare the inbox's oldest row against.
pub fn inbox_retention(keep: Duration) {
    gauge!(INBOX_RETENTION).set(keep.as_secs_f64());
}

/// The inbox as last seen: PostgreSQL's estimate of its rows, the age of its oldest (none when
/// empty).
pub fn inbox(rows_estimate: f64, oldest: Option<Duration>) {
    gauge!(INBOX_ROWS).set(rows_estimate);
    gauge!(INBOX_OLDEST_AGE).set(oldest.unwrap_or_default().as_secs_f64());
}

/// Rows the inbox's retention dropped; `finished`: it walked to the end (not cut by shutdown).
pub fn inbox_pruned(rows: u64, finished: bool) {
    counter!(INBOX_PRUNED).increment(rows);
    if finished {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        gauge!(INBOX_LAST_PRUNE).set(now.unwrap_or_default().as_secs_f64());
    }
}
