//! `order-worker outbox` with `RELAY_TABLE`: lists the order service's rows waiting and failed
//! (the reason, the attempts, the order), and `--requeue` (`--dry-run` first) makes failed rows
//! wait again, after which the relay publishes them. Real servers.

mod support;

use diesel_async::SimpleAsyncConnection;
use serde_json::{json, Value};
use support::process::order_worker_output;
use support::relay_table::TABLE;
use support::{eventually, TestEnv};

fn outbox(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["outbox", "--json"];
    all.extend_from_slice(args);
    let settings = [
        ("DATABASE_URL", env.database_url.as_str()),
        ("RELAY_TABLE", TABLE),
    ];
    let output = order_worker_output(&all, &settings);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

async fn settled(env: &TestEnv) -> bool {
    let table = env.outbox_table().await;
    table
        .iter()
        .all(|row| row.status == "published" || row.status == "failed")
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_rows_are_listed_and_requeued_after_a_dry_run_then_published() {
    let env = TestEnv::new().await;
    env.create_order_service_outbox("TEXT").await;
    let topic = env.compensation_topic();
    env.write_outbox(&[
        (topic.clone(), json!({"order_id": "o-1"}).to_string()),
        (topic.clone(), json!({"order": "o-2"}).to_string()),
        (topic.clone(), json!({"order_id": "o-3"}).to_string()),
    ])
    .await;
    let worker = env.spawn_worker_with(env.relaying_config("w1")).await;
    eventually("the rows published or failed", async || settled(&env).await).await;

    let listed = outbox(&env, &[]);
    let rows = listed["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["state"], "failed");
    assert_eq!(rows[0]["id"], 2);
    let error = rows[0]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("no order id"), "{error}");
    assert_eq!(
        (&listed["waiting"], &listed["failed"]),
        (&json!(0), &json!(1))
    );
    let relay = listed["relay"]["application_name"]
        .as_str()
        .unwrap_or_default();
    assert!(relay.contains("w1"), "the relaying replica named: {listed}");

    // The cause fixed (the order service's payload corrected), then requeued.
    env.db()
        .await
        .batch_execute(&format!(
            "UPDATE {TABLE} SET payload = '{{\"order_id\": \"o-2\"}}' WHERE id = 2"
        ))
        .await
        .expect("fixed");
    let dry = outbox(&env, &["--requeue", "--dry-run"]);
    assert_eq!(dry["ids"], json!([2]), "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        env.outbox_table().await[1].status,
        "failed",
        "nothing changed"
    );

    let done = outbox(&env, &["--requeue", "--id", "2"]);
    assert_eq!(done["ids"], json!([2]), "{done}");
    eventually("the requeued row published", async || {
        env.outbox_table().await[1].status == "published"
    })
    .await;
    worker.stop().await;
    let published = env.published_on(&topic).await;
    let orders: Vec<&str> = published.iter().map(|event| event.order_id()).collect();
    assert_eq!(orders, ["o-1", "o-3", "o-2"]);
    let listed = outbox(&env, &[]);
    assert_eq!(listed["rows"], json!([]), "{listed}");
    assert_eq!(listed["relay"], Value::Null, "nobody relays once stopped");
    env.cleanup().await;
}
