//! The `order-worker` binary as tests run it: workers as real processes (`order-worker run`),
//! for tests that kill them, and the one place its command is built.

use std::process::Stdio;

use tokio::process::{Child, Command};

use super::TestEnv;

/// Settings every process worker gets on top of the test's database and stream: short reads
/// and claims, so tests wait for seconds, not minutes; an HTTP port of its own.
const FAST: [(&str, &str); 4] = [
    ("HTTP_ADDR", "127.0.0.1:0"),
    ("BLOCK_MS", "100"),
    ("CLAIM_INTERVAL_MS", "200"),
    ("CLAIM_MIN_IDLE_MS", "1000"),
];

/// The binary under test. Tests run it through [`order_worker_output`] (no test servers: `--help`
/// and the like) or [`TestEnv::command`] (everything built on it: [`TestEnv::spawn_process`],
/// [`TestEnv::order_worker`]).
pub const ORDER_WORKER: &str = env!("CARGO_BIN_EXE_order-worker");

/// `order-worker <args>` with `env` set and nothing of a test's, run to its end (blocking).
pub fn order_worker_output(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(ORDER_WORKER)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("order-worker runs")
}

impl TestEnv {
    /// `order-worker` set up for this test: `REDIS_URL` / `DATABASE_URL` as given (the test's, or a
    /// proxy's), its stream, text logs, the test's Redis CA and sentinels' password if any, and no `CONSUMER_GROUP` /
    /// `DEAD_LETTER_STREAM` from the environment that would pick another group.
    pub fn command(&self, redis_url: &str, database_url: &str) -> Command {
        let mut command = Command::new(ORDER_WORKER);
        if let Some(ca_cert) = &self.redis_tls.redis_ca_cert {
            command.env("REDIS_CA_CERT", ca_cert);
        }
        if let Some(password) = &self.redis_tls.redis_sentinel_password {
            command.env("REDIS_SENTINEL_PASSWORD", password);
        }
        command
            .env("REDIS_URL", redis_url)
            .env("DATABASE_URL", database_url)
            .env("STREAM", &self.stream.stream)
            // The fulfillment topic alone unless a test says otherwise; the payment streams are
            // the test's own too, never the shared default keys.
            .env("TOPICS", "fulfillment.status_changed")
            .env(
                "PAYMENT_CONFIRMED_STREAM",
                self.payment_stream("payment.confirmed"),
            )
            .env(
                "PAYMENT_FAILED_STREAM",
                self.payment_stream("payment.failed"),
            )
            .env("ORDER_EVENTS_TOPIC", self.order_events().order_events_topic)
            .env("LOG_FORMAT", "text")
            .env_remove("CONSUMER_GROUP")
            .env_remove("DEAD_LETTER_STREAM");
        command
    }

    /// Starts `order-worker run` as consumer `name`, with `REDIS_URL`/`DATABASE_URL` as given
    /// (a proxy's, say) and extra settings; logs go to `target/test-logs/<stream>.<name>.log`.
    pub fn spawn_process(
        &self,
        name: &str,
        redis_url: &str,
        database_url: &str,
        settings: &[(&str, &str)],
    ) -> Child {
        let path = self.process_log_path(name);
        std::fs::create_dir_all(path.parent().expect("log directory")).expect("log directory");
        let log = std::fs::File::create(path).expect("log file");
        let mut command = self.command(redis_url, database_url);
        command
            .arg("run")
            .env("CONSUMER_NAME", name)
            .envs(FAST)
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("order-worker starts")
    }

    /// Where the process `name` of this test logs.
    pub fn process_log_path(&self, name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("test-logs")
            .join(format!("{}.{name}.log", self.stream.stream))
    }

    /// What the process worker `name` logged so far.
    pub fn process_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.process_log_path(name)).expect("process log")
    }

    /// Publishes lifecycles five orders at a time until `holding` is true of the consumers'
    /// pending entries: a worker reads only while it has a free slot (two batches in flight),
    /// so one may take a whole burst and another needs the next. Returns the orders published.
    pub async fn publish_until_held(&self, holding: impl AsyncFn(&Self) -> bool) -> usize {
        let mut published = 0;
        super::eventually("the consumers hold what they cannot apply", async || {
            self.seed_lifecycles_from(published, 5).await;
            published += 5;
            holding(self).await
        })
        .await;
        published
    }

    /// Entries pending for one consumer (0 while the group does not exist yet).
    pub async fn pending_for(&self, consumer: &str) -> usize {
        let reply: redis::RedisResult<redis::streams::StreamPendingReply> = redis::cmd("XPENDING")
            .arg(&self.stream.stream)
            .arg(&self.stream.group)
            .query_async(&mut self.redis.clone())
            .await;
        let reply = match reply {
            Err(error) if error.code() == Some("NOGROUP") => return 0,
            other => other.expect("XPENDING"),
        };
        match reply {
            redis::streams::StreamPendingReply::Data(data) => data
                .consumers
                .iter()
                .find(|c| c.name == consumer)
                .map_or(0, |c| c.pending),
            _ => 0,
        }
    }
}

impl TestEnv {
    /// Whether `consumer` has joined the group (its first XREADGROUP creates it).
    pub async fn has_consumer(&self, consumer: &str) -> bool {
        let reply: redis::RedisResult<redis::streams::StreamInfoConsumersReply> =
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&self.stream.stream)
                .arg(&self.stream.group)
                .query_async(&mut self.redis.clone())
                .await;
        reply.is_ok_and(|info| info.consumers.iter().any(|c| c.name == consumer))
    }
}

/// SIGTERMs the process and waits for it to exit, failing after [`super::DEADLINE`].
pub async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    signal(child, "-TERM");
    tokio::time::timeout(super::DEADLINE, child.wait())
        .await
        .expect("exits in time after SIGTERM")
        .expect("wait")
}

/// SIGKILLs the process and reaps it, failing after [`super::DEADLINE`].
pub async fn kill(child: &mut Child) -> std::process::ExitStatus {
    signal(child, "-KILL");
    tokio::time::timeout(super::DEADLINE, child.wait())
        .await
        .expect("reaped in time after SIGKILL")
        .expect("wait")
}

/// Sends `signal` (e.g. "-TERM", "-KILL") to the process.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("process still running").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status();
    assert!(
        sent.is_ok_and(|status| status.success()),
        "kill {signal} {pid}"
    );
}
