//! What publishing status changes costs (issue 33): the fulfillment backlog drained with
//! `ORDER_EVENTS` on (every status change written to the outbox in its transaction and published
//! by the relay; the drain ends once the outbox is empty) and off (no outbox rows, no relay),
//! alternately, same run. The target: on ≥ 85 % of off.
//!
//! Also what every drain with publishing on must leave on the order events stream: exactly one
//! event per history row written, each order's events chained from where it started.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

use super::drain::drain;
use super::grown::median;
use super::workload::{Backlog, Workload};

/// The target: a drain with publishing on at least this share of one with it off.
pub const TARGET_PERCENT_OF_OFF: f64 = 85.0;

/// Drains on each side: a drain lasts seconds, and single ones vary by ±20 % here.
const DRAINS: usize = 3;

/// Entries read per XRANGE when reading the stream back.
const READ_CHUNK: usize = 5_000;

/// The `event_type` of every published event (and the real topic's name).
const EVENT_TYPE: &str = "orders.order.status_changed";

/// What the drains measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishingDrain {
    pub replicas: usize,
    /// Events/s of each drain with publishing off, then of each with it on, in the order run.
    pub off_events_per_second: Vec<f64>,
    pub on_events_per_second: Vec<f64>,
    pub off_median_events_per_second: f64,
    pub on_median_events_per_second: f64,
    /// The on drains' median as a share of the off drains'.
    pub on_percent_of_off: f64,
    pub target_percent_of_off: f64,
    /// What each drain with publishing on published, against the history it wrote.
    pub published: Vec<Published>,
}

impl PublishingDrain {
    /// Over every drain with publishing on.
    pub fn orders_with_steps_skipped(&self) -> u64 {
        (self.published.iter())
            .map(|published| published.orders_with_steps_skipped)
            .sum()
    }
}

/// What a drain published, against the history rows it wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub events: u64,
    pub history_rows: u64,
    /// Orders whose published steps skip statuses their history holds: with several replicas
    /// an order's event can be applied after a later one of it (another replica applied that
    /// first), and the recompute publishes one step from where the order stood, not one per
    /// history row it rewrites. Always 0 with one replica (the backlog has no late events).
    pub orders_with_steps_skipped: u64,
}

/// Drains the fulfillment backlog off, on, off, on… ([`DRAINS`] each, so both sides share
/// whatever the machine does meanwhile), each from the same state with `replicas` worker
/// processes; checks every end state and, for the drains with publishing on, what they
/// published.
pub async fn phase(
    workload: &mut Workload,
    order_worker: &Path,
    replicas: usize,
    batch_size: u32,
) -> anyhow::Result<PublishingDrain> {
    let off = [("ORDER_EVENTS".to_owned(), "off".to_owned())];
    let (mut off_rates, mut on_rates) = (Vec::new(), Vec::new());
    let mut published = Vec::new();
    for _ in 0..DRAINS {
        for publishing in [false, true] {
            workload.reset(Backlog::Fulfillment).await?;
            workload.publish_backlog().await?;
            let settings: &[(String, String)] = if publishing { &[] } else { &off };
            let drained = drain(workload, order_worker, replicas, batch_size, settings).await?;
            let side = if publishing { "on" } else { "off" };
            workload
                .verify(&format!("drain, publishing {side}"), true)
                .await?;
            if publishing {
                published.push(verify(workload, "drain, publishing on", replicas).await?);
                on_rates.push(drained.events_per_second);
            } else {
                let published = read_all(workload).await?.len();
                let written = workload.outbox_rows().await?;
                if published > 0 || written > 0 {
                    bail!(
                        "drain, publishing off: {published} status change(s) published, \
                         {written} outbox row(s) written"
                    );
                }
                off_rates.push(drained.events_per_second);
            }
        }
    }
    let (off_median, on_median) = (median(&off_rates), median(&on_rates));
    Ok(PublishingDrain {
        replicas,
        off_events_per_second: off_rates,
        on_events_per_second: on_rates,
        off_median_events_per_second: off_median,
        on_median_events_per_second: on_median,
        on_percent_of_off: on_median / off_median * 100.0,
        target_percent_of_off: TARGET_PERCENT_OF_OFF,
        published,
    })
}

/// One published `orders.order.status_changed` event, as a Dapr subscriber reads it (the
/// entry's `data` a CloudEvent, its `data` the order service's event).
#[derive(Debug, Clone)]
pub struct Step {
    /// The CloudEvent id (the outbox row's event id).
    pub id: String,
    pub order_id: String,
    pub old_status: String,
    pub new_status: String,
}

impl Step {
    /// The event in `entry`'s `data`.
    pub fn read(entry: &redis::streams::StreamId) -> anyhow::Result<Self> {
        let data: String = entry
            .get("data")
            .with_context(|| format!("entry {} has no data field", entry.id))?;
        let cloud_event: Value = serde_json::from_str(&data)
            .with_context(|| format!("entry {}: data is not a CloudEvent", entry.id))?;
        let event = &cloud_event["data"];
        let field = |value: &Value, name: &str| {
            value[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("entry {}: no {name} in {data}", entry.id))
        };
        let event_type = field(event, "event_type")?;
        if event_type != EVENT_TYPE {
            bail!("entry {}: event_type {event_type}", entry.id);
        }
        Ok(Self {
            id: field(&cloud_event, "id")?,
            order_id: field(event, "order_id")?,
            old_status: field(event, "old_status")?,
            new_status: field(event, "new_status")?,
        })
    }
}

/// Every event on the workload's order events stream, oldest first.
pub async fn read_all(workload: &mut Workload) -> anyhow::Result<Vec<Step>> {
    let key = workload.order_events().order_events_topic;
    let mut steps = Vec::new();
    let mut from = "-".to_owned();
    loop {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(READ_CHUNK)
            .query_async(&mut workload.redis)
            .await?;
        for entry in &reply.ids {
            steps.push(Step::read(entry)?);
        }
        match reply.ids.last() {
            Some(last) if reply.ids.len() == READ_CHUNK => from = format!("({}", last.id),
            _ => return Ok(steps),
        }
    }
}

/// Checks what a drain with publishing on, by `replicas` worker processes, published: no event
/// id twice, and each order's events a chain from the status the backlog starts it at (each
/// `old_status` the previous `new_status`) to `delivered`, where every backlog ends its orders.
/// With one replica, exactly one event per history row the drain wrote, each order's the same
/// steps as its history (the bench workload has no late events, whose recompute publishes one
/// step for the history it rewrites); with several, each order's published statuses are its
/// history's with none added, in the same order (see [`Published::orders_with_steps_skipped`]).
pub async fn verify(
    workload: &mut Workload,
    phase: &str,
    replicas: usize,
) -> anyhow::Result<Published> {
    let steps = read_all(workload).await?;
    let initial = workload.backlog.initial_status();
    check_chains(&steps, initial, "delivered")
        .with_context(|| format!("{phase}: the published events"))?;
    let history = history(workload).await?;
    let mut published: HashMap<&str, Vec<&str>> = HashMap::new();
    for step in &steps {
        published
            .entry(&step.order_id)
            .or_insert_with(|| vec![initial])
            .push(&step.new_status);
    }
    let mut skipped = 0;
    for (order, statuses) in &published {
        let written = history.get(*order).map_or(&[][..], Vec::as_slice);
        if statuses.as_slice() == written {
            continue;
        }
        if replicas == 1 || !is_subsequence(statuses, written) {
            bail!(
                "{phase}: {order} published {} where its history holds {}",
                statuses.join(" → "),
                written.join(" → ")
            );
        }
        skipped += 1;
    }
    let history_rows: usize = history.values().map(|statuses| statuses.len() - 1).sum();
    if let Some(order) = history
        .keys()
        .find(|order| !published.contains_key(order.as_str()))
    {
        bail!("{phase}: nothing published for {order}, whose status changed");
    }
    Ok(Published {
        events: steps.len() as u64,
        history_rows: history_rows as u64,
        orders_with_steps_skipped: skipped,
    })
}

/// Each of the workload's orders' statuses in its history, in order: where it started, then
/// each row's `to_status`.
async fn history(workload: &Workload) -> anyhow::Result<HashMap<String, Vec<String>>> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use order_worker::schema::order_status_history as history;
    let rows: Vec<(String, String, String)> = history::table
        .filter(history::order_id.eq_any(&workload.orders))
        .order((history::order_id, history::id))
        .select((history::order_id, history::from_status, history::to_status))
        .load(&mut workload.db().await?)
        .await?;
    let mut statuses: HashMap<String, Vec<String>> = HashMap::new();
    for (order, from, to) in rows {
        statuses.entry(order).or_insert_with(|| vec![from]).push(to);
    }
    Ok(statuses)
}

/// Whether `part` is `whole` with some of its middle elements left out (the same first and
/// last, the rest in the same order).
fn is_subsequence(part: &[&str], whole: &[String]) -> bool {
    if part.first().copied() != whole.first().map(String::as_str)
        || part.last().copied() != whole.last().map(String::as_str)
    {
        return false;
    }
    let mut rest = whole.iter();
    part.iter()
        .all(|status| rest.any(|written| written == status))
}

/// Each order's steps, in stream order, chain from `initial` to `last`; no event id twice.
pub fn check_chains(steps: &[Step], initial: &str, last: &str) -> anyhow::Result<()> {
    let mut ids = HashSet::new();
    let mut at: HashMap<&str, &str> = HashMap::new();
    for step in steps {
        if !ids.insert(step.id.as_str()) {
            bail!("event {} published twice", step.id);
        }
        let from = at.entry(&step.order_id).or_insert(initial);
        if *from != step.old_status {
            bail!(
                "{}: {} → {} published after its change to {from}",
                step.order_id,
                step.old_status,
                step.new_status
            );
        }
        *from = &step.new_status;
    }
    if let Some((order, status)) = at.iter().find(|(_, status)| **status != last) {
        bail!("{order}: its last published change is to {status}, not {last}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, order: &str, old: &str, new: &str) -> Step {
        Step {
            id: id.to_owned(),
            order_id: order.to_owned(),
            old_status: old.to_owned(),
            new_status: new.to_owned(),
        }
    }

    #[test]
    fn chains_are_checked_per_order() {
        let steps = [
            step("1", "a", "confirmed", "processing"),
            step("2", "b", "confirmed", "processing"),
            step("3", "a", "processing", "delivered"),
            step("4", "b", "processing", "delivered"),
        ];
        check_chains(&steps, "confirmed", "delivered").expect("chained");
        let twice = [steps[0].clone(), steps[0].clone()];
        assert!(check_chains(&twice, "confirmed", "processing").is_err());
        let gap = [steps[0].clone(), step("5", "a", "shipped", "delivered")];
        assert!(check_chains(&gap, "confirmed", "delivered").is_err());
        assert!(check_chains(&steps[..2], "confirmed", "delivered").is_err());
        assert!(check_chains(&steps, "pending", "delivered").is_err());
    }

    #[test]
    fn published_statuses_may_skip_some_of_the_history_never_add() {
        let history: Vec<String> = ["confirmed", "processing", "shipped", "delivered"]
            .map(str::to_owned)
            .to_vec();
        let check = |part: &[&str]| is_subsequence(part, &history);
        assert!(check(&["confirmed", "processing", "shipped", "delivered"]));
        assert!(check(&["confirmed", "processing", "delivered"]));
        assert!(check(&["confirmed", "delivered"]));
        assert!(!check(&["confirmed", "processing"]));
        assert!(!check(&["confirmed", "shipped", "processing", "delivered"]));
        assert!(!check(&["confirmed", "cancelled", "delivered"]));
        assert!(!check(&["pending", "processing", "shipped", "delivered"]));
    }
}
