//! The binary as an operator runs it: `--help` keeps secrets out, SIGTERM exits cleanly.

mod support;

use std::process::Stdio;

use support::{TestEnv, DEADLINE};
use tokio::io::{AsyncBufReadExt, BufReader};

#[test]
fn help_never_shows_a_password_from_the_environment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_order-worker"))
        .args(["run", "--help"])
        .env("DATABASE_URL", "postgres://app:hunter2@db:5432/orders")
        .env("REDIS_URL", "redis://:hunter2@redis:6379")
        .output()
        .expect("binary runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        help.contains("REDIS_URL") && help.contains("DATABASE_URL"),
        "{help}"
    );
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_worker_with_exit_status_zero() {
    let env = TestEnv::new().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_order-worker"))
        .args([
            "--log-format",
            "text",
            "run",
            "--consumer",
            "cli-test",
            "--block-ms",
            "200",
        ])
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("STREAM", &env.stream.stream)
        .env("HTTP_ADDR", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let subscribed = format!(
        "Subscribing to stream: {}, group: order-service, consumer: cli-test",
        env.stream.stream
    );
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains(&subscribed) {
                return;
            }
        }
        panic!("the worker exited before subscribing");
    })
    .await
    .expect("the worker subscribes");

    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.expect("kill runs").success());
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_drains_its_stream_and_every_order_ends_where_expected() {
    let env = TestEnv::new().await;
    // The demo creates (and drops first) a database of its own next to the test's.
    let database = support::unique("ow_demo");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_order-worker"))
        .args([
            "demo",
            "--orders",
            "8",
            "--database",
            &database,
            "--stream",
            &env.stream.stream,
        ])
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .output()
        .await
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("[ok]").count(), 8, "{stdout}");
    assert!(
        stdout.contains("partially_shipped") && stdout.contains("cancelled"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 duplicate, 1 stale") && stdout.contains("; 0 pending"),
        "{stdout}"
    );
    env.drop_database(&database).await;
    env.cleanup().await;
}
