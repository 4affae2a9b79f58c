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

impl Misfit {
    /// `column` is `found`; the worker needs `needs`.
    fn new(column: &'static str, found: String, needs: String) -> Self {
        Self {
            column,
            found,
            needs,
        }
    }
}

/// Checks `columns` (the whole table's) against what the worker reads and writes.
pub fn check(columns: &[Column]) -> Result<Shape, Vec<Misfit>> {
    let column = |name: &str| columns.iter().find(|c| c.name == name);
    let mut misfits = Vec::new();
    let id = fits(&mut misfits, id_type(column("id")));
    let status = fits(&mut misfits, status_type(column("status")));
    fits(&mut misfits, updated_at(column("updated_at")));
    let has_fulfillment_status = fits(
        &mut misfits,
        fulfillment_status(column("fulfillment_status")),
    )
    .unwrap_or(false);
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

/// What a column's check found, its misfit (if any) added to `misfits`: all are reported at once.
fn fits<T>(misfits: &mut Vec<Misfit>, checked: Result<T, Misfit>) -> Option<T> {
    checked.map_err(|misfit| misfits.push(misfit)).ok()
}

/// `id`: what the order ids are, if the column is a string or UUID that is unique.
fn id_type(column: Option<&Column>) -> Result<OrderIds, Misfit> {
    match column {
        Some(c) if !matches!(c.type_name.as_str(), "text" | "varchar" | "uuid") => {
            let needs = "TEXT, VARCHAR or UUID (the events' order ids are strings)";
            Err(Misfit::new("id", c.written.clone(), needs.to_owned()))
        }
        Some(c) if !c.unique => {
            let needs =
                "a primary key or unique index on `id` alone (the worker locks an order's one row)";
            Err(Misfit::new(
                "id",
                format!("{} without a primary key or unique index", c.written),
                needs.to_owned(),
            ))
        }
        Some(c) if c.type_name == "uuid" => Ok(OrderIds::Uuid),
        Some(_) => Ok(OrderIds::Text),
        None => Err(Misfit::new(
            "id",
            "missing".to_owned(),
            "an `id` column: TEXT, VARCHAR or UUID".to_owned(),
        )),
    }
}

/// `status`: how the worker writes it, if the column can hold every status the rules use.
fn status_type(column: Option<&Column>) -> Result<StatusType, Misfit> {
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    match column {
        Some(c) => match (&c.enum_labels, text_fits(c, &statuses)) {
            (Some(labels), _) => enum_status(c, labels, &statuses),
            (None, true) => Ok(StatusType::Text),
            (None, false) => Err(Misfit::new(
                "status",
                c.written.clone(),
                status_needs(&statuses),
            )),
        },
        None => Err(Misfit::new(
            "status",
            "missing".to_owned(),
            status_needs(&statuses),
        )),
    }
}

/// An enum `status` (`column`, its `labels`) fits if it has every one of `statuses`.
fn enum_status(
    column: &Column,
    labels: &[String],
    statuses: &[&str],
) -> Result<StatusType, Misfit> {
    let lacking: Vec<&str> = statuses
        .iter()
        .copied()
        .filter(|s| !labels.iter().any(|l| l == s))
        .collect();
    if lacking.is_empty() {
        return Ok(StatusType::Enum(column.cast.clone()));
    }
    Err(Misfit::new(
        "status",
        format!("the enum {} without {}", column.written, quoted(&lacking)),
        format!(
            "an enum with every status the rules use: {}",
            quoted(statuses)
        ),
    ))
}

/// `updated_at`: a timestamp the worker sets with each change.
fn updated_at(column: Option<&Column>) -> Result<(), Misfit> {
    match column {
        Some(c) if matches!(c.type_name.as_str(), "timestamptz" | "timestamp") => Ok(()),
        found => Err(Misfit::new(
            "updated_at",
            found.map_or("missing".to_owned(), |c| c.written.clone()),
            "TIMESTAMPTZ or TIMESTAMP (set to now() with each change the worker makes)".to_owned(),
        )),
    }
}

/// `fulfillment_status`: whether the worker's own column is there yet (`migrate` adds it), and
/// a misfit if it is there but cannot hold every fulfillment status.
fn fulfillment_status(column: Option<&Column>) -> Result<bool, Misfit> {
    let fulfillment_statuses: Vec<&str> =
        FulfillmentStatus::ALL.iter().map(|s| s.as_str()).collect();
    match column {
        Some(c) if c.enum_labels.is_none() && text_fits(c, &fulfillment_statuses) => Ok(true),
        Some(c) => {
            let longest = longest(&fulfillment_statuses);
            Err(Misfit::new(
                "fulfillment_status",
                c.written.clone(),
                format!("TEXT or VARCHAR({longest}) or longer (the worker's own column, added by `order-worker migrate` when missing)"),
            ))
        }
        None => Ok(false),
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
