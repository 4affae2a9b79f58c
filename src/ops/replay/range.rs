//! Replaying a range of the main stream: `XRANGE` a page at a time, decode each entry as the
//! worker does, and apply each page with [`apply_batch`] in one transaction. The inbox makes it
//! idempotent: an event already applied comes back `duplicate` and writes nothing.
//!
//! A dry run does the same inside one outer transaction that is rolled back at the end: every
//! page sees the pages before it (so the outcomes are the ones a real replay would get), and
//! nothing is ever committed. It holds the touched orders' row locks until it ends.

use crate::stream::RedisConnection;
use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, TransactionManager};
use indicatif::ProgressBar;
use serde::Serialize;
use tracing::{Instrument, Span};

use crate::ops::xrange;
use crate::store::{apply_batch, Incoming, Plan, Tables};
use crate::stream::id::StreamId;
use crate::stream::StreamEntry;
use crate::telemetry::spans::{self, Entry, Step};
use crate::topics::{self, Event, Outcome, Topic};

/// Entries read and applied at a time: the worker's default batch, so a page costs what a
/// worker batch costs.
pub const PAGE_SIZE: usize = 500;

/// How many transitions and problems a report lists; the counts cover every one. A replay of a
/// long range must not hold millions of lines in memory to print them.
pub const LISTED: usize = 1_000;

/// What to replay.
#[derive(Debug, Clone)]
pub struct RangeRequest<'a> {
    /// The topic whose events the stream holds: how its entries decode.
    pub topic: &'static dyn Topic,
    pub stream: &'a str,
    /// Inclusive bounds.
    pub from: StreamId,
    pub to: StreamId,
    /// Only this order's events, when set.
    pub order_id: Option<&'a str>,
    pub max_entry_bytes: usize,
    pub page_size: usize,
    /// The tables the events apply to.
    pub tables: &'a Tables,
}

/// Events per outcome, plus the entries that could not be decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub applied: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub ignored: u64,
    pub conflict: u64,
    pub unknown_order: u64,
    pub rejected: u64,
    pub undecodable: u64,
}

impl Counts {
    /// (name, count) in a fixed order, for the table.
    pub fn rows(&self) -> [(&'static str, u64); 8] {
        [
            ("applied", self.applied),
            ("duplicate", self.duplicate),
            ("stale", self.stale),
            ("ignored", self.ignored),
            ("conflict", self.conflict),
            ("unknown_order", self.unknown_order),
            ("rejected", self.rejected),
            ("undecodable", self.undecodable),
        ]
    }

    fn add(&mut self, outcome: &Outcome) {
        let count = match outcome {
            Outcome::Applied => &mut self.applied,
            Outcome::Duplicate => &mut self.duplicate,
            Outcome::Stale => &mut self.stale,
            Outcome::Ignored => &mut self.ignored,
            Outcome::Conflict => &mut self.conflict,
            Outcome::UnknownOrder => &mut self.unknown_order,
            Outcome::Rejected(_) => &mut self.rejected,
        };
        *count += 1;
    }
}

/// An order status change the replay wrote (or, in a dry run, would write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionLine {
    pub entry_id: String,
    pub order_id: String,
    pub from: String,
    pub to: String,
}

/// An entry that did not apply and why: `unknown_order`, `rejected` or `undecodable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub entry_id: String,
    pub outcome: &'static str,
    pub order_id: Option<String>,
    pub reason: String,
}

/// What a replay did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub stream: String,
    pub from: StreamId,
    pub to: StreamId,
    pub order_id: Option<String>,
    pub dry_run: bool,
    /// Entries in the range.
    pub read: u64,
    /// Decoded events that passed the --order-id filter, i.e. were applied.
    pub replayed: u64,
    pub counts: Counts,
    /// At most [`LISTED`], in stream order.
    pub transitions: Vec<TransitionLine>,
    pub transitions_not_listed: u64,
    /// Status changes written to the outbox, which the workers' relay publishes as
    /// `orders.order.status_changed` (a dry run rolls them back with the rest).
    pub published: u64,
    /// At most [`LISTED`], in stream order.
    pub problems: Vec<Problem>,
    pub problems_not_listed: u64,
}

impl ReplayReport {
    pub(crate) fn new(request: &RangeRequest<'_>, dry_run: bool) -> Self {
        Self {
            stream: request.stream.to_owned(),
            from: request.from,
            to: request.to,
            order_id: request.order_id.map(str::to_owned),
            dry_run,
            read: 0,
            replayed: 0,
            counts: Counts::default(),
            transitions: Vec::new(),
            transitions_not_listed: 0,
            published: 0,
            problems: Vec::new(),
            problems_not_listed: 0,
        }
    }

    fn problem(&mut self, problem: Problem) {
        if self.problems.len() < LISTED {
            self.problems.push(problem);
        } else {
            self.problems_not_listed += 1;
        }
    }

    /// Counts the page's outcomes and keeps its transitions; returns the events that did not
    /// apply, for the caller to list in stream order with the page's undecodable entries.
    fn record(&mut self, batch: &[Incoming<'_>], plan: &Plan) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (incoming, outcome) in batch.iter().zip(&plan.outcomes) {
            self.counts.add(outcome);
            let reason = match outcome {
                // The worker's dead-letter text for the same case.
                Outcome::UnknownOrder => {
                    format!(
                        "order {:?} does not exist",
                        incoming.event.change.order_id()
                    )
                }
                Outcome::Rejected(reason) => reason.clone(),
                _ => continue,
            };
            problems.push(Problem {
                entry_id: incoming.entry_id.to_owned(),
                outcome: outcome.as_str(),
                order_id: Some(incoming.event.change.order_id().to_owned()),
                reason,
            });
        }
        self.published += plan.changes.len() as u64;
        for transition in &plan.transitions {
            if self.transitions.len() < LISTED {
                self.transitions.push(TransitionLine {
                    entry_id: transition.stream_entry_id.clone(),
                    order_id: transition.order_id.clone(),
                    from: transition.from.as_str().to_owned(),
                    to: transition.to.as_str().to_owned(),
                });
            } else {
                self.transitions_not_listed += 1;
            }
        }
        problems
    }
}

/// Replays `request`'s range. For real, each page is its own transaction (committed as it
/// goes, like a worker's batches); with `dry_run`, everything runs in one transaction that is
/// rolled back.
pub async fn replay_range(
    redis: &mut RedisConnection,
    pg: &mut AsyncPgConnection,
    request: &RangeRequest<'_>,
    dry_run: bool,
) -> anyhow::Result<ReplayReport> {
    replay_range_shown(redis, pg, request, dry_run, &ProgressBar::hidden()).await
}

/// [`replay_range`], each page read counted on `progress`.
pub async fn replay_range_shown(
    redis: &mut RedisConnection,
    pg: &mut AsyncPgConnection,
    request: &RangeRequest<'_>,
    dry_run: bool,
    progress: &ProgressBar,
) -> anyhow::Result<ReplayReport> {
    super::super::require_stream(redis, request.stream).await?;
    super::retained::check(redis, request.stream, request.from, request.to).await?;
    if !dry_run {
        return walk(redis, pg, request, false, progress).await;
    }
    let dry_run = DryRun::begin(pg).await?;
    let walked = walk(redis, pg, request, true, progress).await;
    dry_run.end(pg, walked).await
}

/// A transaction that is always rolled back: what runs in it sees its own writes, as a real
/// run would, and nothing is ever committed. It holds the rows it locks until it ends.
pub(crate) struct DryRun(());

impl DryRun {
    pub(crate) async fn begin(pg: &mut AsyncPgConnection) -> anyhow::Result<Self> {
        Manager::begin_transaction(pg)
            .await
            .context("beginning the dry run's transaction")?;
        Ok(Self(()))
    }

    /// Rolls back, whatever `outcome` the work in it came to, and returns that outcome.
    pub(crate) async fn end<T>(
        self,
        pg: &mut AsyncPgConnection,
        outcome: anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        Manager::rollback_transaction(pg)
            .await
            .context("rolling back the dry run's transaction")?;
        outcome
    }
}

type Manager = <AsyncPgConnection as AsyncConnection>::TransactionManager;

async fn walk(
    redis: &mut RedisConnection,
    pg: &mut AsyncPgConnection,
    request: &RangeRequest<'_>,
    dry_run: bool,
    progress: &ProgressBar,
) -> anyhow::Result<ReplayReport> {
    let mut report = ReplayReport::new(request, dry_run);
    let end = request.to.to_string();
    let mut start = request.from.to_string();
    loop {
        let page = xrange(redis, request.stream, &start, &end, request.page_size).await?;
        let Some(last) = page.last() else {
            break;
        };
        report.read += page.len() as u64;
        apply_page(pg, &page, request, &mut report).await?;
        progress.inc(page.len() as u64);
        if page.len() < request.page_size {
            break;
        }
        // `(` makes the start exclusive: the next page begins after this one's last entry.
        start = format!("({}", last.id);
    }
    Ok(report)
}

/// Decodes `page` as the worker does and applies its events with [`apply_batch`], counting
/// every outcome and undecodable entry in `report`.
pub(crate) async fn apply_page(
    pg: &mut AsyncPgConnection,
    page: &[StreamEntry],
    request: &RangeRequest<'_>,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let (events, mut problems) = decode_page(page, request, &mut report.counts);
    let batch: Vec<Incoming<'_>> = events
        .iter()
        .map(|(entry_id, event)| Incoming { entry_id, event })
        .collect();
    let traced = process_spans(request.stream, &batch);
    let attributes = [("order_worker.events", batch.len() as i64)];
    let applying = apply_batch(pg, request.tables, &batch).instrument(spans::for_entries(
        Step::Apply,
        &attributes,
        &traced,
    ));
    let plan = applying.await.with_context(|| {
        let first = page.first().map_or("", |entry| entry.id.as_str());
        let last = page.last().map_or("", |entry| entry.id.as_str());
        format!("applying entries {first} to {last}")
    })?;
    for (span, outcome) in traced.iter().zip(&plan.outcomes) {
        spans::outcome(span, outcome.as_str());
    }
    report.replayed += batch.len() as u64;
    problems.extend(report.record(&batch, &plan));
    // Ids of one stream sort as numbers, never as text (`9-0` < `10-0`).
    problems.sort_by_key(|problem| problem.entry_id.parse::<StreamId>().ok());
    for problem in problems {
        report.problem(problem);
    }
    Ok(())
}

/// Decodes `page` as the worker does: the events of the request (of its order, if it names
/// one) with their entry ids, and a problem for each entry that does not decode (counted in
/// `counts`).
fn decode_page<'a>(
    page: &'a [StreamEntry],
    request: &RangeRequest<'_>,
    counts: &mut Counts,
) -> (Vec<(&'a str, Event)>, Vec<Problem>) {
    let mut events: Vec<(&str, Event)> = Vec::with_capacity(page.len());
    let mut problems = Vec::new();
    for entry in page {
        match topics::decode(
            request.topic,
            &entry.fields,
            request.max_entry_bytes,
            request.tables.orders.order_ids(),
        ) {
            Ok(event)
                if request
                    .order_id
                    .is_some_and(|id| id != event.change.order_id()) => {}
            Ok(event) => events.push((&entry.id, event)),
            Err(error) => {
                // Never dead-lettered here: replay leaves the dead-letter stream to the workers.
                counts.undecodable += 1;
                problems.push(Problem {
                    entry_id: entry.id.clone(),
                    outcome: "undecodable",
                    order_id: None,
                    reason: error.to_string(),
                });
            }
        }
    }
    (events, problems)
}

/// One processing span per event of `batch`, read from `stream`: each replayed event continues
/// its publisher's trace, as the worker's processing did.
fn process_spans(stream: &str, batch: &[Incoming<'_>]) -> Vec<Span> {
    batch
        .iter()
        .map(|incoming| {
            spans::process(&Entry {
                stream,
                group: None,
                entry_id: incoming.entry_id,
                event: Some((&incoming.event.event_id, incoming.event.change.order_id())),
                trace: &incoming.event.trace,
            })
        })
        .collect()
}
