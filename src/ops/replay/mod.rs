//! `order-worker replay`: run a range of the main stream through the worker's own decode →
//! apply path again (idempotent: what was applied is reported `duplicate`), or put dead letters
//! back on the main stream after the cause was fixed (`--dead-letter`).
//!
//! A range that `trim` deleted, wholly or in part, is said so ([`retained`]) rather than
//! replayed as if nothing had been written then.
//!
//! Unlike the other operator commands, replay writes: to PostgreSQL (a range) or to Redis (dead
//! letters). It still never reads as a consumer nor acks: the group's position and pending list
//! are the workers', and a replay must not make a worker skip or redo anything.

mod range;
mod render;
mod requeue;
mod retained;

use anyhow::{bail, Context};
use indicatif::ProgressBar;

pub(crate) use range::{apply_page, DryRun};
pub use range::{
    replay_range, replay_range_shown, Counts, Problem, RangeRequest, ReplayReport, TransitionLine,
};
pub use render::{render_range, render_requeue};
pub use requeue::{requeue, requeue_shown, Moved, RequeueReport, Selection};

use super::{count_range, output, print_report, OpsConfig};
use crate::config::{
    redact_url, Connections, Keyspace, StreamConfig, Subscription, Topics, DEFAULT_STREAM,
};
use crate::store::Tables;
use crate::stream::id::{parse_boundary, StreamId};
use crate::stream::RedisConnection;

/// `order-worker replay` settings: the worker's connections and stream settings (same flags
/// and variables as `run`), then what to replay. The consumer name, group and group start id
/// are hidden: replay neither joins nor moves the group.
#[derive(Clone, Debug, clap::Args)]
#[command(
    mut_arg("consumer", |arg| arg.hide(true)),
    mut_arg("group", |arg| arg.hide(true)),
    mut_arg("group_start_id", |arg| arg.hide(true)),
    mut_arg("names", |arg| arg.hide(true))
)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub stream: StreamConfig,
    #[command(flatten)]
    pub topics: Topics,
    /// The topic whose stream to replay (and dead letters to requeue): its entries decode as
    /// that topic's events. Its stream is STREAM for the fulfillment topic, else
    /// PAYMENT_CONFIRMED_STREAM / PAYMENT_FAILED_STREAM (default: the topic's name).
    #[arg(long, default_value = DEFAULT_STREAM, value_parser = crate::config::parse_topic)]
    pub topic: String,
    /// First entry to replay (inclusive): a stream id (`1700000000000-0`) or an RFC 3339 time
    /// (`2025-12-22T10:54:00Z`, entries written from then on).
    #[arg(long, value_parser = parse_boundary, required_unless_present = "dead_letter")]
    pub from: Option<StreamId>,
    /// Last entry to replay (inclusive): a stream id, or an RFC 3339 time (entries written up
    /// to and including that millisecond) [default: the end of the stream].
    #[arg(long, value_parser = parse_to)]
    pub to: Option<StreamId>,
    /// Replay only the events of this order (undecodable entries are still reported: which
    /// order they were for cannot be known).
    #[arg(long)]
    pub order_id: Option<String>,
    /// Apply inside a transaction that is rolled back: report what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Instead of a range, move dead letters back to the main stream (original fields only),
    /// for the workers to apply as new entries: after the cause was fixed.
    #[arg(long, conflicts_with_all = ["from", "to", "order_id", "dry_run"])]
    pub dead_letter: bool,
    /// With --dead-letter: the dead letters to move, by their id in the dead-letter stream.
    #[arg(long = "id", value_name = "ID", requires = "dead_letter", num_args = 1.., value_parser = parse_id)]
    pub ids: Vec<StreamId>,
    /// With --dead-letter: move every dead letter there is when the command starts.
    #[arg(long, requires = "dead_letter", conflicts_with = "ids")]
    pub all: bool,
    /// Entries larger than this (all fields, in bytes) are reported undecodable, as the
    /// worker would dead-letter them.
    #[arg(long, env = "MAX_ENTRY_BYTES", default_value_t = crate::envelope::DEFAULT_MAX_ENTRY_BYTES)]
    pub max_entry_bytes: usize,
    /// Print JSON, for scripts, instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs the replay and prints its report. Entries that do not apply (unknown order, rejected,
/// undecodable) are reported, not failures: the command fails only when it cannot do its job.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let subscription = args.topics.subscription(
        &args.topic,
        &args.stream,
        Keyspace::of(&args.connections.redis_url)?,
    )?;
    let mut ops = OpsConfig::new(
        args.connections.redis_url.clone(),
        subscription.stream.clone(),
    );
    ops.redis_tls = args.connections.redis_tls.clone();
    let mut redis = ops.connect().await?;
    if args.dead_letter {
        return requeue_and_report(&args, &mut redis, &subscription.stream).await;
    }
    replay_and_report(&args, &mut redis, subscription).await
}

/// `--dead-letter`: moves the dead letters selected back to `stream` and prints what moved;
/// fails if one asked for by id is not there.
async fn requeue_and_report(
    args: &ReplayArgs,
    redis: &mut RedisConnection,
    stream: &StreamConfig,
) -> anyhow::Result<()> {
    let selection = match (args.all, args.ids.is_empty()) {
        (true, _) => Selection::All,
        (false, false) => Selection::Ids(args.ids.clone()),
        (false, true) => bail!("replay --dead-letter needs --id ID… or --all"),
    };
    let progress = output::bar(0, "dead letters", args.json);
    progress.set_message(format!("moving dead letters of {}", args.topic));
    let report = requeue_shown(redis, stream, &selection, &progress).await;
    progress.finish_and_clear();
    let report = report?;
    print_report(args.json, &report, || render_requeue(&report))?;
    if !report.missing.is_empty() {
        bail!(
            "no dead letter {} in {} (`order-worker dead-letter list` shows their ids)",
            report.missing.join(", "),
            report.dead_letter_stream
        );
    }
    Ok(())
}

/// `--from … --to …`: applies the range of `subscription`'s stream again (rolled back with
/// `--dry-run`) and prints the report.
async fn replay_and_report(
    args: &ReplayArgs,
    redis: &mut RedisConnection,
    subscription: Subscription,
) -> anyhow::Result<()> {
    let (from, to) = (
        args.from.unwrap_or(StreamId::MIN),
        args.to.unwrap_or(StreamId::MAX),
    );
    if to < from {
        // XRANGE would quietly return nothing, which reads like "nothing to replay".
        bail!("--to {to} is before --from {from}: the range is empty");
    }
    let url = &args.connections.database_url;
    let mut pg = crate::store::connect(url.clone())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
    // A late event's recompute decodes recorded events by the topics the subscription came from.
    let tables = Tables::inspect(&mut pg, &args.connections.orders_table)
        .await?
        .serving(args.topics.catalogue().clone());
    let request = RangeRequest {
        topic: subscription.topic,
        stream: &subscription.stream.stream,
        from,
        to,
        order_id: args.order_id.as_deref(),
        max_entry_bytes: args.max_entry_bytes,
        page_size: range::PAGE_SIZE,
        tables: &tables,
    };
    let progress = output::bar(0, "entries", args.json);
    if !progress.is_hidden() {
        // Counted only for a person watching: it is one more pass over the range, in Redis.
        size_progress(redis, &request, args.dry_run, &progress).await?;
    }
    let report = replay_range_shown(redis, &mut pg, &request, args.dry_run, &progress).await;
    progress.finish_and_clear();
    let report = report?;
    print_report(args.json, &report, || render_range(&report))?;
    Ok(())
}

/// Sets `progress`'s length to the number of entries in the range, counted in Redis.
async fn size_progress(
    redis: &mut RedisConnection,
    request: &RangeRequest<'_>,
    dry_run: bool,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    progress.set_message("counting the entries of the range");
    let below = request.to.next().unwrap_or(StreamId::MAX);
    let start = request.from.to_string();
    let total = count_range(redis, request.stream, &start, below, progress).await?;
    progress.set_length(total);
    progress.set_position(0);
    let verb = if dry_run { "dry run of" } else { "replaying" };
    progress.set_message(format!("{verb} {}", request.stream));
    Ok(())
}

fn parse_id(raw: &str) -> Result<StreamId, String> {
    raw.parse::<StreamId>().map_err(|error| error.to_string())
}

/// The end of the range, inclusive. A full id is that entry; a time or a bare millisecond
/// means the whole millisecond (every sequence in it), as `XRANGE` reads a bare end.
pub fn parse_to(raw: &str) -> Result<StreamId, String> {
    let boundary = parse_boundary(raw)?;
    if raw.contains('-') && raw.parse::<StreamId>().is_ok() {
        return Ok(boundary);
    }
    Ok(StreamId {
        ms: boundary.ms,
        seq: u64::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_range_covers_its_whole_millisecond_unless_an_id_names_the_entry() {
        let id = |ms, seq| StreamId { ms, seq };
        assert_eq!(parse_to("1700000000000-3"), Ok(id(1_700_000_000_000, 3)));
        assert_eq!(
            parse_to("1700000000000"),
            Ok(id(1_700_000_000_000, u64::MAX))
        );
        assert_eq!(
            parse_to("2023-11-14T22:13:20Z"),
            Ok(id(1_700_000_000_000, u64::MAX))
        );
        assert!(parse_to("yesterday").is_err());
    }
}
