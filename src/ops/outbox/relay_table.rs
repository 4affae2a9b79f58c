//! `order-worker outbox` with `RELAY_TABLE` set: the order service's outbox as the relay sees
//! it (its rows waiting and failed, with the order each belongs to, the attempts and the last
//! error), and `--requeue` (`--dry-run` first), which makes failed rows wait again, in either
//! table: the order service's (status back to RELAY_PENDING_STATUS, attempts 0) or the
//! worker's own (held rows released).

use std::fmt::Write;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use serde::Serialize;

use super::render::{holder, NOBODY_RELAYS};
use super::{OutboxArgs, RelayHolder};
use crate::ops::output::rfc3339;
use crate::ops::table::{human_ms, shorten, Table};
use crate::outbox::{Listed, Source};

/// The listing of a relayed table.
#[derive(Debug, Clone, Serialize)]
pub struct RelayedTable {
    pub table: String,
    /// Rows waiting to be published, and failed, as the relay's gauges count them.
    pub waiting: u64,
    pub failed: u64,
    /// How long the oldest waiting row has waited.
    pub oldest_waiting_ms: u64,
    /// The session holding this table's relay lock; `None`: no replica relays it now.
    pub relay: Option<RelayHolder>,
    pub failed_only: bool,
    pub rows: Vec<RelayedRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayedRow {
    pub id: i64,
    pub event_id: String,
    pub topic: Option<String>,
    /// The order at RELAY_ORDER_ID_PATH in its payload, when there is one.
    pub order_id: Option<String>,
    /// `failed` or `waiting`.
    pub state: &'static str,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub age_ms: u64,
}

/// What `--requeue` did, or with `--dry-run` would do.
#[derive(Debug, Clone, Serialize)]
pub struct Requeued {
    pub table: String,
    pub dry_run: bool,
    pub ids: Vec<i64>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    source: &Source,
    args: &OutboxArgs,
) -> anyhow::Result<RelayedTable> {
    let listed = crate::outbox::listing(conn, source, args.held, args.limit)
        .await
        .with_context(|| format!("reading the rows of {}", source.table))?;
    let rows = listed.into_iter().map(|row| shown(row, source)).collect();
    let counts = crate::outbox::backlog(conn, source)
        .await
        .with_context(|| format!("counting the rows of {}", source.table))?;
    Ok(RelayedTable {
        table: source.table.clone(),
        waiting: counts.waiting,
        failed: counts.failed,
        oldest_waiting_ms: counts.oldest.as_millis() as u64,
        relay: super::relay_holder(conn, source.lock).await?,
        failed_only: args.held,
        rows,
    })
}

fn shown(listed: Listed, source: &Source) -> RelayedRow {
    let Listed {
        stored: row,
        failed,
        last_error,
        age_ms,
    } = listed;
    let order_id = row
        .payload
        .as_deref()
        .and_then(|payload| serde_json::from_str(payload).ok())
        .and_then(|event| crate::outbox::order_id(&event, &source.order_id_path));
    RelayedRow {
        id: row.id,
        event_id: row.event_id,
        topic: row.topic,
        order_id,
        state: if failed { "failed" } else { "waiting" },
        attempts: row.attempts,
        last_error,
        created_at: rfc3339(row.created_at),
        age_ms: age_ms.max(0) as u64,
    }
}

pub async fn requeue(
    conn: &mut AsyncPgConnection,
    source: &Source,
    args: &OutboxArgs,
) -> anyhow::Result<Requeued> {
    let ids = crate::outbox::requeue(conn, source, &args.id, args.dry_run)
        .await
        .with_context(|| format!("requeueing the failed rows of {}", source.table))?;
    Ok(Requeued {
        table: source.table.clone(),
        dry_run: args.dry_run,
        ids,
    })
}

pub fn render_table(listing: &RelayedTable) -> String {
    let which = if listing.failed_only {
        "failed rows"
    } else {
        "rows waiting or failed"
    };
    let relay = listing
        .relay
        .as_ref()
        .map_or_else(|| NOBODY_RELAYS.to_owned(), holder);
    let mut out = format!(
        "{}: {} waiting (the oldest for {}), {} failed\nrelay: {relay}\n\n",
        listing.table,
        listing.waiting,
        human_ms(listing.oldest_waiting_ms),
        listing.failed
    );
    let _ = writeln!(out, "{} {which}:", listing.rows.len());
    if listing.rows.is_empty() {
        out.push_str("  none\n");
        return out;
    }
    let mut table = Table::new(&[
        "id",
        "state",
        "topic",
        "order",
        "attempts",
        "age",
        "event id",
        "last error",
    ]);
    for row in &listing.rows {
        table.row(vec![
            row.id.to_string(),
            row.state.to_owned(),
            row.topic.clone().unwrap_or_default(),
            row.order_id.clone().unwrap_or_else(|| "-".to_owned()),
            row.attempts.to_string(),
            human_ms(row.age_ms),
            row.event_id.clone(),
            shorten(row.last_error.as_deref().unwrap_or(""), 80),
        ]);
    }
    out.push_str(&table.render(2));
    out
}

pub fn render_requeued(requeued: &Requeued) -> String {
    let mut out = String::new();
    let verb = if requeued.dry_run {
        "would requeue (dry run: nothing changed)"
    } else {
        "requeued"
    };
    let _ = writeln!(
        out,
        "{verb} {} row(s) of {}",
        requeued.ids.len(),
        requeued.table
    );
    if !requeued.ids.is_empty() {
        let ids: Vec<String> = requeued.ids.iter().map(i64::to_string).collect();
        let _ = writeln!(out, "  ids: {}", ids.join(", "));
    }
    out
}
