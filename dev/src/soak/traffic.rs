//! What a soak run publishes: an endless, deterministic mix of orders on all three topics, as
//! the payment and fulfillment services would write them through Dapr, with 0.1 % poison.
//!
//! Orders start one after the other and run interleaved (a window of [`ACTIVE`] at a time), so
//! an order's events are spread out like real ones; most are paid and fulfilled, some retry a
//! declined card, some fail to pay, some are cancelled in the warehouse.

use anyhow::Context;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::publisher::{self, Format};
use order_worker::FulfillmentStatus::{self, *};

/// One publication in [`POISON_EVERY`] is an entry no worker can decode.
pub const POISON_EVERY: u64 = 1_000;

/// Orders in progress at once.
const ACTIVE: usize = 50;

pub const FULFILLMENT: &str = "fulfillment.status_changed";
pub const CONFIRMED: &str = "payment.confirmed";
pub const FAILED: &str = "payment.failed";
pub const TOPICS: [&str; 3] = [FULFILLMENT, CONFIRMED, FAILED];

/// The id of the `n`th order; the soak seeds them all `pending` up front.
pub fn order_id(n: u64) -> String {
    format!("soak-{n:08}")
}

/// Inserts the first `orders` orders ([`order_id`]) `pending`, as the order service would have
/// them before their events arrive.
pub async fn seed_orders(conn: &mut AsyncPgConnection, orders: u64) -> anyhow::Result<()> {
    diesel::sql_query(
        "INSERT INTO orders (id, status) \
         SELECT 'soak-' || lpad(n::text, 8, '0'), 'pending' FROM generate_series(0, $1 - 1) n",
    )
    .bind::<BigInt, _>(orders as i64)
    .execute(conn)
    .await
    .with_context(|| format!("seeding {orders} orders"))?;
    Ok(())
}

/// One event of an order's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Paid,
    Declined,
    Refused,
    Fulfillment(FulfillmentStatus),
}

/// Order `n`'s events, in the order its services publish them.
fn life(n: u64) -> Vec<Step> {
    let fulfilled = LIFECYCLE_AFTER_PENDING
        .iter()
        .map(|s| Step::Fulfillment(*s));
    match n % 10 {
        // A declined card, then another accepted.
        7 => [Step::Declined, Step::Paid]
            .into_iter()
            .chain(fulfilled)
            .collect(),
        // The payment fails: nothing is fulfilled.
        8 => vec![Step::Refused],
        // Cancelled in the warehouse while being picked.
        9 => vec![
            Step::Paid,
            Step::Fulfillment(Planning),
            Step::Fulfillment(Picking),
            Step::Fulfillment(Cancelled),
        ],
        _ => std::iter::once(Step::Paid).chain(fulfilled).collect(),
    }
}

const LIFECYCLE_AFTER_PENDING: [FulfillmentStatus; 7] =
    [Planning, Picking, Picked, Packing, Packed, Ready, Shipped];

/// An entry to XADD: the topic and the entry's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: &'static str,
    pub fields: Vec<(String, String)>,
    pub poison: bool,
}

/// The endless mix; `next` gives the next entry to publish.
pub struct Traffic {
    /// (order number, index of its next step), one per slot.
    active: Vec<(u64, usize)>,
    next_order: u64,
    slot: usize,
    published: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            active: (0..ACTIVE as u64).map(|n| (n, 0)).collect(),
            next_order: ACTIVE as u64,
            slot: 0,
            published: 0,
        }
    }
}

impl Traffic {
    /// How many orders the first `events` publications use at most: what to seed.
    pub fn orders_for(events: u64) -> u64 {
        // Every ten orders publish 70 events in all (`life`): beyond the ACTIVE started at
        // once, an order starts only when one ends, so a fifth of the events bounds them.
        events / 5 + ACTIVE as u64 + 10
    }

    /// The next entry; `now` is the events' timestamp (RFC 3339).
    pub fn next(&mut self, now: &str) -> Publication {
        self.published += 1;
        let format = Format::ALL[(self.published % Format::ALL.len() as u64) as usize];
        if self.published.is_multiple_of(POISON_EVERY) {
            let topic = TOPICS[((self.published / POISON_EVERY) % 3) as usize];
            let fields = vec![("data".to_owned(), "{not json".to_owned())];
            return Publication {
                topic,
                fields,
                poison: true,
            };
        }
        let (order, step) = self.advance();
        let id = order_id(order);
        let (topic, event): (&'static str, Value) = match step {
            Step::Paid => (
                CONFIRMED,
                publisher::payment_event(
                    "confirmed",
                    &id,
                    &format!("{id}-p"),
                    Some("49.90"),
                    None,
                    now,
                ),
            ),
            Step::Declined | Step::Refused => (
                FAILED,
                publisher::payment_event(
                    "failed",
                    &id,
                    &format!("{id}-d"),
                    Some("49.90"),
                    Some(if step == Step::Declined {
                        "card_declined"
                    } else {
                        "insufficient_funds"
                    }),
                    now,
                ),
            ),
            Step::Fulfillment(status) => (
                FULFILLMENT,
                publisher::event(&id, &format!("{id}-f"), None, status, now),
            ),
        };
        let event_id = uuid::Uuid::new_v4().to_string();
        Publication {
            topic,
            fields: publisher::entry_fields(topic, &event, &event_id, format),
            poison: false,
        }
    }

    /// The next step of the order in the current slot, starting a new order in a slot whose
    /// order has ended.
    fn advance(&mut self) -> (u64, Step) {
        let slot = self.slot;
        self.slot = (self.slot + 1) % self.active.len();
        let (order, index) = self.active[slot];
        let steps = life(order);
        if index + 1 < steps.len() {
            self.active[slot].1 += 1;
        } else {
            self.active[slot] = (self.next_order, 0);
            self.next_order += 1;
        }
        (order, steps[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_gets_its_whole_life_in_order_and_poison_comes_one_in_a_thousand() {
        let mut traffic = Traffic::default();
        let mut seen: std::collections::HashMap<String, Vec<&str>> = Default::default();
        let mut poison = 0;
        for _ in 0..5_000 {
            let publication = traffic.next("2026-12-04T00:00:00Z");
            if publication.poison {
                poison += 1;
                continue;
            }
            let fields: Vec<(String, Vec<u8>)> = publication
                .fields
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            let topic = order_worker::topic(publication.topic).expect("a topic");
            let event =
                order_worker::decode(topic, &fields, 1 << 20, Default::default()).expect("decodes");
            let order = event
                .change
                .order_id()
                .trim_start_matches("soak-")
                .to_owned();
            seen.entry(order).or_default().push(publication.topic);
        }
        assert_eq!(poison, 5);
        // Order 7 retries its card; order 8's payment fails; order 9 is cancelled; order 0 ships.
        assert_eq!(seen["00000007"][..3], [FAILED, CONFIRMED, FULFILLMENT]);
        assert_eq!(seen["00000007"].len(), 9);
        assert_eq!(seen["00000008"], [FAILED]);
        assert_eq!(
            seen["00000009"],
            [CONFIRMED, FULFILLMENT, FULFILLMENT, FULFILLMENT]
        );
        assert_eq!(seen["00000000"].len(), 8);
        let orders = seen.len() as u64;
        assert!(orders <= Traffic::orders_for(5_000), "{orders} orders");
    }
}
