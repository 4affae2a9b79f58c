//! Tables an order service may have, each with what the worker makes of it.

use super::*;

fn col(name: &str, type_name: &str) -> Column {
    let written = match type_name {
        "varchar" => "character varying",
        "timestamptz" => "timestamp with time zone",
        "int4" => "integer",
        other => other,
    };
    Column {
        name: name.to_owned(),
        type_name: type_name.to_owned(),
        written: written.to_owned(),
        cast: written.to_owned(),
        unique: name == "id",
        ..Column::default()
    }
}

fn varchar(name: &str, n: usize) -> Column {
    Column {
        written: format!("character varying({n})"),
        max_length: Some(n),
        ..col(name, "varchar")
    }
}

fn status_enum(labels: &[&str]) -> Column {
    Column {
        written: "sales.order_state".to_owned(),
        cast: "sales.order_state".to_owned(),
        enum_labels: Some(labels.iter().map(|l| l.to_string()).collect()),
        ..col("status", "order_state")
    }
}

const ALL_STATUSES: [&str; 9] = [
    "pending",
    "confirmed",
    "processing",
    "partially_shipped",
    "shipped",
    "delivered",
    "cancelled",
    "refunded",
    "failed",
];

/// The worker's own table, as earlier builds created it.
fn ours() -> Vec<Column> {
    vec![
        col("id", "text"),
        col("status", "text"),
        col("fulfillment_status", "text"),
        col("created_at", "timestamptz"),
        col("updated_at", "timestamptz"),
    ]
}

/// An order service's table: more columns, a UUID id, no `fulfillment_status` yet.
fn theirs() -> Vec<Column> {
    vec![
        col("id", "uuid"),
        col("customer_id", "uuid"),
        varchar("status", 32),
        col("total", "numeric"),
        col("shipping_address", "jsonb"),
        col("created_at", "timestamptz"),
        col("updated_at", "timestamp"),
    ]
}

fn with(mut columns: Vec<Column>, column: Column) -> Vec<Column> {
    columns.retain(|c| c.name != column.name);
    columns.push(column);
    columns
}

fn without(mut columns: Vec<Column>, name: &str) -> Vec<Column> {
    columns.retain(|c| c.name != name);
    columns
}

#[test]
fn tables_that_fit() {
    let cases = [
        (
            "the worker's own",
            ours(),
            OrderIds::Text,
            StatusType::Text,
            true,
        ),
        (
            "an order service's, UUID ids",
            theirs(),
            OrderIds::Uuid,
            StatusType::Text,
            false,
        ),
        (
            "a status enum with more labels than the rules use",
            with(
                theirs(),
                status_enum(&[&ALL_STATUSES[..], &["on_hold"]].concat()),
            ),
            OrderIds::Uuid,
            StatusType::Enum("sales.order_state".to_owned()),
            false,
        ),
        (
            "VARCHAR ids",
            with(ours(), varchar("id", 36)),
            OrderIds::Text,
            StatusType::Text,
            true,
        ),
        (
            "a long enough VARCHAR status",
            with(ours(), varchar("status", 17)),
            OrderIds::Text,
            StatusType::Text,
            true,
        ),
        (
            "an unbounded VARCHAR status",
            with(ours(), col("status", "varchar")),
            OrderIds::Text,
            StatusType::Text,
            true,
        ),
        (
            "its own VARCHAR fulfillment_status",
            with(theirs(), varchar("fulfillment_status", 11)),
            OrderIds::Uuid,
            StatusType::Text,
            true,
        ),
    ];
    for (what, columns, id, status, has_fulfillment_status) in cases {
        let want = Shape {
            id,
            status,
            has_fulfillment_status,
            // The order service's carries `customer_id`, never `order_number` here.
            describing: if columns.iter().any(|c| c.name == "customer_id") {
                vec!["customer_id"]
            } else {
                Vec::new()
            },
        };
        assert_eq!(check(&columns), Ok(want), "{what}");
    }
}

#[test]
fn the_published_event_carries_the_describing_columns_the_table_has() {
    let cases: [(&str, Vec<Column>, Vec<&str>); 3] = [
        ("neither", ours(), vec![]),
        (
            "both, whatever their types",
            with(
                with(ours(), col("order_number", "varchar")),
                col("customer_id", "uuid"),
            ),
            vec!["order_number", "customer_id"],
        ),
        ("customer_id alone", theirs(), vec!["customer_id"]),
    ];
    for (what, columns, want) in cases {
        let shape = check(&columns).expect("fits");
        assert_eq!(shape.describing, want, "{what}");
    }
}

#[test]
fn tables_that_do_not_fit_are_refused_column_by_column() {
    let not_unique = Column {
        unique: false,
        ..col("id", "uuid")
    };
    let lacking = status_enum(&["pending", "confirmed", "shipped", "delivered", "cancelled"]);
    let cases: Vec<(&str, Vec<Column>, Vec<&str>)> = vec![
        (
            "an INTEGER id",
            with(theirs(), col("id", "int4")),
            vec!["`id` is integer; the worker needs TEXT, VARCHAR or UUID (the events' order ids are strings)"],
        ),
        (
            "no status",
            without(theirs(), "status"),
            vec!["`status` is missing; the worker needs TEXT, VARCHAR(17) or longer, or an enum with every status the rules use: 'pending', 'confirmed', 'processing', 'partially_shipped', 'shipped', 'delivered', 'cancelled', 'refunded', 'failed'"],
        ),
        (
            "a status too short for 'partially_shipped'",
            with(theirs(), varchar("status", 12)),
            vec!["`status` is character varying(12); the worker needs TEXT, VARCHAR(17) or longer, or an enum with every status the rules use: 'pending', 'confirmed', 'processing', 'partially_shipped', 'shipped', 'delivered', 'cancelled', 'refunded', 'failed'"],
        ),
        (
            "an enum lacking statuses",
            with(theirs(), lacking),
            vec!["`status` is the enum sales.order_state without 'processing', 'partially_shipped', 'refunded', 'failed'; the worker needs an enum with every status the rules use: 'pending', 'confirmed', 'processing', 'partially_shipped', 'shipped', 'delivered', 'cancelled', 'refunded', 'failed'"],
        ),
        (
            "an id that is not unique",
            with(theirs(), not_unique),
            vec!["`id` is uuid without a primary key or unique index; the worker needs a primary key or unique index on `id` alone (the worker locks an order's one row)"],
        ),
        (
            "no updated_at",
            without(theirs(), "updated_at"),
            vec!["`updated_at` is missing; the worker needs TIMESTAMPTZ or TIMESTAMP (set to now() with each change the worker makes)"],
        ),
        (
            "a fulfillment_status of another type",
            with(theirs(), col("fulfillment_status", "int4")),
            vec!["`fulfillment_status` is integer; the worker needs TEXT or VARCHAR(11) or longer (the worker's own column, added by `order-worker migrate` when missing)"],
        ),
        (
            "everything wrong at once: each said",
            vec![col("id", "int4"), col("updated_at", "date")],
            vec!["`id` is integer", "`status` is missing", "`updated_at` is date"],
        ),
    ];
    for (what, columns, want) in cases {
        let misfits = check(&columns).expect_err(what);
        let said: Vec<String> = misfits.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), want.len(), "{what}: {said:#?}");
        for (said, want) in said.iter().zip(want) {
            assert!(
                said.starts_with(want),
                "{what}: {said:?} does not start with {want:?}"
            );
        }
    }
}
