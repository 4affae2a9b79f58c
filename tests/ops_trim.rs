//! `order-worker trim` against real groups: it never deletes an entry that any group on the
//! stream has pending or has not been delivered yet, keeps the `--keep` window even when every
//! group is done with it, a dry run deletes nothing, and it refuses when a group's state does
//! not allow the cut (checked again, atomically, at trim time). `--all-topics` does each
//! subscribed stream in turn.

mod support;

use std::time::Duration;

use order_worker::ops::trim::{self, Cut, SetBy};
use support::ops::{id, stderr, stdout};
use support::payments::{stream_key, ALL_TOPICS};
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

    let dry = trim::trim(&mut conn, &config, Duration::ZERO, true)
        .await
        .expect("dry run");
    assert_eq!(dry.cut.min_id, id(&ids[2]).next().expect("next"), "{dry:?}");
    assert_eq!(
        (&dry.cut.set_by, dry.below_cut),
        (&SetBy::Group("analytics".to_owned()), 3)
    );
    assert_eq!(dry.deleted, None);
    assert_eq!(env.stream_ids().await, ids, "a dry run deletes nothing");

    // The undelivered entries of the other group bound the cut.
    let done = trim::trim(&mut conn, &config, Duration::ZERO, false)
        .await
        .expect("trim");
    assert_eq!(done.deleted, Some(3));
    assert_eq!(env.stream_ids().await, ids[3..], "only the 3 below the cut");

    // With the other group caught up, the worker's pending entry bounds it.
    let rest = env.read_as("analytics", "a-1", 100).await;
    env.ack("analytics", &rest).await;
    let done = trim::trim(&mut conn, &config, Duration::ZERO, false)
        .await
        .expect("trim");
    assert_eq!(
        done.cut,
        Cut {
            min_id: id(&ids[4]),
            set_by: SetBy::Group(worker_group.clone())
        }
    );
    assert_eq!(done.deleted, Some(1));
    assert_eq!(env.stream_ids().await, ids[4..], "the pending entry stays");
    assert_eq!(env.pending_for("order-worker-7d9c").await, 1);

    // Once it is acked, what the worker's group has not been delivered yet bounds it.
    env.ack(&worker_group, &ids[4..5]).await;
    let done = trim::trim(&mut conn, &config, Duration::ZERO, false)
        .await
        .expect("trim");
    assert_eq!(done.deleted, Some(4));
    assert_eq!(
        env.stream_ids().await,
        ids[8..],
        "the 2 undelivered entries stay"
    );
    let again = trim::trim(&mut conn, &config, Duration::ZERO, false)
        .await
        .expect("trim");
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

    let error = refused(trim::trim(&mut conn, &config, Duration::ZERO, false).await);
    assert!(error.contains("no consumer groups"), "{error}");
    env.create_group("analytics").await;
    env.ack("analytics", &env.read_as("analytics", "a-1", 4).await)
        .await;
    let error = refused(trim::trim(&mut conn, &config, Duration::ZERO, false).await);
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
    let stale = trim::trim(&mut conn, &config, Duration::ZERO, true)
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
    let error = refused(trim::trim(&mut conn, &missing, Duration::ZERO, false).await);
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

    let dry = env
        .order_worker(&["trim", "--keep", "0", "--dry-run"])
        .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(
        text.contains(&format!("MINID {}", id(&ids[2]).next().expect("next"))),
        "{text}"
    );
    assert!(text.contains("would delete 3 of 5 entries"), "{text}");
    assert_eq!(env.stream_ids().await, ids);

    let done = env.order_worker(&["trim", "--keep", "0", "--json"]).await;
    assert!(done.status.success(), "{}", stderr(&done));
    let report: serde_json::Value = serde_json::from_slice(&done.stdout).expect("JSON");
    assert_eq!(report["deleted"], 3, "{report}");
    assert_eq!(env.stream_ids().await, ids[3..]);
    env.cleanup().await;
}

const DAY_MS: u64 = 86_400_000;
const WEEK: Duration = Duration::from_secs(7 * 86_400);

#[tokio::test(flavor = "multi_thread")]
async fn trim_keep_keeps_the_window_and_never_what_a_group_still_needs() {
    let env = TestEnv::new().await;
    let now = env.redis_now_ms().await;
    let old = env
        .fill_at(
            &env.stream.stream,
            &[
                now - 10 * DAY_MS,
                now - 9 * DAY_MS,
                now - 8 * DAY_MS,
                now - 7 * DAY_MS - 60_000,
            ],
        )
        .await;
    let recent = env.fill(3).await;
    let worker_group = env.stream.group.clone();
    env.create_group(&worker_group).await;
    env.create_group("analytics").await;
    // The worker's group read everything and acked all but old[1]; analytics read two.
    let read = env.read_as(&worker_group, "w-1", 10).await;
    let acked: Vec<String> = read.iter().filter(|id| **id != old[1]).cloned().collect();
    env.ack(&worker_group, &acked).await;
    env.ack("analytics", &env.read_as("analytics", "a-1", 2).await)
        .await;
    let config = env.ops_config();
    let mut conn = env.redis.clone();

    // A pending entry older than the window holds the cut below it.
    let done = trim::trim(&mut conn, &config, WEEK, false)
        .await
        .expect("trim");
    let group_cut = |min_id, group: &str| Cut {
        min_id,
        set_by: SetBy::Group(group.to_owned()),
    };
    assert_eq!(done.cut, group_cut(id(&old[1]), &worker_group));
    assert_eq!(done.deleted, Some(1));
    assert_eq!(env.stream_ids().await, [&old[1..], &recent[..]].concat());

    // Acked, the entry another group has not been delivered holds it.
    env.ack(&worker_group, &old[1..2]).await;
    let done = trim::trim(&mut conn, &config, WEEK, false)
        .await
        .expect("trim");
    let after_old_1 = id(&old[1]).next().expect("next");
    assert_eq!(done.cut, group_cut(after_old_1, "analytics"));
    assert_eq!(done.deleted, Some(1));

    // Every group done with every entry: the window holds the cut, the week's entries stay.
    env.ack("analytics", &env.read_as("analytics", "a-1", 10).await)
        .await;
    let done = trim::trim(&mut conn, &config, WEEK, false)
        .await
        .expect("trim");
    let window = done.keep_from.expect("a window");
    assert!(
        (now - 7 * DAY_MS..now - 7 * DAY_MS + 60_000).contains(&window.ms),
        "{window}"
    );
    assert_eq!(done.keep_seconds, WEEK.as_secs());
    assert_eq!(
        done.cut,
        Cut {
            min_id: window,
            set_by: SetBy::Keep {
                groups_need_from: id(&recent[2]).next().expect("next")
            }
        }
    );
    assert_eq!(
        done.deleted,
        Some(2),
        "old[2] and old[3], older than a week"
    );
    assert_eq!(env.stream_ids().await, recent);
    let again = trim::trim(&mut conn, &config, WEEK, false)
        .await
        .expect("trim");
    assert_eq!((again.below_cut, again.deleted), (0, None));

    // --keep 0: what every group is done with goes, as before the window.
    let done = trim::trim(&mut conn, &config, Duration::ZERO, false)
        .await
        .expect("trim");
    assert_eq!(done.keep_from, None);
    assert_eq!(done.deleted, Some(3));
    assert!(env.stream_ids().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trim_all_topics_keeps_each_streams_window_and_skips_a_stream_not_created_yet() {
    let env = TestEnv::new().await;
    let now = env.redis_now_ms().await;
    let mut kept = Vec::new();
    for topic in ["fulfillment.status_changed", "payment.confirmed"] {
        let key = stream_key(&env, topic);
        env.fill_at(&key, &[now - 9 * DAY_MS, now - 8 * DAY_MS])
            .await;
        let recent = env.fill_at(&key, &[now - DAY_MS]).await;
        env.create_group_on(&key, &env.stream.group).await;
        let read = env.read_on(&key, &env.stream.group, "w-1", 10).await;
        env.ack_on(&key, &env.stream.group, &read).await;
        kept.push((key, recent));
    }
    let settings = [("TOPICS", ALL_TOPICS)];
    let args = ["trim", "--all-topics", "--keep", "7d", "--json"];

    let dry = env
        .order_worker_with(&[&args[..], &["--dry-run"]].concat(), &settings)
        .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let reports: Vec<serde_json::Value> =
        serde_json::from_slice(&dry.stdout).expect("one JSON array, a report per stream");
    assert_eq!(reports.len(), 2, "{}", stdout(&dry));
    for (report, (key, _)) in reports.iter().zip(&kept) {
        assert_eq!(report["stream"], key.as_str(), "{report}");
        assert_eq!(report["keep_seconds"], WEEK.as_secs(), "{report}");
        assert!(report["cut"]["set_by"]["keep"].is_object(), "{report}");
        assert_eq!(report["below_cut"], 2, "{report}");
        assert_eq!(report["deleted"], serde_json::Value::Null, "{report}");
    }
    let failed = stream_key(&env, "payment.failed");
    assert!(
        stderr(&dry).contains(&format!("stream {failed} does not exist yet")),
        "{}",
        stderr(&dry)
    );

    let done = env.order_worker_with(&args, &settings).await;
    assert!(done.status.success(), "{}", stderr(&done));
    for (key, recent) in &kept {
        assert_eq!(
            &env.ids_on(key).await,
            recent,
            "{key}: the week's entry alone"
        );
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trim_all_topics_trims_the_others_when_one_stream_refuses_and_exits_1() {
    let env = TestEnv::new().await;
    let now = env.redis_now_ms().await;
    let old = [now - 9 * DAY_MS];
    env.fill_at(&env.stream.stream, &old).await;
    env.create_group(&env.stream.group).await;
    env.ack(
        &env.stream.group,
        &env.read_as(&env.stream.group, "w-1", 10).await,
    )
    .await;
    // No group on this one: nothing says what was processed.
    let confirmed = stream_key(&env, "payment.confirmed");
    env.fill_at(&confirmed, &old).await;

    let done = env
        .order_worker_with(&["trim", "--all-topics"], &[("TOPICS", ALL_TOPICS)])
        .await;
    assert_eq!(done.status.code(), Some(1), "{}", stdout(&done));
    let errors = stderr(&done);
    assert!(errors.contains("no consumer groups"), "{errors}");
    assert!(
        errors.contains(&format!("not trimmed: {confirmed}")),
        "{errors}"
    );
    assert!(
        env.stream_ids().await.is_empty(),
        "the other stream was trimmed"
    );
    assert_eq!(env.ids_on(&confirmed).await.len(), 1);
    env.cleanup().await;
}
