//! Test harness: every test gets its own PostgreSQL database (migrated) and its own stream
//! names on the real servers (`REDIS_URL` / `DATABASE_URL`, else the local default ports), so
//! tests run in parallel and never touch data they did not create.
#![allow(dead_code)] // each test binary uses a different part of the harness

mod cleanup;
pub mod dapr;
pub mod db;
pub mod dev;
pub mod http;
pub mod in_order;
pub mod ops;
pub mod order_events;
pub mod otlp;
pub mod payments;
pub mod process;
pub mod relay_table;
pub mod tls;
pub mod traced;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use order_worker::schema::orders;
use order_worker::FulfillmentStatus;
use order_worker::RedisConnection;
use order_worker::{shutdown_channel, ShutdownTrigger};
use order_worker::{Connections, RedisTls, StreamConfig, WorkerConfig};
use order_worker::{Progress, Worker};
use order_worker_dev::local_servers;
use order_worker_dev::publisher::{self, Format};
use tokio::sync::watch;

/// A connection to the Redis of `redis_url`: with Sentinel, to its master of now.
pub async fn connect_redis(redis_tls: &RedisTls, redis_url: &str) -> RedisConnection {
    local_servers::connect_redis(redis_tls, redis_url)
        .await
        .expect("Redis reachable (set REDIS_URL)")
}

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (in this or another process) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct TestEnv {
    pub redis_url: String,
    /// How `rediss://` checks the test Redis's certificate (the tests' own CA for TLS tests).
    pub redis_tls: RedisTls,
    pub database_url: String,
    admin_url: String,
    db_name: String,
    pub stream: StreamConfig,
    pub redis: RedisConnection,
    /// Set by [`TestEnv::cleanup`]; until then, dropping the environment (a test that panicked)
    /// removes its database and streams (see `cleanup.rs`).
    cleaned: bool,
}

impl TestEnv {
    /// A fresh, migrated database and unique stream and dead-letter names.
    pub async fn new() -> Self {
        let env = Self::unmigrated().await;
        order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
            .await
            .expect("migrations apply");
        env
    }

    /// A fresh, empty database (no migrations), for the schema tests.
    pub async fn unmigrated() -> Self {
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        Self::on(redis_url, RedisTls::default(), admin_url, None).await
    }

    /// On the given servers: `admin_url` must be allowed to create databases; with `database`,
    /// that (existing) database is used instead of a fresh one.
    pub async fn on(
        redis_url: String,
        redis_tls: RedisTls,
        admin_url: String,
        database: Option<&str>,
    ) -> Self {
        let db_name = match database {
            Some(name) => name.to_owned(),
            None => {
                let name = unique("ow_test");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin(&admin_url).await)
                    .await
                    .expect("create test database");
                name
            }
        };
        let mut database_url = url::Url::parse(&admin_url).expect("DATABASE_URL parses");
        database_url.set_path(&db_name);
        let redis = connect_redis(&redis_tls, &redis_url).await;
        Self {
            redis_url,
            redis_tls,
            database_url: database_url.to_string(),
            admin_url,
            stream: StreamConfig::for_stream(unique("test.fulfillment.status_changed")),
            db_name,
            redis,
            cleaned: false,
        }
    }

    /// `host:port` of the test's Redis and PostgreSQL, for a [`order_worker_dev::fault_proxy::FaultProxy`] in front.
    /// The test's own stream for a payment topic (`payment.confirmed`, `payment.failed`), as
    /// `Topics::stream_only` names it.
    pub fn payment_stream(&self, topic: &str) -> String {
        format!("{}.{topic}", self.stream.stream)
    }

    /// Where this test's workers publish status changes: its own key, beside its stream.
    pub fn order_events(&self) -> order_worker::OrderEvents {
        order_worker::OrderEvents::beside(&self.stream.stream)
    }

    pub fn redis_addr(&self) -> String {
        host_port(&self.redis_url, 6379)
    }

    pub fn postgres_addr(&self) -> String {
        host_port(&self.database_url, 5432)
    }

    /// Worker settings for this test's database and stream, with short reads and claims so
    /// shutdown and recovery take a moment, not minutes.
    pub fn config(&self, consumer: &str) -> WorkerConfig {
        let mut stream = self.stream.clone();
        stream.consumer = Some(consumer.to_owned());
        let mut connections = Connections::new(&self.redis_url, &self.database_url);
        connections.redis_tls = self.redis_tls.clone();
        let mut config = WorkerConfig::new(connections, stream);
        config.block_ms = 100;
        config.claim_interval_ms = 200;
        config.claim_min_idle_ms = 1_000;
        config
    }

    pub async fn db(&self) -> AsyncPgConnection {
        order_worker::connect_postgres(self.database_url.clone())
            .await
            .expect("test database reachable")
    }

    /// Inserts orders at `status`.
    pub async fn seed_orders(&self, ids: &[&str], status: &str) {
        let rows: Vec<_> = ids
            .iter()
            .map(|id| (orders::id.eq(*id), orders::status.eq(status)))
            .collect();
        diesel::insert_into(orders::table)
            .values(rows)
            .execute(&mut self.db().await)
            .await
            .expect("seed orders");
    }

    /// XADDs raw fields to the test stream; returns the entry id.
    pub async fn xadd(&self, fields: &[(String, String)]) -> String {
        publisher::publish(&mut self.redis.clone(), &self.stream.stream, fields)
            .await
            .expect("XADD")
    }

    /// Publishes a fulfillment event in `format`; returns (entry id, CloudEvent id).
    pub async fn publish(
        &self,
        order_id: &str,
        fulfillment_id: &str,
        status: FulfillmentStatus,
        format: Format,
    ) -> (String, String) {
        let event_id = uuid::Uuid::new_v4().to_string();
        let event = publisher::event(order_id, fulfillment_id, None, status, &timestamp());
        let fields = publisher::entry_fields(&self.stream.stream, &event, &event_id, format);
        (self.xadd(&fields).await, event_id)
    }

    /// Publishes each status in turn for one fulfillment (CloudEvent format).
    pub async fn publish_lifecycle(
        &self,
        order_id: &str,
        fulfillment_id: &str,
        statuses: &[FulfillmentStatus],
    ) {
        for status in statuses {
            self.publish(order_id, fulfillment_id, *status, Format::CloudEvent)
                .await;
        }
    }

    /// Seeds `count` orders (`order-000`, …) at `confirmed` and publishes every one's whole
    /// lifecycle (Dapr CloudEvents), orders interleaved step by step. Returns the order ids and
    /// the number of entries published.
    pub async fn seed_lifecycles(&self, count: usize) -> (Vec<String>, u64) {
        self.seed_lifecycles_from(0, count).await
    }

    /// [`TestEnv::seed_lifecycles`] for orders `first..first + count`, so a test can keep
    /// feeding new orders while workers run.
    pub async fn seed_lifecycles_from(&self, first: usize, count: usize) -> (Vec<String>, u64) {
        let orders: Vec<String> = (first..first + count)
            .map(|i| format!("order-{i:03}"))
            .collect();
        let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
        self.seed_orders(&ids, "confirmed").await;
        let mut pipe = redis::pipe();
        for status in FulfillmentStatus::LIFECYCLE {
            for order in &orders {
                let event =
                    publisher::event(order, &format!("f-{order}"), None, status, &timestamp());
                let id = uuid::Uuid::new_v4().to_string();
                let fields =
                    publisher::entry_fields(&self.stream.stream, &event, &id, Format::CloudEvent);
                pipe.cmd("XADD")
                    .arg(&self.stream.stream)
                    .arg("*")
                    .arg(fields)
                    .ignore();
            }
        }
        let _: () = pipe
            .query_async(&mut self.redis.clone())
            .await
            .expect("XADD lifecycles");
        (
            orders.clone(),
            (orders.len() * FulfillmentStatus::LIFECYCLE.len()) as u64,
        )
    }

    /// The end state after [`TestEnv::seed_lifecycles`] was consumed, exactly: every order
    /// delivered, three history rows each (none missing, none twice), nothing pending.
    pub async fn assert_all_delivered(&self, orders: &[String]) {
        assert_eq!(
            self.history_count().await,
            3 * orders.len() as i64,
            "history rows"
        );
        let mut conn = self.db().await;
        let delivered: i64 = orders::table
            .filter(orders::status.eq("delivered"))
            .count()
            .get_result(&mut conn)
            .await
            .expect("count delivered");
        assert_eq!(delivered, orders.len() as i64, "orders delivered");
        assert_eq!(self.pending().await, 0, "nothing pending");
    }

    /// Starts a worker in this process, as `order-worker run` does.
    pub async fn spawn_worker(&self, consumer: &str) -> RunningWorker {
        self.spawn_worker_with(self.config(consumer)).await
    }

    pub async fn spawn_worker_with(&self, config: WorkerConfig) -> RunningWorker {
        let worker = Worker::start(config).await.expect("worker starts");
        let progress = worker.progress();
        let (trigger, stop) = shutdown_channel();
        let task = tokio::spawn(worker.run(stop));
        RunningWorker {
            trigger,
            task,
            progress,
        }
    }

    /// Entries pending in the group (XPENDING summary count).
    pub async fn pending(&self) -> usize {
        let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(&self.stream.stream)
            .arg(&self.stream.group)
            .query_async(&mut self.redis.clone())
            .await
            .expect("XPENDING");
        reply.count()
    }

    /// The dead-letter stream's entries, as field maps (values decoded lossily), oldest first.
    pub async fn dead_letters(&self) -> Vec<HashMap<String, String>> {
        self.entries_of(&self.stream.dead_letter_stream()).await
    }

    /// The entries of the stream `key`, as field maps (values decoded lossily), oldest first.
    pub async fn entries_of(&self, key: &str) -> Vec<HashMap<String, String>> {
        self.raw_entries_of(key)
            .await
            .into_iter()
            .map(|(_, fields)| {
                let lossy =
                    |(k, v): (String, Vec<u8>)| (k, String::from_utf8_lossy(&v).into_owned());
                fields.into_iter().map(lossy).collect()
            })
            .collect()
    }

    /// The entries of the stream `key` as Redis holds them: (id, fields in order), oldest first.
    pub async fn raw_entries_of(&self, key: &str) -> Vec<(String, Vec<(String, Vec<u8>)>)> {
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis.clone())
            .await
            .expect("XRANGE");
        let field = |pair: &[Vec<u8>]| {
            (
                String::from_utf8_lossy(&pair[0]).into_owned(),
                pair[1].clone(),
            )
        };
        entries
            .into_iter()
            .map(|(id, flat)| (id, flat.chunks(2).map(field).collect()))
            .collect()
    }
}

/// A worker task started by the harness.
pub struct RunningWorker {
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub progress: watch::Receiver<Progress>,
}

impl RunningWorker {
    /// Waits until the worker has consumed at least `n` entries, failing after [`DEADLINE`].
    pub async fn wait_consumed(&mut self, n: u64) -> Progress {
        self.wait_for(|p| p.consumed >= n).await
    }

    pub async fn wait_for(&mut self, condition: impl FnMut(&Progress) -> bool) -> Progress {
        let reached = tokio::time::timeout(DEADLINE, self.progress.wait_for(condition))
            .await
            .map(|progress| progress.map(|progress| *progress));
        match reached {
            Ok(Ok(progress)) => progress,
            _ => panic!(
                "condition not reached within {DEADLINE:?}; progress: {:?}",
                *self.progress.borrow()
            ),
        }
    }

    /// Triggers shutdown and waits for the worker to return.
    pub async fn stop(self) -> Progress {
        self.trigger.trigger();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("worker stops in time")
            .expect("worker task did not panic")
            .expect("worker returns Ok");
        *self.progress.borrow()
    }
}

/// Polls `check` until it returns true, failing after [`DEADLINE`].
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not true within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection to the server's admin database, as the binary connects (TLS, `sslmode`).
async fn admin(admin_url: &str) -> AsyncPgConnection {
    order_worker::connect_postgres(admin_url.to_owned())
        .await
        .expect("PostgreSQL reachable (set DATABASE_URL)")
}

fn host_port(url: &str, default_port: u16) -> String {
    let url = url::Url::parse(url).expect("URL");
    format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(default_port)
    )
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
