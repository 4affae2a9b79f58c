//! Late events without a database: the tables held in memory and written as `write` writes
//! them, so that whatever order, batching, redelivery and re-publishing the events come in, the
//! result is that of applying them one by one in stream order.

use std::collections::BTreeMap;
use std::fmt;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::store::plan::InboxRow;
use crate::topics::names::{CONFIRMED, FAILED, FULFILLMENT};
use crate::topics::{self, FulfillmentStatus, Payment};

/// The tables, in memory.
#[derive(Debug, Default, Clone, PartialEq)]
struct Db {
    orders: BTreeMap<String, (OrderStatus, Option<FulfillmentStatus>)>,
    fulfillments: BTreeMap<String, (String, FulfillmentStatus)>,
    payments: BTreeMap<String, Payment>,
    /// In id order.
    history: Vec<Transition>,
    inbox: BTreeMap<String, InboxRow>,
    /// The outbox, in id order.
    published: Vec<StatusChange>,
}

impl Db {
    fn with_orders(orders: &[(&str, OrderStatus)]) -> Self {
        let orders = orders.iter().map(|(id, s)| (id.to_string(), (*s, None)));
        Self {
            orders: orders.collect(),
            ..Self::default()
        }
    }

    /// What `load::load` reads.
    fn load(&self, batch: &[Incoming<'_>]) -> (State, Inbox) {
        let order_ids: BTreeSet<&str> = batch.iter().map(|i| i.event.change.order_id()).collect();
        let mut state = State::default();
        for id in &order_ids {
            if let Some((status, _)) = self.orders.get(*id) {
                state.orders.insert(id.to_string(), *status);
            }
        }
        // Every row of the batch's orders (entity ids are never shared between orders here).
        for (id, row) in &self.fulfillments {
            if order_ids.contains(row.0.as_str()) {
                state.rows.fulfillments.load(id.clone(), row.clone());
            }
        }
        for (id, payment) in &self.payments {
            if order_ids.contains(payment.order_id.as_str()) {
                state.rows.payments.load(id.clone(), payment.clone());
            }
        }
        let mut inbox = Inbox::default();
        for incoming in batch {
            if let Some(row) = self.inbox.get(&incoming.event.event_id) {
                state.processed.insert(&row.order_id, &row.event_id);
                let recorded = (row.order_id.clone(), row.position);
                inbox.recorded.insert(row.event_id.clone(), Some(recorded));
            }
        }
        for row in self.inbox.values() {
            if order_ids.contains(row.order_id.as_str()) {
                let newest = inbox
                    .newest
                    .entry(row.order_id.clone())
                    .or_insert(row.position);
                *newest = (*newest).max(row.position);
            }
        }
        (state, inbox)
    }

    /// What `load::load_records` reads.
    fn records(&self, late: &BTreeSet<String>, state: &State) -> Vec<OrderRecord> {
        late.iter()
            .map(|order_id| {
                let mut rows: Vec<&InboxRow> = self
                    .inbox
                    .values()
                    .filter(|row| row.order_id == *order_id)
                    .collect();
                rows.sort_by_key(|row| row.position);
                let events = rows
                    .into_iter()
                    .map(|row| Recorded {
                        entry_id: row.entry_id.clone(),
                        position: row.position,
                        event: recorded_event(row),
                    })
                    .collect();
                OrderRecord {
                    order_id: order_id.clone(),
                    status: state.orders[order_id],
                    events,
                    history: self
                        .history
                        .iter()
                        .filter(|t| t.order_id == *order_id)
                        .cloned()
                        .collect(),
                }
            })
            .collect()
    }

    /// What `write::write` writes.
    fn write(&mut self, plan: &Plan) {
        for row in &plan.processed {
            let previous = self.inbox.insert(row.event_id.clone(), row.clone());
            assert!(previous.is_none(), "inserted twice: {row:?}");
        }
        for row in &plan.rerecorded {
            self.inbox.insert(row.event_id.clone(), row.clone());
        }
        for (id, row) in plan.rows.fulfillments.changed() {
            self.fulfillments.insert(id.to_owned(), row.clone());
        }
        for (id, payment) in plan.rows.payments.changed() {
            self.payments.insert(id.to_owned(), payment.clone());
        }
        for update in &plan.orders {
            let order = self.orders.get_mut(&update.order_id).expect("exists");
            order.0 = update.status;
            order.1 = update.fulfillment_status.or(order.1);
        }
        self.history.retain(|t| !plan.history_dropped.contains(t));
        let unique = |t: &Transition| self.history.iter().all(|h| h.event_id != t.event_id);
        assert!(
            plan.transitions.iter().all(unique),
            "history event_id unique"
        );
        self.history.extend(plan.transitions.iter().cloned());
        self.published.extend(plan.changes.iter().cloned());
    }

    /// Whether each order's published steps chain from the status it started in to the one it
    /// has (each step's `from` the previous one's `to`, no step that goes nowhere), as a
    /// subscriber that saw only them would have to believe.
    fn published_chains(&self, started: &Db) -> Result<(), String> {
        for (order_id, (now, _)) in &self.orders {
            let mut at = started.orders[order_id].0;
            for step in self.published.iter().filter(|c| &c.order_id == order_id) {
                if step.from != at || step.to == step.from {
                    return Err(format!(
                        "{order_id}: {step:?} after {at:?}: {:#?}",
                        self.published
                    ));
                }
                at = step.to;
            }
            if at != *now {
                return Err(format!(
                    "{order_id}: published up to {at:?}, is {now:?}: {:#?}",
                    self.published
                ));
            }
        }
        Ok(())
    }

    /// One transaction, as `apply::apply_batch` runs it, over entries as a read sorts them.
    fn apply(&mut self, entries: &[&Entry]) -> Vec<Outcome> {
        let mut batch: Vec<Incoming<'_>> = entries
            .iter()
            .map(|(entry_id, event)| Incoming { entry_id, event })
            .collect();
        batch.sort_by_key(Incoming::position);
        let (state, inbox) = self.load(&batch);
        let late = late_orders(&batch, &inbox);
        let records = self.records(&late, &state);
        let plan = plan_batch(&batch, state, &records);
        self.write(&plan);
        plan.outcomes
    }

    /// The tables as compared: history per order in id order (ids and timestamps aside).
    fn tables(&self) -> impl PartialEq + fmt::Debug + '_ {
        let mut history: BTreeMap<&str, Vec<&Transition>> = BTreeMap::new();
        for t in &self.history {
            history.entry(&t.order_id).or_default().push(t);
        }
        (&self.orders, &self.fulfillments, &self.payments, history)
    }
}

fn recorded_event(row: &InboxRow) -> Event {
    let Ok(Value::Object(said)) = serde_json::from_str(&row.said) else {
        panic!("said is an object: {}", row.said);
    };
    let topic = topics::by_name(row.topic).expect("served");
    topics::recorded(topic, row.event_id.clone(), &row.order_id, said).expect("decodes again")
}

/// An event of `topic` saying `said`, published as entry `entry_id`.
fn event(id: &str, topic: &str, order: &str, said: Value) -> Event {
    let Value::Object(said) = said else {
        unreachable!("an object")
    };
    let topic = topics::by_name(topic).expect("served");
    topics::recorded(topic, id.to_owned(), order, said).expect("valid")
}

fn fulfillment(id: &str, order: &str, fulfillment: &str, status: FulfillmentStatus) -> Event {
    let said = json!({"fulfillment_id": fulfillment, "new_status": status.as_str()});
    event(id, FULFILLMENT, order, said)
}

/// (entry id, event): what the streams hold, to be delivered.
type Entry = (String, Event);

fn entries<const N: usize>(published: [(&str, Event); N]) -> Vec<Entry> {
    let entry = |(id, event): (&str, Event)| (id.to_owned(), event);
    published.into_iter().map(entry).collect()
}

#[test]
fn a_cancelled_fulfillment_applied_after_the_shipped_one_it_preceded_ends_the_order_cancelled() {
    use FulfillmentStatus::*;
    let entries = entries([
        ("1-0", fulfillment("e1", "o1", "f1", Picking)),
        ("2-0", fulfillment("e2", "o1", "f1", Cancelled)),
        ("3-0", fulfillment("e3", "o1", "f1", Shipped)),
    ]);
    let mut in_order = Db::with_orders(&[("o1", OrderStatus::Confirmed)]);
    for entry in &entries {
        in_order.apply(&[entry]);
    }
    assert_eq!(in_order.orders["o1"].0, OrderStatus::Cancelled);

    // Another consumer held `cancelled` and died: `shipped` applies first.
    let mut db = Db::with_orders(&[("o1", OrderStatus::Confirmed)]);
    db.apply(&[&entries[0], &entries[2]]);
    assert_eq!(db.orders["o1"].0, OrderStatus::Shipped);
    let outcomes = db.apply(&[&entries[1]]);
    assert_eq!(outcomes, [Outcome::Applied]);
    assert_eq!(db.orders["o1"].0, OrderStatus::Cancelled);
    assert!(
        db.tables() == in_order.tables(),
        "{:#?}\n{:#?}",
        db.tables(),
        in_order.tables()
    );
    assert_eq!(
        db.inbox["e3"].outcome, "stale",
        "the recompute rewrites the outcomes"
    );
    // Subscribers saw it shipped: the recompute publishes the one step from there, caused by
    // the late entry, and nothing for the history it rewrote.
    let steps: Vec<_> = db
        .published
        .iter()
        .map(|c| (c.from, c.to, c.reason.as_str(), c.entry_id.as_str()))
        .collect();
    use OrderStatus::{
        Cancelled as OrderCancelled, Confirmed, Processing, Shipped as OrderShipped,
    };
    assert_eq!(
        steps,
        [
            (Confirmed, Processing, "FulfillmentPicking", "1-0"),
            (Processing, OrderShipped, "FulfillmentShipped", "3-0"),
            (OrderShipped, OrderCancelled, "FulfillmentCancelled", "2-0"),
        ]
    );
}

#[test]
fn an_earlier_copy_of_a_recorded_event_takes_its_place() {
    use FulfillmentStatus::*;
    let first = ("1-0".to_owned(), fulfillment("e1", "o1", "f1", Picking));
    let copy = ("2-0".to_owned(), fulfillment("e1", "o1", "f1", Picking));
    let mut db = Db::with_orders(&[("o1", OrderStatus::Confirmed)]);
    assert_eq!(db.apply(&[&copy]), [Outcome::Applied]);
    assert_eq!(db.history[0].stream_entry_id, "2-0");
    assert_eq!(db.apply(&[&first]), [Outcome::Applied]);
    assert_eq!(db.history.len(), 1);
    assert_eq!(
        db.history[0].stream_entry_id, "1-0",
        "as in-order processing wrote it"
    );
    assert_eq!(db.apply(&[&copy]), [Outcome::Duplicate]);
}

#[test]
fn an_order_changed_outside_the_worker_keeps_that_change_and_takes_the_late_event_as_it_is() {
    use FulfillmentStatus::*;
    let entries = entries([
        ("1-0", fulfillment("e1", "o1", "f1", Picking)),
        ("3-0", fulfillment("e3", "o1", "f1", Shipped)),
        ("2-0", fulfillment("e2", "o1", "f1", Packed)),
    ]);
    let mut db = Db::with_orders(&[("o1", OrderStatus::Confirmed)]);
    db.apply(&[&entries[0]]);
    assert_eq!(db.orders["o1"].0, OrderStatus::Processing);
    // A customer service agent cancels it through the order service.
    db.orders.get_mut("o1").expect("seeded").0 = OrderStatus::Cancelled;
    db.apply(&[&entries[1]]);
    let (state, inbox) = db.load(&[Incoming {
        entry_id: "2-0",
        event: &entries[2].1,
    }]);
    let late = late_orders(
        &[Incoming {
            entry_id: "2-0",
            event: &entries[2].1,
        }],
        &inbox,
    );
    let records = db.records(&late, &state);
    assert!(records[0].untouched_since().is_none());
    assert_eq!(db.apply(&[&entries[2]]), [Outcome::Stale]);
    assert_eq!(
        db.orders["o1"].0,
        OrderStatus::Cancelled,
        "the order service's change stands"
    );
}

/// One published event: a fulfillment or payment event of one of two orders, or a re-published
/// copy of an earlier one (same id, same content).
#[derive(Debug, Clone)]
enum Spec {
    Fulfillment {
        order: usize,
        row: usize,
        status: usize,
    },
    Payment {
        order: usize,
        row: usize,
        confirmed: bool,
        amount: Option<u8>,
    },
    Copy(prop::sample::Index),
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => (0..2usize, 0..2usize, 0..FulfillmentStatus::ALL.len())
            .prop_map(|(order, row, status)| Spec::Fulfillment { order, row, status }),
        2 => (0..2usize, 0..2usize, any::<bool>(), proptest::option::of(any::<u8>()))
            .prop_map(|(order, row, confirmed, amount)| Spec::Payment { order, row, confirmed, amount }),
        1 => any::<prop::sample::Index>().prop_map(Spec::Copy),
    ]
}

const ORDERS: [(&str, OrderStatus); 2] =
    [("o1", OrderStatus::Confirmed), ("o2", OrderStatus::Pending)];

/// The entries the specs publish: two per millisecond, across the three topics' streams.
fn published(specs: &[Spec]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let entry_id = format!("{}-{i}", i / 2 + 1);
        let id = format!("e{i}");
        let event = match spec {
            // Each event's own metadata, so a history row given another event's would show.
            Spec::Fulfillment { order, row, status } => {
                let (order, _) = ORDERS[*order];
                let said = json!({"fulfillment_id": format!("f-{order}-{row}"),
                                  "new_status": FulfillmentStatus::ALL[*status].as_str(),
                                  "metadata": {"warehouse_id": format!("wh-{i}")}});
                event(&id, FULFILLMENT, order, said)
            }
            Spec::Payment {
                order,
                row,
                confirmed,
                amount,
            } => {
                let (order, _) = ORDERS[*order];
                let topic = if *confirmed { CONFIRMED } else { FAILED };
                let mut said = json!({"payment_id": format!("p-{order}-{row}"),
                                      "metadata": {"attempt": i}});
                if let Some(amount) = amount {
                    said["amount"] = json!(format!("{amount}.50"));
                    said["order_number"] = json!(format!("ORD-{order}"));
                }
                if *confirmed {
                    said["status"] = json!(format!("completed-{i}"));
                } else {
                    said["failure_reason"] = json!(format!("declined-{i}"));
                }
                event(&id, topic, order, said)
            }
            Spec::Copy(index) if i > 0 => {
                let (_, original) = &entries[index.index(i)];
                recorded_event(&InboxRow::new(
                    &Incoming {
                        entry_id: "0-0",
                        event: original,
                    },
                    &Outcome::Applied,
                ))
            }
            Spec::Copy(_) => fulfillment(&id, "o1", "f-o1-0", FulfillmentStatus::Picking),
        };
        entries.push((entry_id, event));
    }
    entries
}

/// Specs, the order they are first delivered in, entries delivered again, and batch sizes.
fn scenario() -> impl Strategy<Value = (Vec<Spec>, Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(spec(), 1..16).prop_flat_map(|specs| {
        let n = specs.len();
        let delivery = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        let again = prop::collection::vec(0..n, 0..4);
        let sizes = prop::collection::vec(1..5usize, n + 4);
        (Just(specs), delivery, again, sizes)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Whatever order, batching and redelivery the entries come in, the tables end as applying
    /// them one by one in stream order leaves them.
    #[test]
    fn any_delivery_ends_as_the_in_order_fold((specs, delivery, again, sizes) in scenario()) {
        let entries = published(&specs);
        let mut in_order = Db::with_orders(&ORDERS);
        let mut by_position: Vec<&Entry> = entries.iter().collect();
        by_position.sort_by_key(|(id, e)| Incoming { entry_id: id, event: e }.position());
        for entry in by_position {
            in_order.apply(&[entry]);
        }

        let mut db = Db::with_orders(&ORDERS);
        let mut queue = delivery.into_iter().chain(again);
        for size in sizes {
            // One read never returns an entry twice.
            let mut batch: Vec<usize> = queue.by_ref().take(size).collect();
            batch.sort_unstable();
            batch.dedup();
            let batch: Vec<&Entry> = batch.into_iter().map(|i| &entries[i]).collect();
            db.apply(&batch);
        }
        for rest in queue {
            db.apply(&[&entries[rest]]);
        }
        prop_assert!(db.tables() == in_order.tables(), "{:#?}\nin order:\n{:#?}", db.tables(), in_order.tables());
        let started = Db::with_orders(&ORDERS);
        prop_assert!(db.published_chains(&started).is_ok(), "{}", db.published_chains(&started).unwrap_err());
        prop_assert!(in_order.published_chains(&started).is_ok(), "{}", in_order.published_chains(&started).unwrap_err());
    }
}
