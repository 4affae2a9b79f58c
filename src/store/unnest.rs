//! Set-based statements whose text never changes: each `$` in the SQL takes one column of
//! values as a `text[]`. Unlike `diesel::sql_query`, whose statements diesel never caches, these
//! are prepared once per connection and then sent with their values alone: one round trip per
//! statement instead of two (prepare, then execute).

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, SqlType, Text};
use diesel::QueryResult;

/// A statement such as `INSERT … SELECT * FROM unnest($::text[], $::text[])` with its columns.
pub struct TextColumns<'a> {
    sql: &'a str,
    columns: Vec<Vec<&'a str>>,
}

impl<'a> TextColumns<'a> {
    /// `sql` with one `$` per column, in order (and no other `$`).
    pub fn new(sql: &'a str) -> Self {
        Self {
            sql,
            columns: Vec::new(),
        }
    }

    /// `sql` with its columns given whole, one per `$`, in order.
    pub fn with_columns(sql: &'a str, columns: Vec<Vec<&'a str>>) -> Self {
        Self { sql, columns }
    }

    /// Binds the next `$` to `field` of every row.
    pub fn column<T>(mut self, rows: &'a [T], field: impl Fn(&'a T) -> &'a str) -> Self {
        self.columns.push(rows.iter().map(field).collect());
        self
    }
}

impl<'a> TextColumns<'a> {
    /// The statement as a query whose rows are of SQL type `ST`.
    pub fn returning<ST>(self) -> TextRows<'a, ST> {
        TextRows {
            columns: self,
            rows: PhantomData,
        }
    }
}

/// A [`TextColumns`] query that returns rows (of SQL type `ST`), prepared once the same way.
pub struct TextRows<'a, ST> {
    columns: TextColumns<'a>,
    rows: PhantomData<ST>,
}

impl<ST: SqlType> Query for TextRows<'_, ST> {
    type SqlType = ST;
}

impl<ST> QueryFragment<Pg> for TextRows<'_, ST> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.columns.walk_ast(out)
    }
}

impl<ST> QueryId for TextRows<'_, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for TextColumns<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut parts = self.sql.split('$');
        out.push_sql(parts.next().unwrap_or_default());
        for (part, column) in parts.zip(&self.columns) {
            out.push_bind_param::<Array<Text>, _>(column)?;
            out.push_sql(part);
        }
        Ok(())
    }
}

/// Cached by its SQL text (no static id: the text is a value).
impl QueryId for TextColumns<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;

    use super::*;

    #[test]
    fn each_dollar_becomes_a_numbered_parameter_for_its_column() {
        let rows = [("e1", "1-0"), ("e2", "2-0")];
        let statement = TextColumns::new("SELECT * FROM unnest($::text[], $::text[])")
            .column(&rows, |(event, _)| event)
            .column(&rows, |(_, entry)| entry);
        let sql = debug_query::<Pg, _>(&statement).to_string();
        assert!(
            sql.starts_with("SELECT * FROM unnest($1::text[], $2::text[])"),
            "{sql}"
        );
        assert!(
            sql.contains(r#"["e1", "e2"]"#) && sql.contains(r#"["1-0", "2-0"]"#),
            "{sql}"
        );
    }
}
