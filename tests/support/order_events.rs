//! The published side: `orders.order.status_changed` read back as a Dapr subscriber reads it
//! (the entry's `data` a CloudEvent, its `data` the order service's event), and the outbox.

use std::collections::BTreeMap;

use diesel_async::RunQueryDsl;
use serde_json::Value;

use super::{eventually, TestEnv};

/// One published event, as a subscriber sees it.
#[derive(Debug, Clone)]
pub struct Published {
    pub entry_id: String,
    /// The whole CloudEvent.
    pub cloud_event: Value,
    /// The entry's `metadata` field, as written.
    pub metadata: Option<String>,
}

impl Published {
    /// The CloudEvent's `data`: the order service's event.
    pub fn event(&self) -> &Value {
        &self.cloud_event["data"]
    }

    pub fn id(&self) -> &str {
        self.cloud_event["id"].as_str().expect("a CloudEvent id")
    }

    pub fn order_id(&self) -> &str {
        self.event()["order_id"].as_str().expect("order_id")
    }

    /// (old_status, new_status, reason).
    pub fn step(&self) -> (String, String, String) {
        let field = |name: &str| self.event()[name].as_str().unwrap_or("").to_owned();
        (field("old_status"), field("new_status"), field("reason"))
    }
}

impl TestEnv {
    /// Every event published on this test's order events stream, oldest first.
    pub async fn published(&self) -> Vec<Published> {
        self.published_on(&self.order_events().order_events_topic)
            .await
    }

    /// Every event published on `key`, oldest first.
    pub async fn published_on(&self, key: &str) -> Vec<Published> {
        self.raw_entries_of(key)
            .await
            .into_iter()
            .map(|(entry_id, fields)| {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| String::from_utf8(v.clone()).expect("UTF-8"))
                };
                let data = field("data").expect("a data field");
                Published {
                    entry_id,
                    cloud_event: serde_json::from_str(&data).expect("data is a CloudEvent"),
                    metadata: field("metadata"),
                }
            })
            .collect()
    }

    /// The published events grouped by order, each order's in stream order.
    pub async fn published_by_order(&self) -> BTreeMap<String, Vec<Published>> {
        let mut by_order: BTreeMap<String, Vec<Published>> = BTreeMap::new();
        for event in self.published().await {
            by_order
                .entry(event.order_id().to_owned())
                .or_default()
                .push(event);
        }
        by_order
    }

    /// Rows in the outbox (waiting or held).
    pub async fn outbox_rows(&self) -> i64 {
        self.count_outbox("TRUE").await
    }

    /// Rows the relay held (Redis would refuse them).
    pub async fn held_rows(&self) -> i64 {
        self.count_outbox("held_since IS NOT NULL").await
    }

    async fn count_outbox(&self, condition: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = format!("SELECT count(*) AS n FROM order_events_outbox WHERE {condition}");
        diesel::sql_query(sql)
            .get_result::<Count>(&mut self.db().await)
            .await
            .expect("outbox count")
            .n
    }

    /// Waits until the outbox holds only `left` rows, a held one among them (the others wait
    /// behind held ones, which the relay never publishes), and returns what was published.
    pub async fn wait_published_all_but(&self, left: i64) -> Vec<Published> {
        eventually(
            &format!("the outbox down to {left} rows, one held"),
            async || self.outbox_rows().await == left && self.held_rows().await > 0,
        )
        .await;
        self.published().await
    }

    /// Waits until the outbox is empty and `n` events are published.
    pub async fn wait_published(&self, n: usize) -> Vec<Published> {
        eventually(&format!("{n} events published, outbox empty"), async || {
            self.outbox_rows().await == 0 && self.published().await.len() >= n
        })
        .await;
        self.published().await
    }
}

/// Checks that each order's events chain from `from` (each `old_status` the previous
/// `new_status`) and that no CloudEvent id appears twice; returns each order's path.
pub fn chains(published: &[Published], from: &str) -> BTreeMap<String, Vec<String>> {
    chains_from(published, |_| from.to_owned())
}

/// Each of `orders` published its whole fulfillment lifecycle from `confirmed`, in order, once
/// ([`chains`]).
pub fn assert_lifecycles_published(published: &[Published], orders: &[String]) {
    let paths = chains(published, "confirmed");
    for order in orders {
        assert_eq!(
            paths[order],
            ["confirmed", "processing", "shipped", "delivered"],
            "{order}"
        );
    }
}

/// [`chains`], each order from the status `start` gives it.
pub fn chains_from(
    published: &[Published],
    start: impl Fn(&str) -> String,
) -> BTreeMap<String, Vec<String>> {
    let mut ids = std::collections::HashSet::new();
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in published {
        assert!(ids.insert(event.id().to_owned()), "id twice: {event:?}");
        let path = paths
            .entry(event.order_id().to_owned())
            .or_insert_with(|| vec![start(event.order_id())]);
        let (old, new, _) = event.step();
        assert_eq!(
            path.last(),
            Some(&old),
            "{}: {old} → {new} after {path:?}",
            event.order_id()
        );
        path.push(new);
    }
    paths
}
