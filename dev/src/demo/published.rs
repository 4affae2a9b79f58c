//! What the demo's worker told the rest of the system: `orders.order.status_changed`, read back
//! from its stream as a Dapr subscriber would (the CloudEvent in `data`, the event in its `data`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

/// Each order's published steps `(old_status, new_status)`, in stream order.
pub async fn by_order(
    redis: &mut order_worker::RedisConnection,
    key: &str,
) -> anyhow::Result<BTreeMap<String, Vec<(String, String)>>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(redis)
        .await?;
    let mut steps: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for entry in reply.ids {
        let data: String = entry.get("data").context("an entry without data")?;
        let cloud_event: Value = serde_json::from_str(&data).context("data is a CloudEvent")?;
        let event = &cloud_event["data"];
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
        steps
            .entry(field("order_id"))
            .or_default()
            .push((field("old_status"), field("new_status")));
    }
    Ok(steps)
}

/// Waits until the relay has published every row of the outbox.
pub async fn wait_for_relay(conn: &mut AsyncPgConnection, within: Duration) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let deadline = Instant::now() + within;
    loop {
        let waiting = diesel::sql_query("SELECT count(*) AS n FROM order_events_outbox")
            .get_result::<Waiting>(conn)
            .await?
            .n;
        if waiting == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{waiting} status change(s) still unpublished after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
