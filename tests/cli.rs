//! The binary as an operator runs it: `--help` keeps secrets out, SIGTERM exits cleanly.

mod support;

use support::process::{order_worker_output, terminate};
use support::{eventually, TestEnv};

#[test]
fn help_never_shows_a_password_from_the_environment() {
    let output = order_worker_output(
        &["run", "--help"],
        &[
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/orders"),
            ("REDIS_URL", "redis://:hunter2@redis:6379"),
        ],
    );
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
    let mut child = env.spawn_process("cli-test", &env.redis_url, &env.database_url, &[]);
    let subscribed = format!(
        "Subscribing to stream: {}, group: order-worker, consumer: cli-test",
        env.stream.stream
    );
    eventually("the worker subscribes", async || {
        env.process_log("cli-test").contains(&subscribed)
    })
    .await;

    let status = terminate(&mut child).await;
    assert_eq!(status.code(), Some(0));
    env.cleanup().await;
}
