//! `order-worker replay` over a range `trim` deleted says so: the whole range gone is an error
//! naming the requested start, the oldest entry retained and its time, and how to keep more;
//! a range whose start alone is gone is a warning naming that part, and the rest is replayed.

mod support;

use support::ops::{stderr, stdout};
use support::TestEnv;

async fn xtrim_below(env: &TestEnv, min_id: &str) {
    let _: u64 = redis::cmd("XTRIM")
        .arg(&env.stream.stream)
        .arg("MINID")
        .arg(min_id)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XTRIM");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_of_a_trimmed_range_says_what_is_gone_and_replays_what_is_left() {
    let env = TestEnv::new().await;
    env.fill_at(&env.stream.stream, &[1_000, 2_000, 3_000, 4_000])
        .await;

    // Never trimmed: starting before the first entry loses nothing, and says nothing.
    let whole = env.order_worker(&["replay", "--from", "0", "--json"]).await;
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert!(!stderr(&whole).contains("trimmed"), "{}", stderr(&whole));

    xtrim_below(&env, "3000-0").await;
    let gone = env
        .order_worker(&["replay", "--from", "1000", "--to", "2500"])
        .await;
    assert_eq!(gone.status.code(), Some(1), "{}", stdout(&gone));
    let error = stderr(&gone);
    for said in [
        "nothing to replay",
        "was trimmed and no longer holds the range from 1000-0 (1970-01-01T00:00:01.000Z)",
        "its oldest entry retained is 3000-0 (1970-01-01T00:00:03.000Z)",
        "order-worker trim --keep",
    ] {
        assert!(error.contains(said), "{said:?} in {error}");
    }

    let partly = env
        .order_worker(&["replay", "--from", "1000", "--json"])
        .await;
    assert!(partly.status.success(), "{}", stderr(&partly));
    let warning = stderr(&partly);
    for said in [
        "was trimmed: whatever it held from 1000-0 (1970-01-01T00:00:01.000Z) to 2999-18446744073709551615",
        "replaying the rest, from the oldest entry retained, 3000-0",
        "order-worker trim --keep",
    ] {
        assert!(warning.contains(said), "{said:?} in {warning}");
    }
    let report: serde_json::Value = serde_json::from_slice(&partly.stdout).expect("JSON");
    assert_eq!(report["read"], 2, "{report}");

    let retained = env.order_worker(&["replay", "--from", "3000"]).await;
    assert!(retained.status.success(), "{}", stderr(&retained));
    assert!(
        !stderr(&retained).contains("trimmed"),
        "{}",
        stderr(&retained)
    );

    xtrim_below(&env, "5000-0").await;
    let empty = env.order_worker(&["replay", "--from", "1000"]).await;
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        stderr(&empty).contains("(it holds no entries;"),
        "{}",
        stderr(&empty)
    );
    env.cleanup().await;
}
