//! The cut-over from Dapr, rehearsed end to end (docs/cutover.md, issue 34).
//! A Dapr-like consumer (`order-worker-dev dapr-consumer`, a real process: Dapr's group =
//! consumer name = consumerID, reads of 100, handlers, XACK after the handler, XPENDING/XCLAIM
//! reclaim) serves all three topics under a steady publishing load. The worker joins topic by
//! topic in the runbook's order, each time the Dapr-like consumer restarted without that topic,
//! the last time SIGKILLed while it holds entries. And the rollback: the worker stopped, the
//! Dapr-like consumer back on every topic. Each ends with: the tables equal an in-order replay
//! of the streams (every event took effect exactly once), nothing pending under any consumer,
//! and no event applied later than CLAIM_MIN_IDLE_MS plus a few seconds after it was published.

mod support;

use std::future::Future;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use order_worker::PROCESSING_EVENT;
use order_worker_dev::in_order::Tables;
use order_worker_dev::soak::feed::{feed, Fed};
use order_worker_dev::soak::traffic::{seed_orders, Traffic};
use support::dapr::{kill_holding, DaprConsumer, DaprSettings};
use support::payments::{pending_for_on, pending_on, stream_key, CONFIRMED, FAILED, FULFILLMENT};
use support::process::terminate;
use support::{eventually, TestEnv};
use tokio::process::Child;

/// The group Dapr created and the worker is given, always explicitly (never the default).
const GROUP: &str = "order-service";

/// The runbook's order: the longest proven first, the one that confirms orders last.
const RUNBOOK_ORDER: [&str; 3] = [FULFILLMENT, FAILED, CONFIRMED];

/// The worker's claim settings: small, so the rehearsal takes seconds.
const CLAIM_MIN_IDLE_MS: i64 = 2_000;
const CONSUMER_GONE_MS: &str = "1500";

/// No event may be applied later than this after it was published, when the worker takes
/// over (its claim, docs/cutover.md's promise).
const WAITED_AT_MOST_MS: i64 = CLAIM_MIN_IDLE_MS + 5_000;
/// The same when rolled back: then Dapr's reclaim (idle `processing_timeout`, looked for every
/// `redeliver_interval`) and its slow handlers set the pace, not the worker: 10 s of room on a
/// loaded machine (a CI run measured 7.2 s).
const ROLLED_BACK_WAITED_AT_MOST_MS: i64 =
    (DAPR.processing_timeout.as_millis() + DAPR.redeliver_interval.as_millis()) as i64 + 10_000;

/// Events per second over the three topics, and the longest the feed may run (orders are
/// seeded for that much).
const RATE: u32 = 100;
const FEED_BUDGET_S: u64 = 120;

const DAPR: DaprSettings = DaprSettings {
    consumer_id: GROUP,
    concurrency: 4,
    redeliver_interval: Duration::from_millis(500),
    processing_timeout: Duration::from_millis(2_000),
    // A slow app: each handler holds its entry this long, so entries are pending while it works.
    handler_delay: Duration::from_millis(50),
};

/// A test environment whose group is Dapr's, with the traffic's orders seeded.
async fn rehearsal() -> (TestEnv, u64) {
    let mut env = TestEnv::new().await;
    env.stream.group = GROUP.to_owned();
    let orders = Traffic::orders_for(u64::from(RATE) * FEED_BUDGET_S);
    seed_orders(&mut env.db().await, orders)
        .await
        .expect("seed");
    (env, orders)
}

/// `order-worker run` as pod `name` on `topics`, in Dapr's group.
fn worker(env: &TestEnv, name: &str, topics: &[&str]) -> Child {
    let claim_min_idle = CLAIM_MIN_IDLE_MS.to_string();
    let topics = topics.join(",");
    let settings = [
        ("TOPICS", topics.as_str()),
        ("CONSUMER_GROUP", GROUP),
        ("CLAIM_MIN_IDLE_MS", &claim_min_idle),
        ("CONSUMER_GONE_MS", CONSUMER_GONE_MS),
    ];
    env.spawn_process(name, &env.redis_url, &env.database_url, &settings)
}

/// Runs `script` while the steady load is published to all three streams; publishing stops
/// when the script is done. Returns what the script returns.
async fn under_load<T>(env: &TestEnv, script: impl Future<Output = T>) -> T {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let fed = Fed::default();
    let total = u64::from(RATE) * FEED_BUDGET_S;
    let feeding = async {
        let key_of = |topic: &str| stream_key(env, topic);
        tokio::select! {
            done = feed(env.redis.clone(), key_of, RATE, total, &fed) => {
                done.expect("publishing");
                panic!("the feed ran out ({FEED_BUDGET_S} s) before the rehearsal ended");
            }
            _ = stopped => {}
        }
    };
    let scripted = async {
        let result = script.await;
        let _ = stop.send(());
        result
    };
    tokio::join!(feeding, scripted).1
}

/// The runbook's first step: `order-worker preflight` with the worker's settings but the
/// group left at its default. It must find Dapr's group on every stream, say the default is
/// wrong and give the setting; obeyed, it is ready (exit 0). `worker_group` is what the
/// workers are then given.
async fn preflight_step(env: &TestEnv, worker_group: &str) {
    let preflight = async |group: &str| {
        let settings = [
            ("TOPICS", RUNBOOK_ORDER.join(",")),
            ("CONSUMER_GROUP", group.into()),
        ];
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = env
            .order_worker_with(&["preflight", "--json", "--sample", "200"], &settings)
            .await;
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stderr)));
        (output.status.code(), report)
    };
    // An empty value leaves CONSUMER_GROUP unset: its default.
    let (code, report) = preflight("").await;
    assert_eq!(code, Some(1), "the default group is not Dapr's: {report}");
    let streams = report["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), RUNBOOK_ORDER.len());
    let fixes: Vec<&str> = (streams.iter())
        .map(|stream| stream["joining"]["fix"].as_str().expect("a setting to use"))
        .collect();
    let fix = format!("CONSUMER_GROUP={worker_group}");
    assert_eq!(fixes, [fix.as_str(); 3], "{report}");

    let (code, report) = preflight(worker_group).await;
    assert_eq!(code, Some(0), "obeyed, preflight is ready: {report}");
}

/// Waits until the worker `name` has processed an event: it consumes beside Dapr.
async fn until_processing(env: &TestEnv, name: &str) {
    eventually(&format!("{name} processes events"), async || {
        env.process_log(name).contains(PROCESSING_EVENT)
    })
    .await;
}

/// Once publishing stopped: waits until every group has drained (lag 0, nothing pending).
async fn drained(env: &TestEnv) {
    eventually("every group has lag 0 and nothing pending", async || {
        for topic in RUNBOOK_ORDER {
            let key = stream_key(env, topic);
            if env.lag_of(&key).await != 0 || pending_on(env, &key).await != Some(0) {
                return false;
            }
        }
        true
    })
    .await;
}

/// The checks, once every consumer stopped: nothing pending under any consumer, the tables
/// equal the in-order replay of the streams, and no event waited too long.
async fn checked(env: TestEnv, orders: u64, waited_at_most_ms: i64) {
    for topic in RUNBOOK_ORDER {
        let key = stream_key(&env, topic);
        assert_eq!(pending_on(&env, &key).await, Some(0), "pending on {key}");
    }
    let got = Tables::read(&mut env.db().await).await.expect("tables");
    let in_order = TestEnv::new().await;
    seed_orders(&mut in_order.db().await, orders)
        .await
        .expect("seed");
    let streams: Vec<(&str, String)> = RUNBOOK_ORDER
        .iter()
        .map(|topic| (*topic, stream_key(&env, topic)))
        .collect();
    let applied = in_order.apply_in_order(&streams).await;
    let expected = Tables::read(&mut in_order.db().await)
        .await
        .expect("tables");
    assert!(applied > 0, "nothing was published");
    if let Some(difference) = got.first_difference(&expected) {
        panic!("the tables differ from the in-order replay: {difference}");
    }

    let waited = longest_wait_ms(&env).await;
    println!(
        "{applied} events, tables {:?}; longest wait {waited} ms",
        got.counts()
    );
    assert!(
        waited <= waited_at_most_ms,
        "an event was applied {waited} ms after it was published (at most {waited_at_most_ms})"
    );
    in_order.cleanup().await;
    env.cleanup().await;
}

/// The longest time from an entry's XADD (its id's milliseconds, Redis's clock) to the
/// transaction that first applied it (the inbox's `processed_at`, PostgreSQL's clock on the
/// same machine).
async fn longest_wait_ms(env: &TestEnv) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Waited {
        #[diesel(sql_type = BigInt)]
        ms: i64,
    }
    let waited: Waited = diesel::sql_query(
        "SELECT coalesce(max((extract(epoch FROM processed_at) * 1000)::bigint \
                - split_part(stream_entry_id, '-', 1)::bigint), 0)::bigint AS ms \
         FROM processed_events",
    )
    .get_result(&mut env.db().await)
    .await
    .expect("read waits");
    waited.ms
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_takes_over_from_dapr_topic_by_topic_under_load_and_nothing_is_lost() {
    let (env, orders) = rehearsal().await;
    let mut workers: Vec<(String, Child)> = Vec::new();
    under_load(&env, async {
        let mut dapr = DaprConsumer::start(&env, &RUNBOOK_ORDER, &DAPR).await;
        eventually("Dapr consumes", async || env.inbox_count().await > 0).await;
        preflight_step(&env, GROUP).await;
        for (n, topic) in RUNBOOK_ORDER.iter().enumerate() {
            let moved = &RUNBOOK_ORDER[..=n];
            // 1. The worker, TOPICS listing the topics moved so far, rolled out beside Dapr:
            // the new pod reads before the old one stops.
            let name = format!("order-worker-{n}");
            let child = worker(&env, &name, moved);
            until_processing(&env, &name).await;
            if let Some((old, mut child)) = workers.pop() {
                assert_eq!(terminate(&mut child).await.code(), Some(0), "{old} stops");
            }
            workers.push((name, child));
            // 2. Dapr's subscription to the topic disabled: restarted without it, the last
            // one killed outright while its handlers hold entries.
            let rest = &RUNBOOK_ORDER[n + 1..];
            if rest.is_empty() {
                let held = dapr.kill_holding(&env, topic, GROUP).await;
                println!("Dapr-like consumer SIGKILLed holding {held} entries of {topic}");
                break;
            }
            dapr.stop().await;
            dapr = DaprConsumer::start(&env, rest, &DAPR).await;
            // 3.-4. What Dapr left pending on the topic is claimed by the worker.
            let key = stream_key(&env, topic);
            eventually(&format!("{GROUP} drains on {topic}"), async || {
                pending_for_on(&env, &key, GROUP).await == 0
            })
            .await;
        }
        let key = stream_key(&env, CONFIRMED);
        eventually("the killed consumer's entries are claimed", async || {
            pending_for_on(&env, &key, GROUP).await == 0
        })
        .await;
    })
    .await;
    drained(&env).await;
    for (name, child) in &mut workers {
        assert_eq!(
            terminate(child).await.code(),
            Some(0),
            "{name} after SIGTERM"
        );
    }
    checked(env, orders, WAITED_AT_MOST_MS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolled_back_to_dapr_under_load_nothing_is_lost() {
    let (env, orders) = rehearsal().await;
    let dapr = under_load(&env, async {
        let dapr = DaprConsumer::start(&env, &RUNBOOK_ORDER, &DAPR).await;
        eventually("Dapr consumes", async || env.inbox_count().await > 0).await;
        preflight_step(&env, GROUP).await;
        // Cut over on every topic: two worker pods join, Dapr's subscriptions are disabled.
        let pods = ["order-worker-0", "order-worker-1"];
        let mut children = pods.map(|name| worker(&env, name, &RUNBOOK_ORDER));
        for name in pods {
            until_processing(&env, name).await;
        }
        dapr.stop().await;
        for topic in RUNBOOK_ORDER {
            let key = stream_key(&env, topic);
            eventually(&format!("{GROUP} drains on {topic}"), async || {
                pending_for_on(&env, &key, GROUP).await == 0
            })
            .await;
        }
        // Rolled back: the workers scaled to 0 (one pod SIGKILLed holding entries, as a pod
        // force-deleted or crashing on the way), then Dapr's subscriptions enabled again: its
        // reclaim loop takes what they left pending.
        let [killed, stopped] = &mut children;
        let held = kill_holding(killed, &env, &RUNBOOK_ORDER, pods[0]).await;
        assert_eq!(
            terminate(stopped).await.code(),
            Some(0),
            "{} stops",
            pods[1]
        );
        let mut left = 0;
        for topic in RUNBOOK_ORDER {
            left += pending_for_on(&env, &stream_key(&env, topic), pods[1]).await;
        }
        println!(
            "{} SIGKILLed holding {held}; {} left {left} at SIGTERM",
            pods[0], pods[1]
        );
        let dapr = DaprConsumer::start(&env, &RUNBOOK_ORDER, &DAPR).await;
        for topic in RUNBOOK_ORDER {
            let key = stream_key(&env, topic);
            for pod in pods {
                eventually(
                    &format!("nothing stays with {pod} on {topic}"),
                    async || pending_for_on(&env, &key, pod).await == 0,
                )
                .await;
            }
        }
        // Dapr alone for a while: the load goes on through it.
        let before = env.inbox_count().await;
        eventually("Dapr consumes again", async || {
            env.inbox_count().await > before + i64::from(RATE)
        })
        .await;
        dapr
    })
    .await;
    drained(&env).await;
    dapr.stop().await;
    checked(env, orders, ROLLED_BACK_WAITED_AT_MOST_MS).await;
}
