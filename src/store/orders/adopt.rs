//! `order-worker migrate`'s part for the orders table. On a fresh database it creates the
//! table; where the order service already has one it checks it and adds only the worker's own
//! nullable column, never dropping, renaming or retyping anything.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::catalog;
use super::shape::{self, Misfit};
use crate::config::TableName;
use crate::topics::OrderStatus;

/// How long `ALTER TABLE` may wait for its lock. Its lock (ACCESS EXCLUSIVE, for a change of
/// the catalog only: adding a nullable column rewrites nothing) is held for milliseconds, but
/// while it waits behind a long transaction every query on the table queues behind it; so it
/// gives up quickly, and tries again a moment later.
const LOCK_TIMEOUT: &str = "2s";
const LOCK_ATTEMPTS: u32 = 30;
const BETWEEN_ATTEMPTS: Duration = Duration::from_secs(1);

/// What `migrate` did to the orders table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// There was none: the worker's own table was created.
    Created,
    /// The order service's table, given the worker's `fulfillment_status` column.
    AddedColumn,
    /// A table that already had everything.
    AsItIs,
}

impl fmt::Display for Adopted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::AddedColumn => "adopted: added the nullable column fulfillment_status",
            Self::AsItIs => "fits as it is",
        })
    }
}

/// Creates the orders table `name`, or checks the existing one and adds what the worker needs.
/// Refuses a table that does not fit, naming each column at fault and changing nothing.
pub async fn adopt(conn: &mut AsyncPgConnection, name: &TableName) -> anyhow::Result<Adopted> {
    let Some(columns) = catalog::columns(conn, name).await? else {
        conn.batch_execute(&create_sql(name))
            .await
            .with_context(|| format!("creating the orders table `{name}`"))?;
        return Ok(Adopted::Created);
    };
    let shape = shape::check(&columns).map_err(|misfits| refusal(name, &misfits))?;
    if shape.has_fulfillment_status {
        return Ok(Adopted::AsItIs);
    }
    add_column(conn, name).await?;
    Ok(Adopted::AddedColumn)
}

/// The error for a table that does not fit: every misfit, one per line.
pub fn refusal(name: &TableName, misfits: &[Misfit]) -> anyhow::Error {
    let lines: Vec<String> = misfits.iter().map(|m| format!("  - {m}")).collect();
    anyhow::anyhow!(
        "the orders table `{name}` does not fit the worker (nothing in it was changed):\n{}",
        lines.join("\n")
    )
}

/// The table as the worker makes it when the order service has none (a new service, tests).
fn create_sql(name: &TableName) -> String {
    let statuses: Vec<String> = OrderStatus::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    // fillfactor: room on each page for the new version of a row, so that the worker's
    // updates are HOT (BENCHMARKS.md, "The record of each event").
    format!(
        "CREATE TABLE {} (
            id                 TEXT PRIMARY KEY,
            status             TEXT NOT NULL CHECK (status IN ({})),
            fulfillment_status TEXT NULL,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
        ) WITH (fillfactor = 70)",
        name.quoted(),
        statuses.join(", ")
    )
}

/// Adds `fulfillment_status` (nullable, no default: a change of the catalog alone), each
/// attempt waiting at most [`LOCK_TIMEOUT`] for the lock.
async fn add_column(conn: &mut AsyncPgConnection, name: &TableName) -> anyhow::Result<()> {
    let alter = format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS fulfillment_status TEXT NULL",
        name.quoted()
    );
    let mut attempt = 1;
    loop {
        let added = conn
            .transaction(async |conn| {
                conn.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                    .await?;
                conn.batch_execute(&alter).await
            })
            .await;
        match added {
            Ok(()) => return Ok(()),
            Err(error) if is_lock_timeout(&error) && attempt < LOCK_ATTEMPTS => {
                tracing::warn!(
                    table = %name,
                    attempt,
                    "adding fulfillment_status waited {LOCK_TIMEOUT} for its lock: another \
                     transaction holds {name} (see pg_stat_activity); trying again"
                );
                tokio::time::sleep(BETWEEN_ATTEMPTS).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("adding the column fulfillment_status to {name} (attempt {attempt})")
                })
            }
        }
    }
}

fn is_lock_timeout(error: &diesel::result::Error) -> bool {
    matches!(error, diesel::result::Error::DatabaseError(_, info)
        if info.message().contains("lock timeout"))
}
