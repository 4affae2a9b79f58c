//! `order-worker pending`: what the group holds and who holds it, read from one consistent
//! snapshot (`XLEN`, `XINFO GROUPS`, `XINFO CONSUMERS`, `XPENDING`, the dead-letter `XLEN`, in
//! one MULTI) so the numbers add up even while workers run.

use std::fmt::Write;

use crate::stream::RedisConnection;
use redis::streams::{
    StreamInfoConsumersReply, StreamInfoGroup, StreamInfoGroupsReply, StreamPendingCountReply,
};
use serde::Serialize;

use super::table::{human_ms, Table};
use super::{find_group, groups, OpsConfig, Reports};

/// `order-worker pending` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct PendingArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// How many of the oldest pending entries to list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// List only pending entries idle for at least this many ms (`XPENDING … IDLE`), e.g. the
    /// CLAIM_MIN_IDLE_MS value to see what the next claim would take.
    #[arg(long)]
    pub min_idle_ms: Option<u64>,
    /// Print JSON, for scripts, instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Everything `pending` shows, as one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub stream: String,
    /// Entries in the stream (`XLEN`), acknowledged ones included until trimmed.
    pub length: u64,
    pub group: GroupSummary,
    /// Every consumer the group knows, idle ones included (they hold nothing, or what a dead
    /// replica left behind).
    pub consumers: Vec<ConsumerSummary>,
    /// The oldest pending entries (`XPENDING - + <count>`), oldest first.
    pub oldest_pending: Vec<PendingEntry>,
    /// The idle filter `oldest_pending` was read with, if any.
    pub min_idle_ms: Option<u64>,
    pub dead_letter_stream: String,
    /// Entries in the dead-letter stream (0 when it does not exist yet).
    pub dead_letter_length: u64,
}

/// The group's line of `XINFO GROUPS`.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub name: String,
    pub consumers: u64,
    /// Delivered and not acknowledged yet.
    pub pending: u64,
    /// The newest entry delivered to any consumer of the group.
    pub last_delivered_id: String,
    /// How many entries the group has read in total (`None` when Redis cannot tell).
    pub entries_read: Option<u64>,
    /// Entries not delivered to the group yet (`None` when Redis cannot tell, e.g. after
    /// entries were deleted in the range the group has not read).
    pub lag: Option<u64>,
}

/// One line of `XINFO CONSUMERS`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerSummary {
    /// With this worker the pod name; the group's own name is Dapr's single consumer.
    pub name: String,
    pub pending: u64,
    /// Since the consumer last read or claimed.
    pub idle_ms: u64,
}

/// One line of extended `XPENDING`.
#[derive(Debug, Clone, Serialize)]
pub struct PendingEntry {
    pub id: String,
    pub consumer: String,
    /// Since it was last delivered (read or claimed) or kept alive.
    pub idle_ms: u64,
    pub delivery_count: u64,
}

/// `order-worker pending`: prints the snapshot of each subscribed stream (`--topic`: one) as
/// tables, or with `--json` as one JSON array of them.
pub async fn run(args: PendingArgs) -> anyhow::Result<()> {
    let mut conn = args.config.connect().await?;
    let mut reports = Reports::new(args.json);
    for subscription in args.config.subscriptions()? {
        let args = PendingArgs {
            config: args.config.on(subscription),
            ..args.clone()
        };
        reports.print(inspect(&mut conn, &args).await?, render)?;
    }
    reports.finish()
}

/// Reads the snapshot; fails, saying which, when the stream or the group does not exist.
pub async fn inspect(conn: &mut RedisConnection, args: &PendingArgs) -> anyhow::Result<Inspection> {
    let config = &args.config.stream;
    find_group(
        &groups(conn, &config.stream).await?,
        &config.stream,
        &config.group,
    )?;

    let dead_letter_stream = config.dead_letter_stream();
    let (length, groups, consumers, pending, dead_letter_length): (
        u64,
        StreamInfoGroupsReply,
        StreamInfoConsumersReply,
        StreamPendingCountReply,
        u64,
    ) = snapshot(args, &dead_letter_stream)
        .query_async(conn)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "reading group {} of {} (the stream or group may have just been deleted): {error}",
                config.group,
                config.stream
            )
        })?;
    let group = find_group(&groups.groups, &config.stream, &config.group)?;

    Ok(Inspection {
        stream: config.stream.clone(),
        length,
        group: group_summary(group),
        consumers: consumer_summaries(consumers),
        oldest_pending: pending_entries(pending),
        min_idle_ms: args.min_idle_ms,
        dead_letter_stream,
        dead_letter_length,
    })
}

/// The snapshot's commands in one MULTI: `XLEN`, `XINFO GROUPS`, `XINFO CONSUMERS`, `XPENDING`
/// (of the oldest, idle for at least `--min-idle-ms`), and the dead-letter stream's `XLEN`.
fn snapshot(args: &PendingArgs, dead_letter_stream: &str) -> redis::Pipeline {
    let config = &args.config.stream;
    let mut xpending = redis::cmd("XPENDING");
    xpending.arg(&config.stream).arg(&config.group);
    if let Some(idle) = args.min_idle_ms {
        xpending.arg("IDLE").arg(idle);
    }
    xpending.arg("-").arg("+").arg(args.count);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("XLEN")
        .arg(&config.stream)
        .cmd("XINFO")
        .arg("GROUPS")
        .arg(&config.stream)
        .cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&config.stream)
        .arg(&config.group)
        .add_command(xpending)
        .cmd("XLEN")
        .arg(dead_letter_stream);
    pipe
}

/// The group's line of `XINFO GROUPS`, in the report's units.
fn group_summary(group: &StreamInfoGroup) -> GroupSummary {
    GroupSummary {
        name: group.name.clone(),
        consumers: group.consumers as u64,
        pending: group.pending as u64,
        last_delivered_id: group.last_delivered_id.clone(),
        entries_read: group.entries_read.map(|n| n as u64),
        lag: group.lag.map(|n| n as u64),
    }
}

/// Each line of `XINFO CONSUMERS`, in the report's units.
fn consumer_summaries(reply: StreamInfoConsumersReply) -> Vec<ConsumerSummary> {
    reply
        .consumers
        .into_iter()
        .map(|consumer| ConsumerSummary {
            name: consumer.name,
            pending: consumer.pending as u64,
            idle_ms: consumer.idle as u64,
        })
        .collect()
}

/// Each line of extended `XPENDING`, in the report's units.
fn pending_entries(reply: StreamPendingCountReply) -> Vec<PendingEntry> {
    reply
        .ids
        .into_iter()
        .map(|entry| PendingEntry {
            id: entry.id,
            consumer: entry.consumer,
            idle_ms: entry.last_delivered_ms as u64,
            delivery_count: entry.times_delivered as u64,
        })
        .collect()
}

/// The snapshot as people read it: the group's numbers, then who holds what, then the oldest
/// pending entries.
pub fn render(inspection: &Inspection) -> String {
    let mut out = render_summary(inspection);
    out.push('\n');
    out.push_str(&render_consumers(inspection));
    render_oldest_pending(&mut out, inspection);
    out
}

/// The stream's and the group's numbers, one per line.
fn render_summary(inspection: &Inspection) -> String {
    let group = &inspection.group;
    let unknown = || "unknown (Redis cannot tell after deletions)".to_owned();
    let mut summary = Table::plain();
    for (name, value) in [
        ("stream", inspection.stream.clone()),
        ("length", inspection.length.to_string()),
        ("group", group.name.clone()),
        ("last delivered", group.last_delivered_id.clone()),
        (
            "entries read",
            group.entries_read.map_or_else(unknown, |n| n.to_string()),
        ),
        (
            "lag",
            group
                .lag
                .map_or_else(unknown, |n| format!("{n} (not delivered yet)")),
        ),
        (
            "pending",
            format!("{} (delivered, not acked)", group.pending),
        ),
        (
            "dead letters",
            format!(
                "{} in {}",
                inspection.dead_letter_length, inspection.dead_letter_stream
            ),
        ),
    ] {
        summary.row(vec![format!("{name}:"), value]);
    }
    summary.render(0)
}

/// The oldest pending entries, after a line saying how many of how many they are.
fn render_oldest_pending(out: &mut String, inspection: &Inspection) {
    let filter = inspection
        .min_idle_ms
        .map(|ms| format!(", idle ≥ {}", human_ms(ms)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\noldest pending entries ({} shown of {}{filter}):",
        inspection.oldest_pending.len(),
        inspection.group.pending
    );
    let mut pending = Table::new(&["id", "consumer", "idle", "deliveries"]);
    for entry in &inspection.oldest_pending {
        pending.row(vec![
            entry.id.clone(),
            entry.consumer.clone(),
            human_ms(entry.idle_ms),
            entry.delivery_count.to_string(),
        ]);
    }
    if pending.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&pending.render(2));
    }
}

/// Who holds what: one line per consumer (pod) with its pending count and idle time. Also
/// printed on its own by `order-worker-dev replicas` while its replicas work.
pub fn render_consumers(inspection: &Inspection) -> String {
    let group = &inspection.group;
    let mut out = String::new();
    let _ = writeln!(out, "consumers ({}):", inspection.consumers.len());
    let mut consumers = Table::new(&["consumer", "pending", "idle"]);
    for consumer in &inspection.consumers {
        consumers.row(vec![
            consumer.name.clone(),
            consumer.pending.to_string(),
            human_ms(consumer.idle_ms),
        ]);
    }
    if consumers.is_empty() {
        out.push_str("  none (no worker has read from this group yet)\n");
    } else {
        out.push_str(&consumers.render(2));
    }
    if let Some(dapr) = inspection
        .consumers
        .iter()
        .find(|consumer| consumer.name == group.name && consumer.pending > 0)
    {
        let _ = writeln!(
            out,
            "  {}: held under Dapr's single consumer name; workers claim them once idle for CLAIM_MIN_IDLE_MS",
            dapr.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspection(consumers: &[(&str, u64)], lag: Option<u64>) -> Inspection {
        Inspection {
            stream: "s".to_owned(),
            length: 10,
            group: GroupSummary {
                name: "order-service".to_owned(),
                consumers: consumers.len() as u64,
                pending: consumers.iter().map(|(_, n)| n).sum(),
                last_delivered_id: "9-0".to_owned(),
                entries_read: lag.map(|lag| 10 - lag),
                lag,
            },
            consumers: consumers
                .iter()
                .map(|(name, pending)| ConsumerSummary {
                    name: (*name).to_owned(),
                    pending: *pending,
                    idle_ms: 65_000,
                })
                .collect(),
            oldest_pending: Vec::new(),
            min_idle_ms: None,
            dead_letter_stream: "s.deadletter".to_owned(),
            dead_letter_length: 0,
        }
    }

    #[test]
    fn entries_dapr_still_holds_are_pointed_out_and_unknown_numbers_said_so() {
        let text = render(&inspection(&[("order-service", 2), ("pod-a", 0)], None));
        assert!(
            text.contains("lag:             unknown (Redis cannot tell after deletions)"),
            "{text}"
        );
        assert!(text.contains("  order-service  2        1m05s\n"), "{text}");
        assert!(
            text.contains("  order-service: held under Dapr's single consumer name"),
            "{text}"
        );
        assert!(
            text.ends_with("oldest pending entries (0 shown of 2):\n  none\n"),
            "{text}"
        );

        let text = render(&inspection(&[("pod-a", 1)], Some(0)));
        assert!(
            text.contains("lag:             0 (not delivered yet)"),
            "{text}"
        );
        assert!(!text.contains("Dapr"), "{text}");
        let text = render(&inspection(&[], Some(0)));
        assert!(
            text.contains("  none (no worker has read from this group yet)"),
            "{text}"
        );
    }
}
