//! The `order-worker-dev` binary as a developer runs it: the demo end to end against the local
//! servers (`REDIS_URL` / `DATABASE_URL`, else the default ports, as the root package's tests),
//! and `bench` / `replicas` saying how to get the `order-worker` binary they need when it is
//! missing. The benchmark and the replicas run themselves are tested from the root package
//! (tests/bench.rs, tests/replicas.rs), where the `order-worker` binary is at hand.

use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel_async::RunQueryDsl;

const DEV: &str = env!("CARGO_BIN_EXE_order-worker-dev");

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_pays_then_fulfills_every_order_and_each_ends_where_expected() {
    // The demo creates (and drops first) a database of its own on the server.
    let database = unique("ow_demo");
    let stream = unique("test.demo.fulfillment.status_changed");
    let output: Output = tokio::process::Command::new(DEV)
        .args(["demo", "--orders", "8", "--database", &database])
        .args(["--stream", &stream])
        .env("DATABASE_URL", database_url())
        .env("REDIS_URL", redis_url())
        .output()
        .await
        .expect("demo runs");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));

    let mut admin = order_worker::connect_postgres(database_url())
        .await
        .expect("PostgreSQL reachable");
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the demo's database");
    let mut redis = redis::Client::open(redis_url())
        .expect("REDIS_URL parses")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis reachable");
    // The demo's streams: fulfillment on `--stream`, payments named after it.
    let mut del = redis::cmd("DEL");
    for key in [
        stream.clone(),
        format!("{stream}.payment.confirmed"),
        format!("{stream}.payment.failed"),
    ] {
        del.arg(format!("{key}.deadletter")).arg(key);
    }
    let _: () = del.query_async(&mut redis).await.expect("DEL streams");

    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("[ok]").count(), 8, "{stdout}");
    // Each order's line: `demo-order-NN: pending → … → <final> (<reason>)  [ok]`.
    let line = |order: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(&format!("{order}:")))
            .unwrap_or_else(|| panic!("no line for {order}: {stdout}"))
    };
    assert!(
        line("demo-order-06").contains(
            "pending → confirmed (PaymentConfirmed) → processing (FulfillmentPlanning) → "
        ) && line("demo-order-06").contains("→ delivered (FulfillmentCompleted)  [ok]"),
        "{stdout}"
    );
    // The declined card, then the accepted one.
    assert!(
        line("demo-order-05").starts_with(
            "demo-order-05: pending → failed (PaymentFailed) → confirmed (PaymentConfirmed) → \
             processing"
        ) && line("demo-order-05").ends_with("delivered (FulfillmentCompleted)  [ok]"),
        "{stdout}"
    );
    // The last order's payment failed: no fulfillment.
    assert_eq!(
        line("demo-order-07"),
        "demo-order-07: pending → failed (PaymentFailed)  [ok]",
        "{stdout}"
    );
    assert!(
        stdout.contains("partially_shipped") && stdout.contains("cancelled"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 duplicate, 1 stale") && stdout.contains("; 0 pending"),
        "{stdout}"
    );
}

#[test]
fn bench_and_replicas_name_the_missing_order_worker_binary_and_how_to_build_it() {
    for command in ["bench", "replicas"] {
        let output = std::process::Command::new(DEV)
            .arg(command)
            .env("ORDER_WORKER_BIN", "/nonexistent/order-worker")
            .output()
            .expect("order-worker-dev runs");
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("ORDER_WORKER_BIN is /nonexistent/order-worker"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn every_command_keeps_its_flags() {
    for (command, flags) in [
        (
            "demo",
            &[
                "--redis-url",
                "--database-url",
                "--database",
                "--stream",
                "--orders",
            ][..],
        ),
        (
            "bench",
            &[
                "--orders",
                "--batch-size",
                "--replicas",
                "--rate",
                "--latency-seconds",
                "--drain-only",
                "--json",
            ],
        ),
        (
            "replicas",
            &[
                "--count",
                "--orders",
                "--rate",
                "--batch-size",
                "--rolling-restart",
            ],
        ),
    ] {
        let output = std::process::Command::new(DEV)
            .args([command, "--help"])
            .env("REDIS_URL", "redis://:hunter2@redis:6379")
            .output()
            .expect("order-worker-dev runs");
        let help = text(&output.stdout);
        assert!(output.status.success(), "{command}: {help}");
        for flag in flags {
            assert!(help.contains(flag), "{command} lacks {flag}: {help}");
        }
        assert!(!help.contains("hunter2"), "{command}: {help}");
    }
}
