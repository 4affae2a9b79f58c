//! What a soak run reads every few seconds: each replica's resident memory, descriptors and
//! sockets (from /proc), each topic's lag, pending entries and dead letters (as `order-worker
//! pending` reads them), and the XADD → COMMIT latency of the events published in the window.

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::sql_types::{BigInt, Double};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use order_worker::ops::inspect::{inspect, PendingArgs};
use order_worker::ops::OpsConfig;
use order_worker::{Connections, RedisConnection, StreamConfig};

/// One replica at one sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaSample {
    pub name: String,
    /// Seconds since it was started: the trend test skips its warm-up.
    pub age_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    /// Descriptors that are sockets: its Redis and PostgreSQL connections, its HTTP listener.
    pub sockets: u64,
}

/// One topic's group at one sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicSample {
    pub topic: &'static str,
    /// Entries not delivered yet (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    pub pending: u64,
    pub dead_letters: u64,
}

/// XADD → COMMIT of the events published in one window, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize, diesel::QueryableByName)]
pub struct Latency {
    #[diesel(sql_type = BigInt)]
    pub events: i64,
    #[diesel(sql_type = Double)]
    pub p50_ms: f64,
    #[diesel(sql_type = Double)]
    pub p99_ms: f64,
    #[diesel(sql_type = Double)]
    pub max_ms: f64,
}

/// Everything read at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Entries published so far (poison included).
    pub published: u64,
    pub replicas: Vec<ReplicaSample>,
    pub topics: Vec<TopicSample>,
    /// Of the events published in the window that ended one window before this sample (so
    /// they had a window's time to commit); filled in again at the end of the run.
    pub latency: Option<Latency>,
}

impl Sample {
    pub fn lag(&self) -> u64 {
        self.topics.iter().filter_map(|t| t.lag).sum()
    }

    pub fn pending(&self) -> u64 {
        self.topics.iter().map(|t| t.pending).sum()
    }

    /// The largest replica's resident memory: the one a memory limit would stop first.
    pub fn max_rss_mib(&self) -> f64 {
        let largest = self.replicas.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        largest as f64 / 1024.0
    }
}

/// A replica's readings from /proc; `None` if it exited meanwhile (a restart).
pub fn replica(name: &str, pid: u32, started: Instant) -> Option<ReplicaSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())?;
    let (mut fds, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        if link.to_string_lossy().starts_with("socket:") {
            sockets += 1;
        }
    }
    Some(ReplicaSample {
        name: name.to_owned(),
        age_s: started.elapsed().as_secs_f64(),
        rss_kib,
        fds,
        sockets,
    })
}

/// Each topic's group, read as `order-worker pending` reads it.
pub async fn topics(
    redis: &mut RedisConnection,
    connections: &Connections,
    streams: &[(&'static str, StreamConfig)],
) -> anyhow::Result<Vec<TopicSample>> {
    let mut topics = Vec::new();
    for (topic, stream) in streams {
        let args = PendingArgs {
            config: OpsConfig::for_connections(connections, stream),
            count: 1,
            min_idle_ms: None,
            json: false,
        };
        let inspection = inspect(redis, &args)
            .await
            .with_context(|| format!("reading the group of {}", stream.stream))?;
        topics.push(TopicSample {
            topic,
            lag: inspection.group.lag,
            pending: inspection.group.pending,
            dead_letters: inspection.dead_letter_length,
        });
    }
    Ok(topics)
}

/// XADD → COMMIT of the events whose entries were added in [`from`, `to`) (Unix
/// milliseconds): from the entry id's time (Redis's clock) to the applying transaction's
/// time in the inbox (`processed_at`, PostgreSQL's clock: the same machine's). `processed_at`
/// is when that transaction began; its COMMIT follows once the batch is written, so this
/// understates by the write's few milliseconds. `None` when no event of the window is applied.
pub async fn latency(
    conn: &mut AsyncPgConnection,
    from: i64,
    to: i64,
) -> anyhow::Result<Option<Latency>> {
    let window: Latency = diesel::sql_query(
        "SELECT count(*) AS events, \
                coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0) AS p50_ms, \
                coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0) AS p99_ms, \
                coalesce(max(ms), 0) AS max_ms \
         FROM (SELECT extract(epoch FROM processed_at)::float8 * 1000 - added AS ms \
               FROM (SELECT processed_at, split_part(stream_entry_id, '-', 1)::bigint AS added \
                     FROM processed_events) e \
               WHERE added >= $1 AND added < $2) w",
    )
    .bind::<BigInt, _>(from)
    .bind::<BigInt, _>(to)
    .get_result(conn)
    .await
    .context("reading XADD → COMMIT latencies from processed_events")?;
    Ok((window.events > 0).then_some(window))
}

/// Unix milliseconds now.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The run's clock: seconds since it started, for samples and steps alike.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub started: Instant,
    pub started_unix_ms: i64,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            started_unix_ms: unix_ms(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Unix milliseconds `offset` after the start.
    pub fn unix_ms_at(&self, offset: Duration) -> i64 {
        self.started_unix_ms + offset.as_millis() as i64
    }
}
