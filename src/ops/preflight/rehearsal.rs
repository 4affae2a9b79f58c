//! The decode rehearsal: a stream's newest entries and every entry Dapr holds pending go
//! through the worker's own decoder and rules, in a transaction that is rolled back. What would
//! apply, what would be dead-lettered and why, which orders the database does not know, and which
//! payload fields the worker ignores.

use std::collections::BTreeMap;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use redis::streams::StreamPendingCountReply;
use serde::Serialize;

use crate::envelope::OrderIds;
use crate::ops::replay::{apply_page, Counts, DryRun, Problem, RangeRequest, ReplayReport};
use crate::ops::{xrange, xrevrange};
use crate::store::Tables;
use crate::stream::id::StreamId;
use crate::stream::{RedisConnection, StreamEntry};
use crate::topics::{self, Topic};

/// Entries applied per transaction step: the worker's default batch.
const PAGE: usize = 500;

/// Order ids listed as unknown; the count covers every one.
const LISTED: usize = 20;

/// What the rehearsal found on one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rehearsal {
    /// The newest entries read (`--sample`).
    pub sampled: u64,
    /// Entries Dapr's consumer holds pending (read whether sampled or not).
    pub dapr_pending: u64,
    /// Dapr's pending entries whose entry is gone from the stream (trimmed): the worker acks
    /// them without applying anything.
    pub dapr_pending_deleted: u64,
    /// Distinct entries rehearsed.
    pub entries: u64,
    /// Each outcome, as a worker starting now would get them; `undecodable` always counted, the
    /// others only when the database could be used (else `skipped` says why).
    pub outcomes: Counts,
    pub skipped: Option<String>,
    /// What would be dead-lettered, by reason, with one entry each.
    pub dead_letters: Vec<DeadLetterReason>,
    /// Entries past the first thousand that did not apply: counted in `outcomes`, not grouped.
    pub not_grouped: u64,
    /// Orders the events name that the database does not have.
    pub unknown_orders: Vec<String>,
    pub unknown_orders_not_listed: u64,
    /// Payload fields the worker does not read, with how many entries carry each.
    pub ignored_fields: BTreeMap<String, u64>,
}

/// One reason entries would be dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterReason {
    /// `undecodable`, `rejected` or `unknown_order`.
    pub outcome: &'static str,
    pub reason: String,
    pub entries: u64,
    pub example_entry_id: String,
}

impl Rehearsal {
    /// Entries a worker would dead-letter (an unknown order's after MAX_DELIVERIES attempts).
    pub fn dead_lettered(&self) -> u64 {
        self.dead_letters.iter().map(|reason| reason.entries).sum()
    }
}

/// What to rehearse on one stream.
pub struct Sample<'a> {
    pub topic: &'static dyn Topic,
    pub stream: &'a str,
    /// The newest entries to take.
    pub newest: usize,
    /// The groups whose Dapr consumer's pending entries to take too.
    pub dapr_groups: Vec<&'a str>,
    pub max_entry_bytes: usize,
}

/// Reads the entries of `sample` and rehearses them; `database` is the connection and tables
/// to apply them with, or why there are none.
pub async fn rehearse(
    redis: &mut RedisConnection,
    database: Result<(&mut AsyncPgConnection, &Tables), String>,
    sample: &Sample<'_>,
) -> anyhow::Result<Rehearsal> {
    let mut rehearsal = Rehearsal::default();
    let mut entries = match sample.newest {
        0 => Vec::new(),
        newest => xrevrange(redis, sample.stream, newest).await?,
    };
    rehearsal.sampled = entries.len() as u64;
    for group in &sample.dapr_groups {
        let ids = dapr_pending(redis, sample.stream, group).await?;
        rehearsal.dapr_pending += ids.len() as u64;
        for id in ids {
            match xrange(redis, sample.stream, &id, &id, 1).await?.pop() {
                Some(entry) => entries.push(entry),
                None => rehearsal.dapr_pending_deleted += 1,
            }
        }
    }
    entries.sort_by_key(|entry| entry.id.parse::<StreamId>().ok());
    entries.dedup_by(|a, b| a.id == b.id);
    rehearsal.entries = entries.len() as u64;
    for entry in &entries {
        count_ignored(sample, entry, &mut rehearsal.ignored_fields);
    }
    let problems = match database {
        Ok((pg, tables)) => apply_dry(pg, tables, sample, &entries, &mut rehearsal).await?,
        Err(why) => {
            rehearsal.skipped = Some(why);
            decode_only(sample, &entries, &mut rehearsal.outcomes)
        }
    };
    group_problems(problems, &mut rehearsal);
    Ok(rehearsal)
}

/// The ids Dapr's consumer (named as its group) holds pending, a page at a time.
async fn dapr_pending(
    redis: &mut RedisConnection,
    stream: &str,
    group: &str,
) -> anyhow::Result<Vec<String>> {
    const PAGE: usize = 1_000;
    let mut ids = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .arg(&start)
            .arg("+")
            .arg(PAGE)
            .arg(group)
            .query_async(redis)
            .await
            .with_context(|| format!("reading what Dapr's consumer {group} holds on {stream}"))?;
        let page = reply.ids.len();
        if let Some(last) = reply.ids.last() {
            start = format!("({}", last.id);
        }
        ids.extend(reply.ids.into_iter().map(|pending| pending.id));
        if page < PAGE {
            return Ok(ids);
        }
    }
}

/// Counts the fields of `entry`'s payload its topic does not read.
fn count_ignored(sample: &Sample<'_>, entry: &StreamEntry, ignored: &mut BTreeMap<String, u64>) {
    let Ok(opened) = crate::envelope::open(&entry.fields, sample.max_entry_bytes) else {
        return;
    };
    for name in opened.payload.names() {
        if !sample.topic.fields().contains(&name) {
            *ignored.entry(name.to_owned()).or_default() += 1;
        }
    }
}

/// Applies `entries` in a transaction rolled back at the end, a page at a time as a worker's
/// batches would; returns what did not apply. Waits at most a few seconds for a row lock (a
/// live consumer holding an order), rather than holding up the order service.
async fn apply_dry(
    pg: &mut AsyncPgConnection,
    tables: &Tables,
    sample: &Sample<'_>,
    entries: &[StreamEntry],
    rehearsal: &mut Rehearsal,
) -> anyhow::Result<Vec<Problem>> {
    let request = RangeRequest {
        topic: sample.topic,
        stream: sample.stream,
        from: StreamId::MIN,
        to: StreamId::MAX,
        order_id: None,
        max_entry_bytes: sample.max_entry_bytes,
        page_size: PAGE,
        tables,
    };
    let mut report = ReplayReport::new(&request, true);
    let dry_run = DryRun::begin(pg).await?;
    let applied = async {
        use diesel_async::SimpleAsyncConnection;
        pg.batch_execute("SET LOCAL lock_timeout = '5s'").await?;
        for page in entries.chunks(PAGE) {
            apply_page(pg, page, &request, &mut report).await?;
        }
        anyhow::Ok(())
    }
    .await;
    dry_run.end(pg, applied).await?;
    rehearsal.outcomes = report.counts;
    rehearsal.not_grouped = report.problems_not_listed;
    Ok(report.problems)
}

/// Without a database: each entry decoded only, so undecodable ones are still found.
fn decode_only(sample: &Sample<'_>, entries: &[StreamEntry], counts: &mut Counts) -> Vec<Problem> {
    let mut problems = Vec::new();
    for entry in entries {
        let decoded = topics::decode(
            sample.topic,
            &entry.fields,
            sample.max_entry_bytes,
            OrderIds::default(),
        );
        if let Err(error) = decoded {
            counts.undecodable += 1;
            problems.push(Problem {
                entry_id: entry.id.clone(),
                outcome: "undecodable",
                order_id: None,
                reason: error.to_string(),
            });
        }
    }
    problems
}

/// Groups what did not apply by reason; an unknown order's events share one reason, and the
/// orders are listed.
fn group_problems(problems: Vec<Problem>, rehearsal: &mut Rehearsal) {
    let mut unknown = std::collections::BTreeSet::new();
    for problem in problems {
        let reason = match problem.outcome {
            "unknown_order" => {
                unknown.insert(problem.order_id.clone().unwrap_or_default());
                "the order does not exist in the database (retried until MAX_DELIVERIES, then \
                 dead-lettered)"
                    .to_owned()
            }
            _ => problem.reason,
        };
        let grouped = (rehearsal.dead_letters.iter_mut())
            .find(|known| known.outcome == problem.outcome && known.reason == reason);
        match grouped {
            Some(known) => known.entries += 1,
            None => rehearsal.dead_letters.push(DeadLetterReason {
                outcome: problem.outcome,
                reason,
                entries: 1,
                example_entry_id: problem.entry_id,
            }),
        }
    }
    rehearsal.unknown_orders_not_listed = unknown.len().saturating_sub(LISTED) as u64;
    rehearsal.unknown_orders = unknown.into_iter().take(LISTED).collect();
}
