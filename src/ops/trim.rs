//! `order-worker trim`: deletes the stream entries every consumer group is done with (Dapr
//! never trimmed acknowledged entries, issue #2296), with `XTRIM MINID` just below the oldest
//! entry that any group still needs: one pending in that group (delivered, not acked) or not
//! delivered to it yet (after its last-delivered id).
//!
//! `--keep` (default 7 days) keeps that much history for `replay` whatever the groups: the cut
//! is the lower of the groups' one and the start of the keep window, so a window never lets a
//! trim delete more, only less.
//!
//! The cut is computed here from each group's position ([`cut`], pure), then applied by a Lua
//! script that checks the same condition again and trims in one atomic step, so a group created
//! or moved back in between makes it refuse rather than delete what that group needs.

use std::fmt::Write;
use std::time::Duration;

use crate::stream::RedisConnection;
use anyhow::Context;
use redis::streams::{StreamInfoGroup, StreamPendingReply};
use serde::Serialize;

use super::output::rfc3339_ms;
use super::table::Table;
use super::{
    count_range, groups, key_type, output, print_report, redis_now_ms, OpsConfig, Reports,
};
use crate::stream::id::StreamId;

/// `order-worker trim` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct TrimArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// Show the cut and how many entries would go; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON, for scripts (cron jobs), instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep at least this much history (`7d`, `36h`, plain seconds) for `replay`, even what
    /// every group is done with; never less than the groups need. `0`: keep only what a group
    /// still needs.
    #[arg(long, default_value = "7d", value_parser = crate::config::parse_duration)]
    pub keep: Duration,
    /// Trim the stream of every topic of TOPICS in turn (one report each; with --json one JSON
    /// array of them), not just --topic's. A stream not created yet is skipped; one that
    /// refuses does not stop the others, and the command then exits 1.
    #[arg(long, conflicts_with = "topic")]
    pub all_topics: bool,
}

/// Where one group is, as far as trimming is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPosition {
    pub name: String,
    /// Every entry after this one is still to be delivered to the group.
    pub last_delivered: StreamId,
    /// The lowest id in the group's pending list, if it holds any.
    pub oldest_pending: Option<StreamId>,
}

impl GroupPosition {
    /// The lowest id this group may still need: its oldest pending entry, or the first id after
    /// its last-delivered one, whichever is lower.
    pub fn needs_from(&self) -> StreamId {
        let undelivered = self.last_delivered.next().unwrap_or(StreamId::MAX);
        self.oldest_pending
            .map_or(undelivered, |pending| pending.min(undelivered))
    }
}

/// Where to cut: `XTRIM MINID min_id` deletes exactly the entries below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cut {
    pub min_id: StreamId,
    /// What holds the cut there.
    pub set_by: SetBy,
}

/// The lower bound that set a [`Cut`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetBy {
    /// This group needs `min_id` (the first such, when several do).
    Group(String),
    /// The keep window starts at `min_id`; the groups need only what is from
    /// `groups_need_from` on.
    Keep { groups_need_from: StreamId },
}

/// Why there is no safe cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the stream has no consumer groups, so nothing says which entries were processed")]
    NoGroups,
    #[error(
        "consumer group {0} does not exist on the stream: created later at `0`, it would replay \
         the entries a trim deletes (check CONSUMER_GROUP / --group)"
    )]
    MissingGroup(String),
}

/// The first id the keep window holds `keep` before `now_ms` (Redis's clock): `<ms>-0`, the
/// first id Redis may have given an entry written then. `None` for a zero `keep`.
pub fn keep_from(now_ms: u64, keep: Duration) -> Option<StreamId> {
    let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
    (!keep.is_zero()).then(|| StreamId::at_millis(now_ms.saturating_sub(keep_ms)))
}

/// The cut for `groups`: the lowest id any group still needs, or the start of the keep window
/// (`keep_from`) when that is lower. `required` is the worker's own group, which must be among
/// them (were it missing, it would be created at `0` and want every entry).
pub fn cut(
    groups: &[GroupPosition],
    required: &str,
    keep_from: Option<StreamId>,
) -> Result<Cut, Refusal> {
    if groups.is_empty() {
        return Err(Refusal::NoGroups);
    }
    if !groups.iter().any(|group| group.name == required) {
        return Err(Refusal::MissingGroup(required.to_owned()));
    }
    let lowest = groups
        .iter()
        .min_by_key(|group| group.needs_from())
        .ok_or(Refusal::NoGroups)?;
    let needed = lowest.needs_from();
    Ok(match keep_from {
        Some(window) if window < needed => Cut {
            min_id: window,
            set_by: SetBy::Keep {
                groups_need_from: needed,
            },
        },
        _ => Cut {
            min_id: needed,
            set_by: SetBy::Group(lowest.name.clone()),
        },
    })
}

/// What `trim` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct TrimReport {
    pub stream: String,
    /// Entries before trimming.
    pub length: u64,
    pub groups: Vec<GroupPosition>,
    /// `--keep`, in seconds.
    pub keep_seconds: u64,
    /// The first id the keep window holds (`None` with `--keep 0`).
    pub keep_from: Option<StreamId>,
    pub cut: Cut,
    /// Entries below the cut when counted (what a dry run would delete).
    pub below_cut: u64,
    /// Entries `XTRIM` deleted; `None` on a dry run or when nothing was below the cut.
    pub deleted: Option<u64>,
    pub dry_run: bool,
}

/// `order-worker trim`: prints what was (or, with `--dry-run`, would be) deleted, for
/// `--topic`'s stream or, with `--all-topics`, for each subscribed one.
pub async fn run(args: TrimArgs) -> anyhow::Result<()> {
    if !args.all_topics {
        let config = args.config.narrowed()?;
        let mut conn = config.connect().await?;
        let report = trim_shown(&mut conn, &config, args.keep, args.dry_run, args.json).await?;
        return print_report(args.json, &report, || render(&report));
    }
    let mut conn = args.config.connect().await?;
    let mut failed = Vec::new();
    let mut reports = Reports::new(args.json);
    for subscription in args.config.subscriptions()? {
        let config = args.config.on(subscription);
        let stream = &config.stream.stream;
        // Nothing published yet and no worker started on it: nothing to keep or delete.
        if key_type(&mut conn, stream).await? == "none" {
            tracing::warn!("stream {stream} does not exist yet: nothing to trim");
            continue;
        }
        match trim_shown(&mut conn, &config, args.keep, args.dry_run, args.json).await {
            Ok(report) => reports.print(report, render)?,
            Err(error) => {
                tracing::error!("{stream}: {error:#}");
                failed.push(stream.clone());
            }
        }
    }
    reports.finish()?;
    if !failed.is_empty() {
        anyhow::bail!("not trimmed: {} (the others were)", failed.join(", "));
    }
    Ok(())
}

/// Reads every group's position and Redis's clock, computes the cut (keeping `keep` of
/// history) and, unless `dry_run`, trims. Refuses (an error, nothing deleted) when any group's
/// position cannot be read or parsed.
pub async fn trim(
    conn: &mut RedisConnection,
    config: &OpsConfig,
    keep: Duration,
    dry_run: bool,
) -> anyhow::Result<TrimReport> {
    trim_shown(conn, config, keep, dry_run, true).await
}

/// [`trim`], its counting and deleting shown on a terminal unless `quiet`.
async fn trim_shown(
    conn: &mut RedisConnection,
    config: &OpsConfig,
    keep: Duration,
    dry_run: bool,
    quiet: bool,
) -> anyhow::Result<TrimReport> {
    let stream = &config.stream.stream;
    let positions = positions(conn, stream).await?;
    let keep_from = keep_from(redis_now_ms(conn).await?, keep);
    let cut = cut(&positions, &config.stream.group, keep_from).context("refusing to trim")?;
    let length: u64 = redis::cmd("XLEN").arg(stream).query_async(conn).await?;
    // Out of the stream's length: the count stops at the cut, the bar is cleared then.
    let counting = output::bar(length, "entries", quiet);
    counting.set_message(format!("counting the entries below {}", cut.min_id));
    let below_cut = count_range(conn, stream, "-", cut.min_id, &counting).await?;
    counting.finish_and_clear();
    let mut report = TrimReport {
        stream: stream.clone(),
        length,
        groups: positions,
        keep_seconds: keep.as_secs(),
        keep_from,
        cut,
        below_cut,
        deleted: None,
        dry_run,
    };
    if dry_run || below_cut == 0 {
        return Ok(report);
    }
    let deleting = output::spinner(
        format!(
            "deleting {below_cut} entries (XTRIM MINID {})",
            report.cut.min_id
        ),
        quiet,
    );
    let deleted = apply_cut(conn, stream, &config.stream.group, &report.cut).await;
    deleting.finish_and_clear();
    report.deleted = Some(deleted?);
    Ok(report)
}

/// Trims `stream` to `cut` with `XTRIM MINID`, inside a script that first checks, atomically,
/// that no group on the stream still needs an entry below the cut (it may have moved back, or a
/// group been created, since the positions were read) and that `required` exists. A cut set by
/// the keep window is below what the groups need, so it passes the same check. Returns how
/// many entries went; refuses, deleting nothing, when the check fails.
pub async fn apply_cut(
    conn: &mut RedisConnection,
    stream: &str,
    required: &str,
    cut: &Cut,
) -> anyhow::Result<u64> {
    // Never None: a cut is at least `0-1` (no entry, pending or not, can be `0-0`).
    let just_below = cut.min_id.prev().unwrap_or(StreamId::MIN);
    let trimmed: redis::RedisResult<u64> = redis::Script::new(include_str!("trim_guard.lua"))
        .key(stream)
        .arg(cut.min_id.to_string())
        .arg(just_below.to_string())
        .arg(required)
        .invoke_async(conn)
        .await;
    match trimmed {
        Ok(deleted) => Ok(deleted),
        Err(error) if error.code() == Some("REFUSED") => anyhow::bail!(
            "refusing to trim: the groups changed since they were read ({}); nothing was deleted, run it again",
            error.detail().unwrap_or("")
        ),
        Err(error) => Err(error).context("trimming (XTRIM MINID)"),
    }
}

/// Each group's position: `XINFO GROUPS`, then every group's `XPENDING` summary in one MULTI.
async fn positions(conn: &mut RedisConnection, stream: &str) -> anyhow::Result<Vec<GroupPosition>> {
    let groups: Vec<StreamInfoGroup> = groups(conn, stream).await?;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for group in &groups {
        pipe.cmd("XPENDING").arg(stream).arg(&group.name);
    }
    let summaries: Vec<StreamPendingReply> = if groups.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(conn).await.with_context(|| {
            format!("refusing to trim: cannot read the pending lists of {stream}'s groups")
        })?
    };
    groups
        .iter()
        .zip(summaries)
        .map(|(group, summary)| {
            let unknown = |what: &str, raw: &str| {
                anyhow::anyhow!(
                    "refusing to trim: cannot determine group {}'s {what} ({raw:?})",
                    group.name
                )
            };
            let last_delivered = group
                .last_delivered_id
                .parse()
                .map_err(|_| unknown("last-delivered id", &group.last_delivered_id))?;
            let oldest_pending = match summary {
                StreamPendingReply::Empty => None,
                StreamPendingReply::Data(data) => Some(
                    data.start_id
                        .parse()
                        .map_err(|_| unknown("oldest pending id", &data.start_id))?,
                ),
                other => return Err(unknown("pending list", &format!("{other:?}"))),
            };
            Ok(GroupPosition {
                name: group.name.clone(),
                last_delivered,
                oldest_pending,
            })
        })
        .collect()
}

/// The groups' positions, the cut and the outcome, for people.
pub fn render(report: &TrimReport) -> String {
    let mut groups = Table::new(&["group", "last delivered", "oldest pending", "needs from"]);
    for group in &report.groups {
        groups.row(vec![
            group.name.clone(),
            group.last_delivered.to_string(),
            group
                .oldest_pending
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            group.needs_from().to_string(),
        ]);
    }
    let mut out = groups.render(0);
    let cut = &report.cut;
    let _ = match report.keep_from {
        Some(from) => writeln!(
            out,
            "\nkeep: {} of history, every entry from {from} ({}) on",
            humantime::format_duration(Duration::from_secs(report.keep_seconds)),
            rfc3339_ms(from.ms)
        ),
        None => writeln!(
            out,
            "\nkeep: no window (--keep 0), only what a group still needs"
        ),
    };
    let _ = match &cut.set_by {
        SetBy::Group(group) => writeln!(
            out,
            "cut: XTRIM {} MINID {} (the oldest entry group {group} still needs)",
            report.stream, cut.min_id
        ),
        SetBy::Keep { groups_need_from } => writeln!(
            out,
            "cut: XTRIM {} MINID {} (the keep window's start; the groups need only from {groups_need_from} on)",
            report.stream, cut.min_id
        ),
    };
    let stay = report.length.saturating_sub(report.below_cut);
    let _ = match report.deleted {
        _ if report.below_cut == 0 => writeln!(
            out,
            "nothing to trim: none of the {} entries is below the cut",
            report.length
        ),
        None => writeln!(
            out,
            "dry run: would delete {} of {} entries (every one below {}), {stay} would stay; nothing was deleted",
            report.below_cut, report.length, cut.min_id
        ),
        Some(deleted) => writeln!(
            out,
            "deleted {deleted} of {} entries (every one below {}); {} stay",
            report.length,
            cut.min_id,
            report.length.saturating_sub(deleted)
        ),
    };
    out
}

#[cfg(test)]
mod tests;
