//! Helpers for the operator-command tests: filling a stream, groups that read and ack as a
//! worker would, and running `order-worker` subcommands as an operator does.

use std::process::Output;

use order_worker::ops::OpsConfig;
use order_worker::StreamId;

use super::TestEnv;

/// How long an operator command may run in a test: far more than any takes.
const COMMAND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

impl TestEnv {
    /// Appends `n` entries to the test's stream; returns their ids, oldest first.
    pub async fn fill(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(
                self.xadd(&[("data".to_owned(), format!("{{\"n\":{i}}}"))])
                    .await,
            );
        }
        ids
    }

    /// Appends an entry at each of `millis` (ids `<ms>-0`, in the past as a stream that has
    /// existed that long holds them) to the stream `key`; returns their ids.
    pub async fn fill_at(&self, key: &str, millis: &[u64]) -> Vec<String> {
        let mut ids = Vec::new();
        for ms in millis {
            let id: String = redis::cmd("XADD")
                .arg(key)
                .arg(format!("{ms}-0"))
                .arg("data")
                .arg(format!("{{\"at\":{ms}}}"))
                .query_async(&mut self.redis.clone())
                .await
                .expect("XADD with an id");
            ids.push(id);
        }
        ids
    }

    /// Redis's clock in milliseconds, which gives `*` ids theirs.
    pub async fn redis_now_ms(&self) -> u64 {
        let (seconds, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.redis.clone())
            .await
            .expect("TIME");
        seconds * 1_000 + micros / 1_000
    }

    /// `XGROUP CREATE <stream> <group> 0`.
    pub async fn create_group(&self, group: &str) {
        self.create_group_on(&self.stream.stream, group).await;
    }

    /// [`TestEnv::create_group`] on the stream `key`.
    pub async fn create_group_on(&self, key: &str, group: &str) {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg("0")
            .query_async(&mut self.redis.clone())
            .await
            .expect("XGROUP CREATE");
    }

    /// Reads up to `count` new entries in `group` as `consumer`, without acking them; returns
    /// their ids.
    pub async fn read_as(&self, group: &str, consumer: &str, count: usize) -> Vec<String> {
        self.read_on(&self.stream.stream, group, consumer, count)
            .await
    }

    /// [`TestEnv::read_as`] on the stream `key`.
    pub async fn read_on(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Vec<String> {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut self.redis.clone())
            .await
            .expect("XREADGROUP");
        reply
            .keys
            .into_iter()
            .flat_map(|key| key.ids.into_iter().map(|entry| entry.id))
            .collect()
    }

    pub async fn ack(&self, group: &str, ids: &[String]) {
        self.ack_on(&self.stream.stream, group, ids).await;
    }

    /// [`TestEnv::ack`] on the stream `key`.
    pub async fn ack_on(&self, key: &str, group: &str, ids: &[String]) {
        let _: u64 = redis::cmd("XACK")
            .arg(key)
            .arg(group)
            .arg(ids)
            .query_async(&mut self.redis.clone())
            .await
            .expect("XACK");
    }

    /// The ids left in the test's stream, oldest first.
    pub async fn stream_ids(&self) -> Vec<String> {
        self.ids_on(&self.stream.stream).await
    }

    /// The ids left in the stream `key`, oldest first.
    pub async fn ids_on(&self, key: &str) -> Vec<String> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis.clone())
            .await
            .expect("XRANGE");
        reply.ids.into_iter().map(|entry| entry.id).collect()
    }

    /// The operator commands' settings for this test's Redis and stream.
    pub fn ops_config(&self) -> OpsConfig {
        let mut config = OpsConfig::new(self.redis_url.clone(), self.stream.clone());
        config.redis_tls = self.redis_tls.clone();
        config
    }

    /// Runs `order-worker <args>` with the test's Redis, database and stream (nothing else from the
    /// environment that would pick another group), text logs on stderr.
    pub async fn order_worker(&self, args: &[&str]) -> Output {
        self.order_worker_with(args, &[]).await
    }

    /// As [`TestEnv::order_worker`], with `settings` overriding the test's (another
    /// `DATABASE_URL`, say); an empty value removes the variable.
    pub async fn order_worker_with(&self, args: &[&str], settings: &[(&str, &str)]) -> Output {
        let mut command = self.command(&self.redis_url, &self.database_url);
        for (name, _) in settings.iter().filter(|(_, value)| value.is_empty()) {
            command.env_remove(name);
        }
        let output = command
            .args(args)
            .envs(
                settings
                    .iter()
                    .filter(|(_, value)| !value.is_empty())
                    .copied(),
            )
            .kill_on_drop(true)
            .output();
        // A hung command fails its test (and is killed) instead of hanging the suite.
        tokio::time::timeout(COMMAND_DEADLINE, output)
            .await
            .unwrap_or_else(|_| {
                panic!("order-worker {args:?} did not end within {COMMAND_DEADLINE:?}")
            })
            .expect("order-worker runs")
    }

    /// [`TestEnv::order_worker_with`] for a command given `--json`: it exits 0 and prints one
    /// JSON document, returned parsed.
    pub async fn order_worker_json(
        &self,
        args: &[&str],
        settings: &[(&str, &str)],
    ) -> serde_json::Value {
        let output = self.order_worker_with(args, settings).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{args:?}: not one JSON document: {error}"))
    }
}

pub fn id(raw: &str) -> StreamId {
    raw.parse().expect("stream id")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
