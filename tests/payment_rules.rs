//! The payment topics' rules end to end, as Dapr writes them: the whole payment table (both
//! verdicts × every order status, every Dapr format), a declined card then an accepted one, and
//! money taken for a cancelled order.

mod support;

use order_worker::OrderStatus;
use order_worker_dev::publisher::Format;
use support::payments::*;
use support::TestEnv;

// ---------------------------------------------------------------------------------------------
// 1. The payment table: both verdicts × every order status, every Dapr format.

/// What a verdict does to an order at `status`: (outcome, the order's status after, the
/// history reason if it moved).
fn expected(
    topic: &str,
    status: OrderStatus,
) -> (&'static str, &'static str, Option<&'static str>) {
    use OrderStatus::*;
    match (topic, status) {
        (CONFIRMED, Pending) => ("applied", "confirmed", Some("PaymentConfirmed")),
        // Failed before, no other payment recorded: the retry confirms it.
        (CONFIRMED, Failed) => ("applied", "confirmed", Some("PaymentConfirmed")),
        (CONFIRMED, Confirmed | Processing | PartiallyShipped | Shipped | Delivered) => {
            ("ignored", status.as_str(), None)
        }
        (CONFIRMED, Cancelled | Refunded) => ("conflict", status.as_str(), None),
        (FAILED, Pending) => ("applied", "failed", Some("PaymentFailed")),
        (FAILED, Failed | Cancelled | Refunded) => ("ignored", status.as_str(), None),
        (FAILED, Confirmed | Processing | PartiallyShipped | Shipped | Delivered) => {
            ("stale", status.as_str(), None)
        }
        _ => unreachable!("{topic} × {status}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_the_payment_table_for_both_verdicts_and_every_order_status() {
    let env = TestEnv::new().await;
    assert_eq!(OrderStatus::ALL.len(), 9);
    let mut rows = Vec::new();
    for topic in [CONFIRMED, FAILED] {
        for status in OrderStatus::ALL {
            let verdict = topic.strip_prefix("payment.").expect("payment topic");
            let order = format!("o-{verdict}-{status}");
            env.seed_orders(&[&order], status.as_str()).await;
            rows.push((topic, status, order));
        }
    }
    let mut published = Vec::new();
    for (i, (topic, _, order)) in rows.iter().enumerate() {
        // Every format occurs on both topics: 18 rows cycle through the 5 formats.
        let format = Format::ALL[i % Format::ALL.len()];
        let amount = (*topic == CONFIRMED).then_some("42.10");
        let reason = (*topic == FAILED).then_some("insufficient_funds");
        let payment = format!("p-{order}");
        let entry = publish_payment(&env, topic, order, &payment, amount, reason, format).await;
        published.push((format, entry));
    }

    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    let progress = worker.wait_consumed(rows.len() as u64).await;
    worker.stop().await;

    let mut failures = Vec::new();
    for ((topic, status, order), (format, entry)) in rows.iter().zip(&published) {
        let (outcome, after, reason) = expected(topic, *status);
        let history: Vec<_> = reason
            .map(|reason| history_row(status.as_str(), after, reason))
            .into_iter()
            .collect();
        let want = (outcome.to_owned(), after.to_owned(), history);
        let actual = (
            inbox_outcome(&env, order, entry, *format).await,
            env.order_status(order).await,
            env.history(order).await,
        );
        if actual != want {
            failures.push(format!(
                "{topic} for an order {status} ({format:?}): expected {want:?}, got {actual:?}"
            ));
        }
        // A verdict that moved the order, or money taken for a closed one, records the payment.
        if outcome == "applied" || outcome == "conflict" {
            let verdict = topic.strip_prefix("payment.").expect("payment topic");
            let amount = (*topic == CONFIRMED).then_some("42.10");
            let reason = (*topic == FAILED).then_some("insufficient_funds");
            let row = payment(&env, &format!("p-{order}")).await;
            let want = payment_row(order, verdict, amount, reason);
            if row.as_ref() != Some(&want) {
                failures.push(format!(
                    "{topic} for an order {status}: payment row {row:?}, expected {want:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // confirmed: applied 2 (pending, failed), ignored 5, conflict 2; failed: applied 1
    // (pending), stale 5, ignored 3 (failed, cancelled, refunded).
    let counts = (
        progress.applied,
        progress.ignored,
        progress.stale,
        progress.conflict,
        progress.duplicate,
        progress.dead_lettered,
        progress.transitions,
    );
    assert_eq!(counts, (3, 8, 5, 2, 0, 0, 3), "{progress:?}");
    assert!(nothing_pending(&env).await);
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 2. A declined card, then an accepted one.

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_then_an_accepted_one_confirms_the_order_and_keeps_both_payments() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1", "o2"], "pending").await;
    // o1: both verdicts wait in their streams, so they apply in one batch, in the order
    // they were published (a millisecond apart: ids of two streams tie within one).
    let declined = publish_payment(
        &env,
        FAILED,
        "o1",
        "p1",
        None,
        Some("card_declined"),
        Format::CloudEvent,
    )
    .await;
    clock_passes(&env, &declined.0).await;
    publish_payment(
        &env,
        CONFIRMED,
        "o1",
        "p2",
        Some("129.90"),
        None,
        Format::CloudEvent,
    )
    .await;

    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    worker.wait_consumed(2).await;
    // o2: one batch each, so the accepted payment finds the declined one in the table.
    publish_payment(
        &env,
        FAILED,
        "o2",
        "p3",
        None,
        Some("card_declined"),
        Format::CloudEvent,
    )
    .await;
    worker.wait_consumed(3).await;
    assert_eq!(env.order_status("o2").await, "failed");
    publish_payment(
        &env,
        CONFIRMED,
        "o2",
        "p4",
        Some("129.90"),
        None,
        Format::CloudEvent,
    )
    .await;
    let progress = worker.wait_consumed(4).await;
    worker.stop().await;

    assert_eq!(
        (progress.applied, progress.transitions),
        (4, 4),
        "{progress:?}"
    );
    for (order, declined, accepted) in [("o1", "p1", "p2"), ("o2", "p3", "p4")] {
        assert_eq!(env.order_status(order).await, "confirmed", "{order}");
        assert_eq!(
            env.history(order).await,
            [
                history_row("pending", "failed", "PaymentFailed"),
                history_row("failed", "confirmed", "PaymentConfirmed"),
            ],
            "{order}"
        );
        assert_eq!(
            payment(&env, declined).await,
            Some(payment_row(order, "failed", None, Some("card_declined"))),
            "{order}'s declined payment"
        );
        assert_eq!(
            payment(&env, accepted).await,
            Some(payment_row(order, "confirmed", Some("129.90"), None)),
            "{order}'s accepted payment: the exact amount"
        );
    }
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Money taken for a cancelled order.

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_confirmed_for_a_cancelled_order_is_a_conflict_that_moves_nothing() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "cancelled").await;
    let published = publish_payment(
        &env,
        CONFIRMED,
        "o1",
        "p1",
        Some("19.99"),
        None,
        Format::CloudEvent,
    )
    .await;
    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    let progress = worker.wait_consumed(1).await;
    worker.stop().await;

    assert_eq!(
        (
            progress.conflict,
            progress.applied,
            progress.ignored,
            progress.transitions
        ),
        (1, 0, 0, 0),
        "{progress:?}"
    );
    assert_eq!(env.order_status("o1").await, "cancelled");
    assert!(env.history("o1").await.is_empty(), "no history row");
    assert_eq!(
        payment(&env, "p1").await,
        Some(payment_row("o1", "confirmed", Some("19.99"), None)),
        "the money taken is on record, for whoever refunds it"
    );
    assert_eq!(
        env.inbox_outcome(&published.1).await.as_deref(),
        Some("conflict")
    );
    assert!(nothing_pending(&env).await, "acked");
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Everything the publishers' structs carry ends in the database, in every Dapr format.

/// The payment service's Go structs (float amounts, `failure_reason`, `order_number`, `status`,
/// `metadata`) and a fulfillment's `metadata`: a declined card, the accepted retry, then the
/// first fulfillment step, per format.
#[tokio::test(flavor = "multi_thread")]
async fn failure_reason_and_every_field_of_the_publishers_structs_end_in_the_database() {
    let env = TestEnv::new().await;
    let warehouse = serde_json::json!({"warehouse_id": "wh-hcm-01", "carrier": "GHN"});
    for format in Format::ALL {
        let order = format!("o-{format:?}");
        env.seed_orders(&[&order], "pending").await;
        let (declined, accepted) = (format!("{order}-declined"), format!("{order}-accepted"));
        let failed = payment_service_event(FAILED, &order, &declined, "1499000", "card_declined");
        let published = publish_event(&env, FAILED, &failed, format).await;
        // The retry after the decline, as in life (ids of two streams tie within a millisecond).
        clock_passes(&env, &published.0).await;
        let confirmed = payment_service_event(CONFIRMED, &order, &accepted, "129.9", "completed");
        let published = publish_event(&env, CONFIRMED, &confirmed, format).await;
        clock_passes(&env, &published.0).await;
        let mut planning = order_worker_dev::publisher::event(
            &order,
            &format!("{order}-f"),
            None,
            order_worker::FulfillmentStatus::Planning,
            &now(),
        );
        planning["metadata"] = warehouse.clone();
        publish_event(&env, FULFILLMENT, &planning, format).await;
    }

    let mut worker = env.spawn_worker_with(all_topics(env.config("w1"))).await;
    let progress = worker.wait_consumed(3 * Format::ALL.len() as u64).await;
    worker.stop().await;
    assert_eq!(progress.dead_lettered, 0, "{progress:?}");

    let mut failures = Vec::new();
    for format in Format::ALL {
        let order = format!("o-{format:?}");
        let row = |status: &str, amount: &str| PaymentRow {
            amount: Some(amount.to_owned()),
            currency: Some("VND".to_owned()),
            order_number: Some(format!("ORD-{order}")),
            ..payment_row(&order, status, None, None)
        };
        let want = [
            (
                "declined",
                PaymentRow {
                    reason: Some("card_declined".to_owned()),
                    ..row("failed", "1499000")
                },
            ),
            (
                "accepted",
                PaymentRow {
                    reported_status: Some("completed".to_owned()),
                    ..row("confirmed", "129.9")
                },
            ),
        ];
        for (payment_id, want) in want {
            let got = payment(&env, &format!("{order}-{payment_id}")).await;
            if got.as_ref() != Some(&want) {
                failures.push(format!(
                    "{format:?}, {payment_id}: {got:?}, expected {want:?}"
                ));
            }
        }
        let metadata = env.history_metadata(&order).await;
        let paid_by = |payment: &str| {
            let payment = format!("{order}-{payment}");
            Some(serde_json::json!({"gateway": "vnpay", "payment": payment}))
        };
        let want = [
            paid_by("declined"),
            paid_by("accepted"),
            Some(warehouse.clone()),
        ];
        if metadata != want {
            failures.push(format!("{format:?}: history metadata {metadata:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    env.cleanup().await;
}
