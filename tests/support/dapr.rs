//! Dapr's side of a cut-over as a real process: `order-worker-dev dapr-consumer` (Dapr's
//! `pubsub.redis` subscriber with the order service's old worker behind it) on a test's
//! streams, stopped with SIGTERM as a disabled subscription stops, or SIGKILLed holding entries.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::payments::{pending_for_on, stream_key};
use super::process::{kill, signal, terminate};
use super::{eventually, TestEnv, DEADLINE};

/// The `order-worker-dev` binary beside the `order-worker` under test (`cargo test --workspace`
/// builds both). Fails, saying how to build it, when it is missing or older than a source file
/// of either crate: a stale one would rehearse yesterday's code.
pub fn dev_binary() -> PathBuf {
    let worker = Path::new(super::process::ORDER_WORKER);
    let path = worker.with_file_name("order-worker-dev");
    let build = "build it with `cargo build -p order-worker-dev` (or run `cargo test --workspace`)";
    let built = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| panic!("no {}: {build}", path.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest = [root.join("src"), root.join("dev/src")]
        .iter()
        .map(|dir| newest_in(dir))
        .max()
        .expect("two directories");
    assert!(
        newest <= built,
        "{} is older than its sources: {build}",
        path.display()
    );
    path
}

/// The latest modification time of any file under `dir`.
fn newest_in(dir: &Path) -> SystemTime {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .map(|entry| {
            let entry = entry.expect("directory entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                newest_in(&entry.path())
            } else {
                meta.modified().expect("modification time")
            }
        })
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A running `order-worker-dev dapr-consumer` on some of a test's topics.
pub struct DaprConsumer {
    child: Child,
    pub topics: Vec<&'static str>,
}

/// How the test's Dapr-like consumer is set up: Dapr's `consumerID`, `concurrency`,
/// `redeliverInterval`, `processingTimeout`, and a handler delay (a slow app: entries stay
/// pending while it works, so a SIGKILL finds some held).
pub struct DaprSettings {
    pub consumer_id: &'static str,
    pub concurrency: u32,
    pub redeliver_interval: Duration,
    pub processing_timeout: Duration,
    pub handler_delay: Duration,
}

impl DaprConsumer {
    /// Starts it on `topics` of `env`'s streams and waits until it reads (its groups exist).
    pub async fn start(env: &TestEnv, topics: &[&'static str], settings: &DaprSettings) -> Self {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let log = env.process_log_path(&format!("dapr.{}", topics.join("+")));
        std::fs::create_dir_all(log.parent().expect("log directory")).expect("log directory");
        let mut child = Command::new(dev_binary())
            .arg("dapr-consumer")
            .args(["--consumer-id", settings.consumer_id])
            .args(["--concurrency", &settings.concurrency.to_string()])
            .args(["--redeliver-interval", &ms(settings.redeliver_interval)])
            .args(["--processing-timeout", &ms(settings.processing_timeout)])
            .args(["--handler-delay", &ms(settings.handler_delay)])
            .env("REDIS_URL", &env.redis_url)
            .env("DATABASE_URL", &env.database_url)
            .env("STREAM", &env.stream.stream)
            .env("TOPICS", topics.join(","))
            .env(
                "PAYMENT_CONFIRMED_STREAM",
                stream_key(env, "payment.confirmed"),
            )
            .env("PAYMENT_FAILED_STREAM", stream_key(env, "payment.failed"))
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("order-worker-dev dapr-consumer starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(DEADLINE, lines.next_line()).await;
        let line = ready.expect("reading within the deadline").expect("stdout");
        assert!(
            line.as_deref().is_some_and(|l| l.starts_with("reading ")),
            "dapr-consumer on {topics:?} did not start: {line:?}"
        );
        // Its first read on each stream makes it a consumer there.
        for topic in topics {
            let key = stream_key(env, topic);
            eventually(&format!("dapr-consumer reads {key}"), async || {
                consumers_on(env, &key)
                    .await
                    .iter()
                    .any(|name| name == settings.consumer_id)
            })
            .await;
        }
        Self {
            child,
            topics: topics.to_vec(),
        }
    }

    /// SIGTERM, as a disabled subscription stops its sidecar: exits 0.
    pub async fn stop(mut self) {
        let status = terminate(&mut self.child).await;
        assert_eq!(
            status.code(),
            Some(0),
            "dapr-consumer after SIGTERM: {status}"
        );
    }

    /// SIGKILLs it while it holds entries of `topic`'s stream (see [`kill_holding`]).
    pub async fn kill_holding(mut self, env: &TestEnv, topic: &str, consumer_id: &str) -> usize {
        kill_holding(&mut self.child, env, &[topic], consumer_id).await
    }
}

/// SIGKILLs `child` while `consumer` holds entries on the streams of `topics`: frozen
/// (SIGSTOP) until a look at the pending lists finds some under its name, so that what is seen
/// is what it held at the kill, not luck. Returns how many.
pub async fn kill_holding(
    child: &mut Child,
    env: &TestEnv,
    topics: &[&str],
    consumer: &str,
) -> usize {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        signal(child, "-STOP");
        let mut held = 0;
        for topic in topics {
            held += pending_for_on(env, &stream_key(env, topic), consumer).await;
        }
        if held > 0 {
            kill(child).await;
            return held;
        }
        signal(child, "-CONT");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{consumer} held nothing of {topics:?} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The consumers of the test's group on the stream `key` (none while the group does not exist).
pub async fn consumers_on(env: &TestEnv, key: &str) -> Vec<String> {
    let reply: redis::RedisResult<redis::streams::StreamInfoConsumersReply> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(key)
        .arg(&env.stream.group)
        .query_async(&mut env.redis.clone())
        .await;
    reply.map_or_else(
        |_| Vec::new(),
        |info| info.consumers.into_iter().map(|c| c.name).collect(),
    )
}
