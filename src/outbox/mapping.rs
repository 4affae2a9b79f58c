//! The check of `RELAY_TABLE`'s mapping against the table itself, by `migrate` and at start-up:
//! a missing column is named with the setting that maps it. The table is only read, never
//! altered: it is the order service's.

use anyhow::Context;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::config::RelayMapping;

/// Refuses, naming the first missing column, unless `RELAY_TABLE` (when set) has every mapped
/// column.
pub async fn check(conn: &mut AsyncPgConnection, mapping: &RelayMapping) -> anyhow::Result<()> {
    let Some(table) = &mapping.relay_table else {
        return Ok(());
    };
    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        name: String,
    }
    // `to_regclass` is NULL for a table that is not there: no rows, and the check below says so.
    let found: Vec<Column> = diesel::sql_query(
        "SELECT attname::text AS name FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
    )
    .bind::<Text, _>(table.quoted())
    .load(conn)
    .await
    .with_context(|| format!("reading the columns of RELAY_TABLE {table}"))?;
    if found.is_empty() {
        anyhow::bail!("RELAY_TABLE {table}: no such table (the order service's outbox table)");
    }
    for (setting, column) in mapping.columns() {
        if !found.iter().any(|have| have.name == column.name()) {
            anyhow::bail!(
                "RELAY_TABLE {table} has no column {:?} ({setting}): set {setting} to the \
                 column that holds it; the table is never altered",
                column.name()
            );
        }
    }
    Ok(())
}
