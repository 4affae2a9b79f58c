//! A smoke run of the benchmark (`order-worker-dev bench`), in-process through the dev crate's
//! library, its drains starting this package's `order-worker` binary: seconds, asserting that
//! every phase completes (the mixed drain over three streams included) and counts right (the
//! benchmark itself fails if any phase ends in a wrong state; two replicas' drain must be as
//! exact as one's), and that the worker drains faster than the per-event pattern.

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
        "--orders",
        "40",
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
        "drain, worker defaults",
        "mixed, 3 streams (payments + fulfillments), worker defaults",
        "per-event pattern",
        "PostgreSQL ceiling",
        "XADD → COMMIT",
        "peak RSS",
        "ready",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("JSON");
    assert_eq!(report["events"], 360);
    assert_eq!(report["drain"]["events"], 360);
    // The same lifecycles, a confirmed payment per order and a declined one for every 10th.
    assert_eq!(report["mixed"]["events"], 360 + 40 + 4);
    assert_eq!(report["mixed"]["replicas"], 1);
    assert_eq!(report["latency"]["events"], 200);
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
