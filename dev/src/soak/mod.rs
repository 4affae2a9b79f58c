//! `order-worker-dev soak`: the first hours of a deployment, proven before deploying. N
//! `order-worker run` replicas in one group consume all three topics for `--minutes` while
//! events arrive at `--rate` (0.1 % of them poison), with a rolling restart every few minutes
//! and one PostgreSQL and one Redis outage (the replicas reach both through a fault proxy that
//! cuts every connection; publishers and the soak itself go on unhindered). Every
//! `--sample-seconds` it reads each replica's memory, descriptors and sockets, the groups' lag
//! and pending, and the XADD → COMMIT latency, and shows them on one line.
//!
//! At the end ([`check`]): the tables equal an in-order replay of the streams (every event
//! applied exactly once in effect), every poison entry dead-lettered, nothing pending, memory
//! and descriptors flat past warm-up, p99 < 500 ms in every window outside the outages, and no
//! ERROR line outside them. It writes `soak.json` (the samples) and `soak.svg` (the chart).

mod chart;
mod check;
pub mod feed;
mod plan;
mod sample;
pub mod traffic;
mod verdict;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::Mutex;

use crate::fault_proxy::FaultProxy;
use crate::local_servers::{self, ServerUrls};
use crate::replicas::{Fleet, FleetSettings, ReplicaSet};
use order_worker::{Connections, RedisConnection, StreamConfig};
use plan::{Action, Step};
use sample::{Clock, Sample};

/// `order-worker-dev soak` settings. Without URLs it uses the local default ports, else
/// private servers, like the demo.
#[derive(Clone, Debug, clap::Args)]
pub struct SoakConfig {
    #[command(flatten)]
    pub servers: ServerUrls,
    /// How long to run, in minutes (fractions allowed; up to 24 hours).
    #[arg(long, default_value_t = 10.0, value_parser = minutes)]
    pub minutes: f64,
    /// Events published per second, over the three topics.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub rate: u32,
    /// How many replicas (worker processes) to run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub replicas: u8,
    /// A rolling restart every this many minutes (0: none); one at 15 % of the run when the
    /// run is shorter. None overlaps an outage.
    #[arg(long, default_value_t = 5.0, value_parser = minutes_or_zero)]
    pub restart_every: f64,
    /// How long each outage (PostgreSQL at 30 % of the run, Redis at 60 %) lasts, in seconds
    /// [default: a twentieth of the run, 2 to 5 s].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub outage_seconds: Option<u64>,
    /// How often to sample, in seconds; also the width of the latency windows.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub sample_seconds: u64,
    /// BATCH_SIZE of every replica.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Where soak.json, soak.svg and the replicas' logs go (created if missing).
    #[arg(long, default_value = "target/soak")]
    pub out: PathBuf,
    /// The database it (re)creates on that server (and `<database>_in_order` for the check).
    #[arg(long, default_value = "order_worker_soak")]
    pub database: String,
    /// The prefix of its streams: `<prefix>.<topic>` (deleted and recreated at start).
    #[arg(long, default_value = "soak")]
    pub stream_prefix: String,
    /// Start private servers even when local ones answer.
    #[arg(long, hide = true)]
    pub private_servers: bool,
}

fn minutes(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(m) if m > 0.0 && m <= 1440.0 => Ok(m),
        _ => Err(format!("{value}: minutes above 0, up to 1440 (24 hours)")),
    }
}

fn minutes_or_zero(value: &str) -> Result<f64, String> {
    if value.parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    minutes(value)
}

/// The run's subscriptions: (topic, its stream) for all three topics, in one group.
fn streams(prefix: &str) -> Vec<(&'static str, StreamConfig)> {
    traffic::TOPICS
        .iter()
        .map(|topic| {
            (
                *topic,
                StreamConfig::for_stream(format!("{prefix}.{topic}")),
            )
        })
        .collect()
}

/// Runs the soak; fails, listing every check that did not hold, unless all did.
pub async fn run(config: SoakConfig, order_worker: &Path) -> anyhow::Result<()> {
    let run = Duration::from_secs_f64(config.minutes * 60.0);
    let steps = plan::schedule(
        run,
        Duration::from_secs_f64(config.restart_every * 60.0),
        config
            .outage_seconds
            .map_or_else(|| plan::outage(run), Duration::from_secs),
    );
    let total = (run.as_secs_f64() * f64::from(config.rate)) as u64;
    let orders = traffic::Traffic::orders_for(total);
    let streams = streams(&config.stream_prefix);
    std::fs::create_dir_all(config.out.join("logs"))
        .with_context(|| format!("creating {}", config.out.display()))?;

    let servers = config.servers.find(config.private_servers).await?;
    if !servers.redis_url.starts_with("redis://") {
        bail!(
            "the soak runs against one Redis server over plain redis:// (its outage is a TCP \
             proxy in front of it), not {}",
            servers.redis_url.split("://").next().unwrap_or("?")
        );
    }
    let database_url = check::fresh_database(&servers, &config.database, orders).await?;
    let connections = servers.connections(&database_url);
    let mut redis =
        local_servers::connect_redis(&connections.redis_tls, &connections.redis_url).await?;
    let mut del = redis::cmd("DEL");
    for (_, stream) in &streams {
        del.arg(&stream.stream).arg(stream.dead_letter_stream());
    }
    let () = del.query_async(&mut redis).await?;

    // The replicas reach both servers through proxies, which the outages cut.
    let postgres = FaultProxy::start(&host_port(&database_url)?).await?;
    let redis_proxy = FaultProxy::start(&host_port(&connections.redis_url)?).await?;
    let mut proxied = connections.clone();
    proxied.database_url = postgres.url_for(&database_url)?;
    proxied.redis_url = redis_proxy.url_for(&connections.redis_url)?;
    let key_of = |topic: &str| format!("{}.{topic}", config.stream_prefix);
    let fleet = Mutex::new(Fleet::new(FleetSettings {
        order_worker: order_worker.to_owned(),
        connections: proxied,
        streams: streams.iter().map(|(_, s)| s.clone()).collect(),
        batch_size: config.batch_size,
        extra_env: vec![
            ("TOPICS".to_owned(), traffic::TOPICS.join(",")),
            (
                "PAYMENT_CONFIRMED_STREAM".to_owned(),
                key_of(traffic::CONFIRMED),
            ),
            ("PAYMENT_FAILED_STREAM".to_owned(), key_of(traffic::FAILED)),
        ],
        log_dir: config.out.join("logs"),
    }));
    {
        let first = ReplicaSet::new();
        let mut fleet = fleet.lock().await;
        for _ in 0..config.replicas {
            fleet.start(&first).await?;
        }
    }
    println!(
        "\nSoak: {} replicas, {:.1} min at {} events/s ({total} events, {orders} orders seeded), \
         sampled every {} s; steps:",
        config.replicas, config.minutes, config.rate, config.sample_seconds
    );
    for step in &steps {
        println!(
            "  at {:>6.0} s: {:?} {}",
            step.at.as_secs_f64(),
            step.action,
            seconds(step.length)
        );
    }

    let clock = Clock::start();
    let fed = feed::Fed::default();
    let feeding = feed::feed(redis.clone(), key_of, config.rate, total, &fed);
    let faults = Faults {
        postgres: &postgres,
        redis: &redis_proxy,
    };
    let stepping = faults.follow(&steps, &clock, &fleet, redis.clone());
    let sampler = Sampler {
        config: &config,
        connections: &connections,
        streams: &streams,
        clock,
        fleet: &fleet,
        running: Default::default(),
        fed: &fed,
        redis: redis.clone(),
        db: Mutex::new(order_worker::connect_postgres(database_url.clone()).await?),
    };
    let sampling = sampler.until(run);
    let worked = tokio::try_join!(feeding, stepping, sampling);
    let drained = match worked {
        Ok(((), (), samples)) => sampler.drain(samples).await,
        Err(error) => Err(error),
    };
    let stopped = fleet.lock().await.stop_all(&mut redis.clone()).await;
    let samples = match (drained, stopped) {
        (Ok(samples), Ok(())) => samples,
        (Err(run), Err(stop)) => bail!("{run:#}; stopping the replicas failed too: {stop:#}"),
        (Err(error), Ok(())) | (Ok(_), Err(error)) => return Err(error),
    };
    let logs = fleet.lock().await.logs();
    let end = check::End {
        config: &config,
        servers: &servers,
        database_url: &database_url,
        redis,
        streams: &streams,
        steps: &steps,
        clock,
        orders,
        poison: fed.poison.load(std::sync::atomic::Ordering::Relaxed),
        logs,
    };
    end.check(samples).await
}

fn seconds(length: Duration) -> String {
    if length.is_zero() {
        String::new()
    } else {
        format!("for {} s", length.as_secs())
    }
}

/// `host:port` of a server URL, for a proxy in front of it.
fn host_port(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("parsing {url}"))?;
    let host = parsed.host_str().context("a server URL without a host")?;
    let port = parsed
        .port_or_known_default()
        .unwrap_or(match parsed.scheme() {
            "postgres" | "postgresql" => 5432,
            _ => 6379,
        });
    Ok(format!("{host}:{port}"))
}

/// The outages' proxies.
struct Faults<'a> {
    postgres: &'a FaultProxy,
    redis: &'a FaultProxy,
}

impl Faults<'_> {
    /// Carries out `steps`, each at its time.
    async fn follow(
        &self,
        steps: &[Step],
        clock: &Clock,
        fleet: &Mutex<Fleet>,
        mut redis: RedisConnection,
    ) -> anyhow::Result<()> {
        for step in steps {
            tokio::time::sleep(step.at.saturating_sub(clock.elapsed())).await;
            let proxy = match step.action {
                Action::PostgresOutage => self.postgres,
                Action::RedisOutage => self.redis,
                Action::RollingRestart => {
                    println!("[{:>6.0} s] rolling restart", clock.elapsed().as_secs_f64());
                    fleet.lock().await.rolling_restart(&mut redis).await?;
                    continue;
                }
            };
            println!(
                "[{:>6.0} s] {:?}: connections cut",
                clock.elapsed().as_secs_f64(),
                step.action
            );
            proxy.cut();
            tokio::time::sleep(step.length).await;
            proxy.restore();
            println!(
                "[{:>6.0} s] {:?} over",
                clock.elapsed().as_secs_f64(),
                step.action
            );
        }
        Ok(())
    }
}

/// Reads everything every `--sample-seconds`, and shows it.
struct Sampler<'a> {
    config: &'a SoakConfig,
    connections: &'a Connections,
    streams: &'a [(&'static str, StreamConfig)],
    clock: Clock,
    fleet: &'a Mutex<Fleet>,
    /// The replicas running at the last look: name, process id, start.
    running: std::sync::Mutex<Vec<(String, u32, std::time::Instant)>>,
    fed: &'a feed::Fed,
    /// Straight to the servers, never through the proxies, opened once for the whole run.
    redis: RedisConnection,
    db: Mutex<diesel_async::AsyncPgConnection>,
}

impl Sampler<'_> {
    /// Samples until `run` has passed.
    async fn until(&self, run: Duration) -> anyhow::Result<Vec<Sample>> {
        let mut samples = Vec::new();
        let mut ticker = tokio::time::interval(Duration::from_secs(self.config.sample_seconds));
        ticker.tick().await;
        while self.clock.elapsed() < run {
            ticker.tick().await;
            samples.push(self.sample().await?);
        }
        Ok(samples)
    }

    /// Samples until every entry is delivered and acked, for at most two minutes.
    async fn drain(&self, mut samples: Vec<Sample>) -> anyhow::Result<Vec<Sample>> {
        let deadline = self.clock.elapsed() + Duration::from_secs(120);
        loop {
            let sample = self.sample().await?;
            let done = sample.lag() == 0 && sample.pending() == 0;
            samples.push(sample);
            if done {
                return Ok(samples);
            }
            if self.clock.elapsed() > deadline {
                bail!("not drained two minutes after the feed ended");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn sample(&self) -> anyhow::Result<Sample> {
        let running = {
            let mut known = self.running.lock().unwrap_or_else(|e| e.into_inner());
            // A rolling restart holds the fleet: the replicas known last are read meanwhile (a
            // stopped one is skipped, its replacement read next time).
            if let Ok(fleet) = self.fleet.try_lock() {
                *known = fleet
                    .running()
                    .into_iter()
                    .map(|(n, p, s)| (n.to_owned(), p, s))
                    .collect();
            }
            known.clone()
        };
        let topics =
            sample::topics(&mut self.redis.clone(), self.connections, self.streams).await?;
        let at = self.clock.elapsed();
        let width = Duration::from_secs(self.config.sample_seconds);
        let (from, to) = (at.saturating_sub(width * 2), at.saturating_sub(width));
        let latency = sample::latency(
            &mut *self.db.lock().await,
            self.clock.unix_ms_at(from),
            self.clock.unix_ms_at(to),
        )
        .await?;
        let sample = Sample {
            at_s: at.as_secs_f64(),
            published: self
                .fed
                .published
                .load(std::sync::atomic::Ordering::Relaxed),
            replicas: running
                .iter()
                .filter_map(|(name, pid, started)| sample::replica(name, *pid, *started))
                .collect(),
            topics,
            latency,
        };
        println!("{}", check::progress_line(&sample, self.config));
        Ok(sample)
    }
}
