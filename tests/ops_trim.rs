//! `order-worker trim` against real groups: it never deletes an entry that any group on the
//! stream has pending or has not been delivered yet, a dry run deletes nothing, and it refuses
//! when a group's state does not allow the cut (checked again, atomically, at trim time).

mod support;

use order_worker::ops::trim::{self, Cut};
use support::ops::{id, stderr, stdout};
use support::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn trim_never_deletes_an_entry_pending_in_a_group_or_not_yet_delivered_to_one() {
    let env = TestEnv::new().await;
    let ids = env.fill(10).await;
    let worker_group = env.stream.group.clone();
    env.create_group(&worker_group).await;
    env.create_group("analytics").await;
    // The worker's group read 8 and acked all but the 5th (ids[4]): pending.
    let read_by_worker = env.read_as(&worker_group, "order-worker-7d9c", 8).await;
    let acked: Vec<String> = read_by_worker
        .iter()
        .filter(|id| **id != ids[4])
        .cloned()
        .collect();
    env.ack(&worker_group, &acked).await;
    // Another group on the stream has read and acked only 3: the rest is undelivered to it.
    let read_by_analytics = env.read_as("analytics", "a-1", 3).await;
    env.ack("analytics", &read_by_analytics).await;
    let config = env.ops_config();
    let mut conn = env.redis.clone();

    let dry = trim::trim(&mut conn, &config, true).await.expect("dry run");
    assert_eq!(dry.cut.min_id, id(&ids[2]).next().expect("next"), "{dry:?}");
    assert_eq!((dry.cut.set_by.as_str(), dry.below_cut), ("analytics", 3));
    assert_eq!(dry.deleted, None);
    assert_eq!(env.stream_ids().await, ids, "a dry run deletes nothing");

    // The undelivered entries of the other group bound the cut.
    let done = trim::trim(&mut conn, &config, false).await.expect("trim");
    assert_eq!(done.deleted, Some(3));
    assert_eq!(env.stream_ids().await, ids[3..], "only the 3 below the cut");

    // With the other group caught up, the worker's pending entry bounds it.
    let rest = env.read_as("analytics", "a-1", 100).await;
    env.ack("analytics", &rest).await;
    let done = trim::trim(&mut conn, &config, false).await.expect("trim");
    assert_eq!(
        done.cut,
        Cut {
            min_id: id(&ids[4]),
            set_by: worker_group.clone()
        }
    );
    assert_eq!(done.deleted, Some(1));
    assert_eq!(env.stream_ids().await, ids[4..], "the pending entry stays");
    assert_eq!(env.pending_for("order-worker-7d9c").await, 1);

    // Once it is acked, what the worker's group has not been delivered yet bounds it.
    env.ack(&worker_group, &ids[4..5]).await;
    let done = trim::trim(&mut conn, &config, false).await.expect("trim");
    assert_eq!(done.deleted, Some(4));
    assert_eq!(
        env.stream_ids().await,
        ids[8..],
        "the 2 undelivered entries stay"
    );
    let again = trim::trim(&mut conn, &config, false).await.expect("trim");
    assert_eq!(
        (again.below_cut, again.deleted),
        (0, None),
        "nothing left to cut"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trim_refuses_when_a_groups_state_does_not_allow_the_cut() {
    let env = TestEnv::new().await;
    let ids = env.fill(4).await;
    let config = env.ops_config();
    let mut conn = env.redis.clone();
    let refused =
        |result: anyhow::Result<trim::TrimReport>| format!("{:#}", result.expect_err("refused"));

    let error = refused(trim::trim(&mut conn, &config, false).await);
    assert!(error.contains("no consumer groups"), "{error}");
    env.create_group("analytics").await;
    env.ack("analytics", &env.read_as("analytics", "a-1", 4).await)
        .await;
    let error = refused(trim::trim(&mut conn, &config, false).await);
    assert!(
        error.contains(&format!(
            "consumer group {} does not exist",
            env.stream.group
        )),
        "{error}"
    );

    // A cut read before another group appeared at `0` is checked again, atomically, at trim time.
    env.create_group(&env.stream.group).await;
    env.ack(
        &env.stream.group,
        &env.read_as(&env.stream.group, "w-1", 4).await,
    )
    .await;
    let stale = trim::trim(&mut conn, &config, true)
        .await
        .expect("dry run")
        .cut;
    assert_eq!(stale.min_id, id(&ids[3]).next().expect("next"));
    env.create_group("late").await;
    let error = format!(
        "{:#}",
        trim::apply_cut(&mut conn, &env.stream.stream, &env.stream.group, &stale)
            .await
            .expect_err("refused")
    );
    assert!(
        error.contains("group late") && error.contains("nothing was deleted"),
        "{error}"
    );
    assert_eq!(env.stream_ids().await, ids);

    let mut missing = config.clone();
    missing.stream.stream = format!("{}.missing", env.stream.stream);
    let error = refused(trim::trim(&mut conn, &missing, false).await);
    assert!(error.contains("does not exist"), "{error}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trim_as_the_binary_shows_the_cut_on_a_dry_run_then_trims() {
    let env = TestEnv::new().await;
    let ids = env.fill(5).await;
    env.create_group(&env.stream.group).await;
    env.ack(
        &env.stream.group,
        &env.read_as(&env.stream.group, "w-1", 3).await,
    )
    .await;

    let dry = env.order_worker(&["trim", "--dry-run"]).await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(
        text.contains(&format!("MINID {}", id(&ids[2]).next().expect("next"))),
        "{text}"
    );
    assert!(text.contains("would delete 3 of 5 entries"), "{text}");
    assert_eq!(env.stream_ids().await, ids);

    let done = env.order_worker(&["trim", "--json"]).await;
    assert!(done.status.success(), "{}", stderr(&done));
    let report: serde_json::Value = serde_json::from_slice(&done.stdout).expect("JSON");
    assert_eq!(report["deleted"], 3, "{report}");
    assert_eq!(env.stream_ids().await, ids[3..]);
    env.cleanup().await;
}
