//! The end state a replicas run must reach, read from PostgreSQL.

use anyhow::bail;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::demo::scenario::Scenario;
use order_worker::schema::{order_status_history, orders};

/// The end state: every order where the rules put it, and exactly one status change written
/// per history row (a change written twice would show as more log lines than rows).
pub async fn end_state(database_url: &str, scenario: &Scenario, logged: u64) -> anyhow::Result<()> {
    let mut conn = order_worker::connect_postgres(database_url.to_owned()).await?;
    let statuses: std::collections::HashMap<String, String> = orders::table
        .select((orders::id, orders::status))
        .load::<(String, String)>(&mut conn)
        .await?
        .into_iter()
        .collect();
    let wrong: Vec<String> = scenario
        .orders
        .iter()
        .filter(|(id, expected)| statuses.get(id).map(String::as_str) != Some(expected.as_str()))
        .map(|(id, expected)| {
            let got = statuses.get(id).map_or("missing", String::as_str);
            format!("{id} is {got}, expected {expected}")
        })
        .collect();
    if !wrong.is_empty() {
        let shown: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
        bail!(
            "{} order(s) not final as expected: {}",
            wrong.len(),
            shown.join("; ")
        );
    }
    let rows: i64 = order_status_history::table
        .count()
        .get_result(&mut conn)
        .await?;
    if u64::try_from(rows).ok() != Some(logged) {
        bail!("the replicas logged {logged} status changes but {rows} are in the history");
    }
    println!(
        "\nAll {} orders final, {rows} status changes each written once, nothing pending.",
        scenario.orders.len()
    );
    Ok(())
}
