//! Whether an orders table fits the worker, from what the catalog says of its columns: pure, so
//! every kind of table an order service may have is a table test. A misfit names the column,
//! what it found and what the worker needs.

use std::fmt;

use crate::envelope::OrderIds;
use crate::topics::{FulfillmentStatus, OrderStatus};

/// A column as PostgreSQL's catalog describes it.
#[derive(Debug, Clone, Default)]
pub struct Column {
    pub name: String,
    /// The type's internal name: `text`, `varchar`, `uuid`, `timestamptz`, `int4`, an enum's…
    pub type_name: String,
    /// The type as PostgreSQL writes it, for messages (`character varying(8)`, `integer`).
    pub written: String,
    /// The type as SQL can name it in a cast (schema-qualified and quoted where needed).
    pub cast: String,
    /// An enum's labels; `None` for other types.
    pub enum_labels: Option<Vec<String>>,
    /// A `VARCHAR(n)`'s n.
    pub max_length: Option<usize>,
    /// Whether a primary key or unique index covers this column alone.
    pub unique: bool,
}

/// How the worker writes `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusType {
    /// `TEXT` or `VARCHAR`: a string.
    Text,
    /// A PostgreSQL enum: the string cast to this type.
    Enum(String),
}

/// What the worker needs to know of a table that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub id: OrderIds,
    pub status: StatusType,
    /// Whether the worker's one column of its own, `fulfillment_status`, is there yet.
    pub has_fulfillment_status: bool,
    /// Which of [`DESCRIBING`] the table has: the published events carry them.
    pub describing: Vec<&'static str>,
}

/// The columns of an order that `orders.order.status_changed` carries when the table has them
/// (DESIGN §2c); any type, written as text.
pub const DESCRIBING: [&str; 2] = ["order_number", "customer_id"];

/// One column that does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub column: &'static str,
    pub found: String,
    pub needs: String,
}

impl fmt::Display for Misfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is {}; the worker needs {}",
            self.column, self.found, self.needs
        )
    }
}

/// Checks `columns` (the whole table's) against what the worker reads and writes.
pub fn check(columns: &[Column]) -> Result<Shape, Vec<Misfit>> {
    let mut misfits = Vec::new();
    let column = |name: &str| columns.iter().find(|c| c.name == name);
    let mut misfit = |column: &'static str, found: String, needs: String| {
        misfits.push(Misfit {
            column,
            found,
            needs,
        });
    };

    let id = match column("id") {
        Some(c) if !matches!(c.type_name.as_str(), "text" | "varchar" | "uuid") => {
            let needs = "TEXT, VARCHAR or UUID (the events' order ids are strings)";
            misfit("id", c.written.clone(), needs.to_owned());
            None
        }
        Some(c) if !c.unique => {
            let needs =
                "a primary key or unique index on `id` alone (the worker locks an order's one row)";
            misfit(
                "id",
                format!("{} without a primary key or unique index", c.written),
                needs.to_owned(),
            );
            None
        }
        Some(c) if c.type_name == "uuid" => Some(OrderIds::Uuid),
        Some(_) => Some(OrderIds::Text),
        None => {
            misfit(
                "id",
                "missing".to_owned(),
                "an `id` column: TEXT, VARCHAR or UUID".to_owned(),
            );
            None
        }
    };

    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    let status = match column("status") {
        Some(c) => match (&c.enum_labels, text_fits(c, &statuses)) {
            (Some(labels), _) => {
                let lacking: Vec<&str> = statuses
                    .iter()
                    .copied()
                    .filter(|s| !labels.iter().any(|l| l == s))
                    .collect();
                if lacking.is_empty() {
                    Some(StatusType::Enum(c.cast.clone()))
                } else {
                    misfit(
                        "status",
                        format!("the enum {} without {}", c.written, quoted(&lacking)),
                        format!(
                            "an enum with every status the rules use: {}",
                            quoted(&statuses)
                        ),
                    );
                    None
                }
            }
            (None, true) => Some(StatusType::Text),
            (None, false) => {
                misfit("status", c.written.clone(), status_needs(&statuses));
                None
            }
        },
        None => {
            misfit("status", "missing".to_owned(), status_needs(&statuses));
            None
        }
    };

    match column("updated_at") {
        Some(c) if matches!(c.type_name.as_str(), "timestamptz" | "timestamp") => {}
        found => misfit(
            "updated_at",
            found.map_or("missing".to_owned(), |c| c.written.clone()),
            "TIMESTAMPTZ or TIMESTAMP (set to now() with each change the worker makes)".to_owned(),
        ),
    }

    let fulfillment_statuses: Vec<&str> =
        FulfillmentStatus::ALL.iter().map(|s| s.as_str()).collect();
    let has_fulfillment_status = match column("fulfillment_status") {
        Some(c) if c.enum_labels.is_none() && text_fits(c, &fulfillment_statuses) => true,
        Some(c) => {
            let longest = longest(&fulfillment_statuses);
            misfit(
                "fulfillment_status",
                c.written.clone(),
                format!("TEXT or VARCHAR({longest}) or longer (the worker's own column, added by `order-worker migrate` when missing)"),
            );
            false
        }
        None => false,
    };

    match (id, status) {
        (Some(id), Some(status)) if misfits.is_empty() => Ok(Shape {
            id,
            status,
            has_fulfillment_status,
            describing: DESCRIBING
                .into_iter()
                .filter(|name| column(name).is_some())
                .collect(),
        }),
        _ => Err(misfits),
    }
}

/// Whether `column` is a string type long enough for every one of `values`.
fn text_fits(column: &Column, values: &[&str]) -> bool {
    match column.type_name.as_str() {
        "text" => true,
        "varchar" => column.max_length.is_none_or(|n| n >= longest(values)),
        _ => false,
    }
}

fn longest(values: &[&str]) -> usize {
    values.iter().map(|v| v.len()).max().unwrap_or(0)
}

fn status_needs(statuses: &[&str]) -> String {
    format!(
        "TEXT, VARCHAR({}) or longer, or an enum with every status the rules use: {}",
        longest(statuses),
        quoted(statuses)
    )
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
