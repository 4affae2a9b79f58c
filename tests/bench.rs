//! A smoke run of the benchmark (`order-worker-dev bench`), in-process through the dev crate's
//! library, its drains starting this package's `order-worker` binary (logging to files): seconds,
//! asserting that the drain runs at each size beside PostgreSQL alone (figures and ratio
//! printed and in the JSON), that every phase completes (the mixed drain over three streams
//! included) and counts right (the
//! benchmark itself fails if any phase ends in a wrong state; two replicas' drain must be as
//! exact as one's; with status changes published, every change is on the order events stream,
//! each order's chained; the order service's outbox relayed, every row exactly once), and that
//! the worker drains faster than the per-event pattern. The rows of publishing status changes
//! (on against off, COMMIT → published) and of the order service's outbox (COMMIT → XADD, with
//! the trigger and polled) are printed and in the JSON; their figures are not asserted beyond
//! being consistent (a test must not depend on speed).

mod support;

use order_worker_dev::cli::Command;
use support::dev::order_worker_binary;
use support::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn the_benchmark_completes_and_counts_correctly() {
    let env = TestEnv::new().await;
    let database = support::unique("ow_bench");
    let json = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{database}.json"));
    let Command::Bench(config) = env.dev_command(&[
        "bench",
        // Two sizes: every phase at the first, the drain and its ceiling at both.
        "--orders",
        "60,40",
        "--rate",
        "200",
        "--latency-seconds",
        "1",
        // Two replicas in small batches, each holding events of orders the other holds: their
        // drain must end exactly as one's.
        "--replicas",
        "2",
        "--batch-size",
        "10",
        // The drains into grown tables: 3,000 rows of others' history, each ending exact.
        "--grown-rows",
        "3000",
        "--database",
        &database,
        "--stream",
        &env.stream.stream,
        "--json",
        json.to_str().expect("UTF-8 path"),
    ]) else {
        unreachable!("parsed as bench")
    };
    let report = order_worker_dev::bench::run(config, order_worker_binary())
        .await
        .expect("the benchmark completes");
    let table = order_worker_dev::bench::render(&report);
    for row in [
        "drain at 40 orders (360 events), worker defaults (2 replica(s), batch 10)",
        "drain at 60 orders (540 events), worker defaults (2 replica(s), batch 10)",
        "% of PostgreSQL alone (",
        "connections, batches of 10)",
        "mixed, 3 streams (payments + fulfillments), worker defaults",
        "per-event pattern",
        "PostgreSQL ceiling",
        "XADD → COMMIT",
        "COMMIT → status change on the order events stream (62 changes",
        "publishing status changes (ORDER_EVENTS), 2 replica(s) (medians of 3)",
        "% of off; target ≥ 85 %)",
        "peak RSS",
        "ready",
        "order service's outbox (RELAY_TABLE), notify trigger: COMMIT → XADD (200 rows at",
        "order service's outbox (RELAY_TABLE), no trigger (polled): COMMIT → XADD (200 rows at",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("JSON");
    assert_eq!(report["events"], 360);
    assert_eq!(report["drain"]["events"], 360);
    let sizes = report["sizes"].as_array().expect("sizes");
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    for (size, (orders, events)) in sizes.iter().zip([(40, 360), (60, 540)]) {
        assert_eq!(size["orders"], orders, "{size}");
        assert_eq!(size["drain"]["events"], events, "{size}");
        assert_eq!(size["ceiling"]["events"], events, "{size}");
        // Two replicas, each with a transaction for each of its two batches in flight.
        assert_eq!(size["ceiling"]["connections"], 4, "{size}");
        assert_eq!(size["ceiling"]["batch_size"], 10, "{size}");
        for figure in [
            &size["drain"]["events_per_second"],
            &size["ceiling"]["events_per_second"],
            &size["percent_of_ceiling"],
        ] {
            assert!(figure.as_f64().is_some_and(|f| f > 0.0), "{size}");
        }
    }
    // The same lifecycles, a confirmed payment per order and a declined one for every 10th.
    assert_eq!(report["mixed"]["events"], 360 + 40 + 4);
    assert_eq!(report["mixed"]["replicas"], 1);
    assert_eq!(report["latency"]["events"], 200);
    // The probe's 200 events take 23 orders (200 / 9 statuses, rounded up) through their
    // lifecycle, status by status: planning, shipped and completed move an order (to
    // processing, shipped, delivered), the last only for the 16 orders the events reach.
    let published = &report["latency"]["commit_to_published"];
    assert_eq!(published["changes"], 23 + 23 + 16, "{published}");
    for figure in ["changes_per_second", "p50_ms", "p99_ms", "max_ms"] {
        assert!(published[figure].is_f64(), "no {figure} in {published}");
    }
    assert_eq!(published["target_p99_ms"], 20.0);
    // The order service's rows, 200 a side (--rate for --latency-seconds), each measured
    // once it reached the stream exactly once.
    let relayed = &report["relay_table"];
    assert_eq!(relayed["rate"], 200, "{relayed}");
    assert_eq!(relayed["seconds"], 1, "{relayed}");
    for side in ["trigger", "poll"] {
        let side = &relayed[side];
        assert_eq!(side["rows"], 200, "{side}");
        let figure = |name: &str| {
            side[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: {side}"))
        };
        assert!(figure("rows_per_second") > 0.0, "{side}");
        // Within the phase's 30 s deadline, and in order.
        let (p50, p99, max) = (figure("p50_ms"), figure("p99_ms"), figure("max_ms"));
        assert!(
            0.0 <= p50 && p50 <= p99 && p99 <= max && max < 30_000.0,
            "{side}"
        );
    }
    // Every drain before published its status changes (and ended once they were).
    assert_eq!(report["drain"]["publishing"], true);
    // One replica publishes one event per history row: 4 per order, 5 for the declined ones.
    let mixed = &report["mixed"]["published"];
    assert_eq!(mixed["history_rows"], 40 * 4 + 4, "{mixed}");
    assert_eq!(mixed["events"], mixed["history_rows"], "{mixed}");
    assert_eq!(mixed["orders_with_steps_skipped"], 0, "{mixed}");
    // Two replicas may apply an order's event after a later one of it, and its recompute
    // publishes one step for the history it rewrites: never more events than history rows.
    let publishing = &report["publishing"];
    assert_eq!(publishing["replicas"], 2);
    let drains = publishing["published"].as_array().expect("published");
    assert_eq!(drains.len(), 3, "{publishing}");
    for published in drains.iter().chain([&report["drain"]["published"]]) {
        assert_eq!(published["history_rows"], 120, "{published}");
        let events = published["events"].as_u64().expect("events");
        assert!((40..=120).contains(&events), "{published}");
    }
    for side in ["on", "off"] {
        assert_eq!(
            publishing[format!("{side}_events_per_second")]
                .as_array()
                .map(Vec::len),
            Some(3),
            "{publishing}"
        );
        assert!(publishing[format!("{side}_median_events_per_second")].is_f64());
    }
    assert!(publishing["on_percent_of_off"].is_f64(), "{publishing}");
    assert_eq!(publishing["target_percent_of_off"], 85.0);
    assert_eq!(report["drain"]["replicas"], 2);
    let grown = &report["grown"];
    assert_eq!(grown["rows"], 3000);
    // The server's shared_buffers, beside the figure that depends on it most.
    assert!(
        grown["shared_buffers"]
            .as_str()
            .is_some_and(|s| s.ends_with("B")),
        "no shared_buffers in {grown}"
    );
    assert_eq!(
        grown["empty_events_per_second"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        grown["grown_events_per_second"].as_array().map(Vec::len),
        Some(3)
    );
    // Batching beats one transaction per event on the same servers, even this small and in a
    // debug build (69x seen; release figures in BENCHMARKS.md).
    assert!(
        report["speedup"].as_f64().is_some_and(|s| s > 1.0),
        "the worker drained no faster than the per-event pattern: {report}"
    );
    env.drop_database(&database).await;
    env.cleanup().await;
}
