//! A smoke run of `order-worker bench`: seconds, asserting only that every phase completes and
//! counts right (the benchmark itself fails if any phase ends in a wrong state).

mod support;

use support::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn the_benchmark_completes_and_counts_correctly() {
    let env = TestEnv::new().await;
    let database = support::unique("ow_bench");
    let json = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{database}.json"));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_order-worker"))
        .args([
            "bench",
            "--orders",
            "40",
            "--rate",
            "200",
            "--latency-seconds",
            "1",
        ])
        .args(["--database", &database, "--stream", &env.stream.stream])
        .arg("--json")
        .arg(&json)
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .output()
        .await
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for row in [
        "drain, worker defaults",
        "per-event pattern",
        "PostgreSQL ceiling",
        "XADD → COMMIT",
        "peak RSS",
        "ready",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("JSON");
    assert_eq!(report["events"], 360);
    assert_eq!(report["drain"]["events"], 360);
    assert_eq!(report["latency"]["events"], 200);
    assert!(
        report["speedup"].as_f64().is_some_and(|s| s > 0.0),
        "{report}"
    );
    env.drop_database(&database).await;
    env.cleanup().await;
}
