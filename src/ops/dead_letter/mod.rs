//! `order-worker dead-letter list|show|purge`: reading the dead-letter stream without
//! hand-written XRANGEs, and deleting old dead letters once they are understood. Putting one back
//! on the main stream is `replay`'s job, not this module's. The text output is in [`render`].

mod render;

use std::collections::BTreeMap;

use crate::stream::RedisConnection;
use anyhow::{bail, Context};
use indicatif::ProgressBar;
use serde::Serialize;

pub use render::{render_detail, render_list, render_purge};

use super::output::rfc3339_ms;
use super::{count_range, print_report, redis_now_ms, xrange, OpsConfig};
use crate::stream::id::{parse_boundary, StreamId};
use crate::stream::StreamEntry;

/// `order-worker dead-letter` and its actions.
#[derive(Clone, Debug, clap::Args)]
pub struct DeadLetterArgs {
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum DeadLetterAction {
    /// List dead letters, oldest first: id, source id, deliveries, age, error.
    List(ListArgs),
    /// Print every field of one dead letter (the original entry's and the worker's).
    Show(ShowArgs),
    /// Delete dead letters older than --before (XTRIM MINID on the dead-letter stream).
    Purge(PurgeArgs),
}

#[derive(Clone, Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// How many to list, oldest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Print JSON, for scripts, instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// The dead letter's id in the dead-letter stream (the first column of `list`).
    #[arg(value_parser = |raw: &str| raw.parse::<StreamId>().map_err(|e| e.to_string()))]
    pub id: StreamId,
    /// Print JSON instead of `field  value` lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, clap::Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// Delete dead letters older than this: a dead-letter id (`1700000000000-0`, itself kept)
    /// or an RFC 3339 time (`2025-12-22T10:54:00Z`, when they were dead-lettered).
    #[arg(long, value_parser = parse_boundary)]
    pub before: StreamId,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON, for scripts, instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One dead letter as `list` shows it. The fields the worker adds may be missing from entries
/// other tools wrote, hence the options.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterSummary {
    /// Its id in the dead-letter stream; `show` and `purge --before` take it.
    pub id: String,
    /// Its id in the main stream.
    pub source_id: Option<String>,
    pub error: Option<String>,
    pub delivery_count: Option<u64>,
    /// Since it was dead-lettered (from its id, against Redis's clock).
    pub age_ms: u64,
    pub dead_lettered_at: String,
}

/// Every field of one dead letter. Values that are not UTF-8 are shown with `\xNN` escapes.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterDetail {
    pub id: String,
    pub age_ms: u64,
    pub dead_lettered_at: String,
    pub fields: BTreeMap<String, String>,
    /// The fields in their stored order, for the text output.
    #[serde(skip)]
    pub ordered: Vec<(String, String)>,
}

/// What `purge` matched and, unless a dry run, deleted.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    pub dead_letter_stream: String,
    pub before: StreamId,
    /// Dead letters in the stream before purging.
    pub total: u64,
    /// Dead letters below `before`.
    pub matched: u64,
    /// The oldest of them (at most [`PURGE_SHOWN`]), to see what goes.
    pub oldest: Vec<DeadLetterSummary>,
    /// What `XTRIM` deleted; `None` on a dry run.
    pub deleted: Option<u64>,
    pub dry_run: bool,
}

/// How many of the dead letters a purge matches it lists.
pub const PURGE_SHOWN: usize = 20;

/// Runs one `dead-letter` action and prints its result.
pub async fn run(args: DeadLetterArgs) -> anyhow::Result<()> {
    match args.action {
        DeadLetterAction::List(args) => {
            let mut conn = args.config.connect().await?;
            let stream = args.config.narrowed()?.stream.dead_letter_stream();
            let (total, letters) = list(&mut conn, &stream, args.count).await?;
            print_report(args.json, &letters, || {
                render_list(&stream, total, &letters)
            })?;
        }
        DeadLetterAction::Show(args) => {
            let mut conn = args.config.connect().await?;
            let stream = args.config.narrowed()?.stream.dead_letter_stream();
            let detail = show(&mut conn, &stream, args.id).await?;
            print_report(args.json, &detail, || render_detail(&detail))?;
        }
        DeadLetterAction::Purge(args) => {
            let mut conn = args.config.connect().await?;
            let stream = args.config.narrowed()?.stream.dead_letter_stream();
            let report = purge(&mut conn, &stream, args.before, args.dry_run).await?;
            print_report(args.json, &report, || render_purge(&report))?;
        }
    }
    Ok(())
}

/// The stream's length and its oldest `count` dead letters. A missing dead-letter stream is an
/// empty one: nothing was dead-lettered yet.
pub async fn list(
    conn: &mut RedisConnection,
    stream: &str,
    count: u32,
) -> anyhow::Result<(u64, Vec<DeadLetterSummary>)> {
    let now = redis_now_ms(conn).await?;
    let total = length(conn, stream).await?;
    let entries = xrange(conn, stream, "-", "+", count as usize).await?;
    Ok((total, entries.iter().map(|e| summary(e, now)).collect()))
}

/// Every field of the dead letter `id`, or an error saying there is none.
pub async fn show(
    conn: &mut RedisConnection,
    stream: &str,
    id: StreamId,
) -> anyhow::Result<DeadLetterDetail> {
    let now = redis_now_ms(conn).await?;
    let raw = id.to_string();
    let Some(entry) = xrange(conn, stream, &raw, &raw, 1).await?.pop() else {
        bail!("no dead letter {id} in {stream} (`order-worker dead-letter list` shows their ids)");
    };
    let ordered: Vec<(String, String)> = entry
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), text(value)))
        .collect();
    let (age_ms, dead_lettered_at) = age(&entry.id, now);
    Ok(DeadLetterDetail {
        id: entry.id,
        age_ms,
        dead_lettered_at,
        fields: ordered.iter().cloned().collect(),
        ordered,
    })
}

/// Deletes the dead letters below `before` (unless `dry_run`), after listing the oldest of them.
/// Refuses a boundary in the future: it would also delete dead letters written meanwhile.
pub async fn purge(
    conn: &mut RedisConnection,
    stream: &str,
    before: StreamId,
    dry_run: bool,
) -> anyhow::Result<PurgeReport> {
    let now = redis_now_ms(conn).await?;
    if before.ms > now {
        bail!(
            "--before {before} ({}) is in the future by Redis's clock: it would also delete dead \
             letters written from now on; give a past time or a dead-letter id",
            rfc3339_ms(before.ms)
        );
    }
    let total = length(conn, stream).await?;
    let matched = count_range(conn, stream, "-", before, &ProgressBar::hidden()).await?;
    let oldest = if matched == 0 {
        Vec::new()
    } else {
        let end = format!("({before}");
        xrange(conn, stream, "-", &end, PURGE_SHOWN).await?
    };
    let deleted = if dry_run {
        None
    } else {
        let deleted: u64 = redis::cmd("XTRIM")
            .arg(stream)
            .arg("MINID")
            .arg(before.to_string())
            .query_async(conn)
            .await
            .with_context(|| format!("purging {stream} (XTRIM MINID {before})"))?;
        Some(deleted)
    };
    Ok(PurgeReport {
        dead_letter_stream: stream.to_owned(),
        before,
        total,
        matched,
        oldest: oldest.iter().map(|entry| summary(entry, now)).collect(),
        deleted,
        dry_run,
    })
}

/// `XLEN`: 0 for a dead-letter stream nothing was written to yet.
async fn length(conn: &mut RedisConnection, stream: &str) -> anyhow::Result<u64> {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .with_context(|| format!("reading the length of {stream} (XLEN)"))
}

fn summary(entry: &StreamEntry, now: u64) -> DeadLetterSummary {
    let field = |name: &str| {
        entry
            .fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| text(value))
    };
    let (age_ms, dead_lettered_at) = age(&entry.id, now);
    DeadLetterSummary {
        id: entry.id.clone(),
        source_id: field("source_id"),
        error: field("error"),
        delivery_count: field("delivery_count").and_then(|count| count.parse().ok()),
        age_ms,
        dead_lettered_at,
    }
}

/// Since when `id` was written, from its millisecond part, and that instant in RFC 3339.
fn age(id: &str, now: u64) -> (u64, String) {
    let ms = id.parse::<StreamId>().map_or(now, |id| id.ms);
    (now.saturating_sub(ms), rfc3339_ms(ms))
}

/// A field value as text: as is when UTF-8 (what publishers write), else with `\xNN` escapes
/// (the undecodable entries are exactly the ones that end up here).
fn text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => value.escape_ascii().to_string(),
    }
}
