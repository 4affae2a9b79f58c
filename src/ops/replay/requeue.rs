//! `replay --dead-letter`: puts dead letters back on the main stream, once what made them fail
//! is fixed (the order created, the worker upgraded), for the workers to apply as new entries.
//! Their event ids were never recorded in the inbox, so they are applied, not taken for
//! duplicates.
//!
//! Each move is one Lua script (XADD of the original fields, then XDEL of the dead letter), so
//! an entry is never lost between the two nor moved twice.

use crate::stream::RedisConnection;
use anyhow::Context;
use indicatif::ProgressBar;
use serde::Serialize;

use crate::config::StreamConfig;
use crate::ops::{xrange, xrevrange};
use crate::stream::id::StreamId;
use crate::stream::settle::ADDED_FIELDS;
use crate::stream::StreamEntry;

/// Dead letters read at a time by `--all`.
const PAGE_SIZE: usize = 500;

/// Which dead letters to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These, by their id in the dead-letter stream.
    Ids(Vec<StreamId>),
    /// Every dead letter present when the command starts; later ones (perhaps a moved entry
    /// that failed again) stay for the next run, so `--all` always ends.
    All,
}

/// One dead letter put back on the main stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub dead_letter_id: String,
    /// Its new id in the main stream.
    pub new_id: String,
    /// Its id in the main stream before it was dead-lettered.
    pub source_id: Option<String>,
    /// Why it had been dead-lettered.
    pub error: Option<String>,
}

/// What `replay --dead-letter` moved.
#[derive(Debug, Clone, Serialize)]
pub struct RequeueReport {
    pub dead_letter_stream: String,
    pub stream: String,
    pub moved: Vec<Moved>,
    /// Requested ids that are not (or no longer) in the dead-letter stream.
    pub missing: Vec<String>,
    /// Dead letters left in place because they hold none of the original fields.
    pub empty: Vec<String>,
}

/// Moves the selected dead letters of `config`'s dead-letter stream to its main stream.
pub async fn requeue(
    redis: &mut RedisConnection,
    config: &StreamConfig,
    selection: &Selection,
) -> anyhow::Result<RequeueReport> {
    requeue_shown(redis, config, selection, &ProgressBar::hidden()).await
}

/// [`requeue`], each dead letter handled counted on `progress` (its length set here: the ids
/// asked for, or the dead letters there are).
pub async fn requeue_shown(
    redis: &mut RedisConnection,
    config: &StreamConfig,
    selection: &Selection,
    progress: &ProgressBar,
) -> anyhow::Result<RequeueReport> {
    let dead_letter_stream = config.dead_letter_stream();
    let mut report = RequeueReport {
        dead_letter_stream: dead_letter_stream.clone(),
        stream: config.stream.clone(),
        moved: Vec::new(),
        missing: Vec::new(),
        empty: Vec::new(),
    };
    match selection {
        Selection::Ids(ids) => {
            progress.set_length(ids.len() as u64);
            for id in ids {
                let raw = id.to_string();
                match xrange(redis, &dead_letter_stream, &raw, &raw, 1)
                    .await?
                    .pop()
                {
                    Some(entry) => move_one(redis, &mut report, &entry).await?,
                    None => report.missing.push(raw),
                }
                progress.inc(1);
            }
        }
        Selection::All => {
            let last: Vec<StreamEntry> = xrevrange(redis, &dead_letter_stream, 1).await?;
            let Some(last) = last.first() else {
                return Ok(report);
            };
            let end = last.id.clone();
            if !progress.is_hidden() {
                let length: u64 = redis::cmd("XLEN")
                    .arg(&dead_letter_stream)
                    .query_async(redis)
                    .await?;
                progress.set_length(length);
            }
            let mut start = "-".to_owned();
            loop {
                let page = xrange(redis, &dead_letter_stream, &start, &end, PAGE_SIZE).await?;
                for entry in &page {
                    move_one(redis, &mut report, entry).await?;
                    progress.inc(1);
                }
                match page.last() {
                    Some(last) if page.len() == PAGE_SIZE => start = format!("({}", last.id),
                    _ => break,
                }
            }
        }
    }
    Ok(report)
}

async fn move_one(
    redis: &mut RedisConnection,
    report: &mut RequeueReport,
    entry: &StreamEntry,
) -> anyhow::Result<()> {
    let (status, new_id): (i64, String) = redis::Script::new(include_str!("requeue.lua"))
        .key(&report.dead_letter_stream)
        .key(&report.stream)
        .arg(&entry.id)
        .arg(&ADDED_FIELDS[..])
        .invoke_async(redis)
        .await
        .with_context(|| format!("moving dead letter {} back to {}", entry.id, report.stream))?;
    match status {
        1 => {
            let field = |name: &str| {
                entry
                    .fields
                    .iter()
                    .find(|(field, _)| field == name)
                    .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            };
            report.moved.push(Moved {
                dead_letter_id: entry.id.clone(),
                new_id,
                source_id: field("source_id"),
                error: field("error"),
            });
        }
        2 => report.empty.push(entry.id.clone()),
        // Gone since we read it: another operator moved or purged it.
        _ => report.missing.push(entry.id.clone()),
    }
    Ok(())
}
