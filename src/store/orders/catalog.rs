//! What PostgreSQL's catalog says of a table's columns, as [`super::shape`] checks them.

use anyhow::Context;
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::shape::Column;
use crate::config::TableName;

/// The table's columns; `None` when there is no such table. Anything but a table (a view, a
/// sequence) is refused here, by name.
pub async fn columns(
    conn: &mut AsyncPgConnection,
    name: &TableName,
) -> anyhow::Result<Option<Vec<Column>>> {
    let kind: Vec<Kind> = diesel::sql_query(
        "SELECT c.relkind::text AS kind FROM pg_class c WHERE c.oid = to_regclass($1)",
    )
    .bind::<Text, _>(name.quoted())
    .load(conn)
    .await
    .with_context(|| format!("looking up the orders table {name}"))?;
    match kind.as_slice().first().map(|k| k.kind.as_str()) {
        None => return Ok(None),
        // An ordinary or a partitioned table.
        Some("r" | "p") => {}
        Some(other) => anyhow::bail!(
            "the orders table `{name}` is {}, not a table",
            match other {
                "v" => "a view",
                "m" => "a materialized view",
                "f" => "a foreign table",
                _ => "another kind of relation",
            }
        ),
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT a.attname::text AS name, t.typname::text AS type_name, \
         format_type(a.atttypid, a.atttypmod) AS written, format_type(a.atttypid, NULL) AS cast_to, \
         CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e \
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END AS enum_labels, \
         CASE WHEN t.typname = 'varchar' AND a.atttypmod > 4 THEN a.atttypmod - 4 END AS max_length, \
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique \
             AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL) AS is_unique \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind::<Text, _>(name.quoted())
    .load(conn)
    .await
    .with_context(|| format!("reading the columns of {name}"))?;
    Ok(Some(rows.into_iter().map(Row::into_column).collect()))
}

#[derive(diesel::QueryableByName)]
struct Kind {
    #[diesel(sql_type = Text)]
    kind: String,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
    #[diesel(sql_type = Text)]
    written: String,
    #[diesel(sql_type = Text)]
    cast_to: String,
    #[diesel(sql_type = Nullable<Array<Text>>)]
    enum_labels: Option<Vec<String>>,
    #[diesel(sql_type = Nullable<Integer>)]
    max_length: Option<i32>,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
}

impl Row {
    fn into_column(self) -> Column {
        Column {
            name: self.name,
            type_name: self.type_name,
            written: self.written,
            cast: self.cast_to,
            enum_labels: self.enum_labels,
            max_length: self.max_length.and_then(|n| usize::try_from(n).ok()),
            unique: self.is_unique,
        }
    }
}
