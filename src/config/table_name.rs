//! `ORDERS_TABLE`: which table holds the orders, `[schema.]table`, checked before any SQL is
//! built from it.

use std::fmt;
use std::str::FromStr;

/// PostgreSQL truncates longer identifiers (NAMEDATALEN - 1): a longer name would silently
/// name another table.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// A table name as `ORDERS_TABLE` gives it: an optional schema and a table, each a plain SQL
/// identifier, folded to lower case as PostgreSQL folds unquoted names (`Sales.Orders` is
/// `sales.orders`). Without a schema, PostgreSQL's `search_path` finds the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    table: String,
}

impl Default for TableName {
    fn default() -> Self {
        Self {
            schema: None,
            table: "orders".to_owned(),
        }
    }
}

impl TableName {
    /// The name as SQL text, each part quoted: safe to splice into a statement.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.table),
            None => format!("\"{}\"", self.table),
        }
    }

    /// Whether the name has no schema (the one PostgreSQL's `search_path` finds first).
    pub fn is_unqualified(&self) -> bool {
        self.schema.is_none()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// Why `ORDERS_TABLE` is not a table name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "ORDERS_TABLE {given:?}: {part:?} is not a plain identifier (letters, digits, `_` and `$`, \
     not starting with a digit, at most 63 bytes); write `table` or `schema.table`"
)]
pub struct BadTableName {
    given: String,
    part: String,
}

impl FromStr for TableName {
    type Err = BadTableName;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let identifier = |part: &str| {
            let mut chars = part.chars();
            let first = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            if first && rest && part.len() <= MAX_IDENTIFIER_BYTES {
                Ok(part.to_ascii_lowercase())
            } else {
                Err(BadTableName {
                    given: given.to_owned(),
                    part: part.to_owned(),
                })
            }
        };
        match given.split('.').collect::<Vec<_>>()[..] {
            [table] => Ok(Self {
                schema: None,
                table: identifier(table)?,
            }),
            [schema, table] => Ok(Self {
                schema: Some(identifier(schema)?),
                table: identifier(table)?,
            }),
            _ => Err(BadTableName {
                given: given.to_owned(),
                part: given.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_identifiers_folded_as_postgresql_folds_them() {
        let cases = [
            ("orders", Some(("orders", "\"orders\""))),
            (
                "sales.orders",
                Some(("sales.orders", "\"sales\".\"orders\"")),
            ),
            (
                "Sales.Orders",
                Some(("sales.orders", "\"sales\".\"orders\"")),
            ),
            ("_o$1", Some(("_o$1", "\"_o$1\""))),
            ("", None),
            ("1orders", None),
            ("sales.", None),
            (".orders", None),
            ("a.b.c", None),
            ("orders; DROP TABLE orders", None),
            ("\"orders\"", None),
            ("ordérs", None),
        ];
        for (given, want) in cases {
            let parsed = given.parse::<TableName>();
            match want {
                Some((display, quoted)) => {
                    let name = parsed.unwrap_or_else(|e| panic!("{given:?}: {e}"));
                    assert_eq!(name.to_string(), display, "{given:?}");
                    assert_eq!(name.quoted(), quoted, "{given:?}");
                }
                None => assert!(parsed.is_err(), "{given:?} accepted"),
            }
        }
        let too_long = "o".repeat(64);
        assert!(too_long.parse::<TableName>().is_err());
        assert!(too_long[..63].parse::<TableName>().is_ok());
        let error = "sales.Or-ders"
            .parse::<TableName>()
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("ORDERS_TABLE \"sales.Or-ders\": \"Or-ders\" is not"),
            "{error}"
        );
    }
}
