//! The schema: `migrate` is safe when replicas run it at once, and `run` refuses to start on a
//! schema that is behind.

mod support;

use order_worker::run_migrations;
use order_worker::Worker;
use support::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrations_apply_each_migration_once() {
    let env = TestEnv::unmigrated().await;
    let runs = (0..4).map(|_| {
        let url = env.database_url.clone();
        async move { run_migrations(&url, &order_worker::TableName::default()).await }
    });
    let results = futures_join_all(runs).await;
    let applied: Vec<Vec<String>> = results
        .into_iter()
        .map(|result| result.expect("every concurrent migrate succeeds"))
        .collect();
    let total: usize = applied.iter().map(Vec::len).sum();
    let migrations = std::fs::read_dir("migrations")
        .expect("migrations dir")
        .count();
    assert_eq!(
        total, migrations,
        "each migration applied exactly once: {applied:?}"
    );
    assert!(
        run_migrations(&env.database_url, &order_worker::TableName::default())
            .await
            .expect("rerun")
            .is_empty()
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_to_start_when_the_schema_is_behind() {
    let env = TestEnv::unmigrated().await;
    let error = match Worker::start(env.config("w1")).await {
        Ok(_) => panic!("a worker started on an empty database"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("schema is behind"), "{error}");
    assert!(error.contains("order-worker migrate"), "{error}");

    // The binary says the same and exits non-zero.
    let output = env.order_worker(&["run"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("run `order-worker migrate` first"),
        "{stderr}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_orders_table_rejects_unknown_statuses() {
    let env = TestEnv::new().await;
    use diesel::result::{DatabaseErrorKind, Error};
    use diesel_async::RunQueryDsl;
    let inserted = diesel::sql_query("INSERT INTO orders (id, status) VALUES ('o1', 'teleported')")
        .execute(&mut env.db().await)
        .await;
    match inserted {
        Err(Error::DatabaseError(DatabaseErrorKind::CheckViolation, info)) => {
            assert_eq!(info.constraint_name(), Some("orders_status_check"));
        }
        other => panic!("not the status CHECK's violation: {other:?}"),
    }
    for status in order_worker::OrderStatus::ALL {
        env.seed_orders(&[&format!("o-{status}")], status.as_str())
            .await;
    }
    env.cleanup().await;
}

/// Runs the futures concurrently on the runtime and collects their results in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task did not panic"));
    }
    results
}
