//! The soak run's end: every check, the JSON of its samples and its chart.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::plan::{self, Step};
use super::sample::{self, Clock, Sample};
use super::traffic::seed_orders;
use super::verdict::{self, Window};
use super::{chart, SoakConfig};
use crate::in_order::{apply_in_order, Tables};
use crate::local_servers::{self, Servers};
use order_worker::{RedisConnection, StreamConfig};

/// Recreates `name` on the PostgreSQL server, migrates it and seeds `orders` orders
/// `pending`, as the order service would have them. Returns its URL.
pub async fn fresh_database(servers: &Servers, name: &str, orders: u64) -> anyhow::Result<String> {
    let url = local_servers::recreate_database(&servers.admin_url, name).await?;
    order_worker::run_migrations(&url, &order_worker::TableName::default()).await?;
    let mut conn = order_worker::connect_postgres(url.clone()).await?;
    seed_orders(&mut conn, orders)
        .await
        .with_context(|| format!("in {name}"))?;
    Ok(url)
}

/// The live line: elapsed, published and its rate, lag, pending, dead letters, memory, p99.
pub fn progress_line(sample: &Sample, config: &SoakConfig) -> String {
    let run_s = config.minutes * 60.0;
    let rate = sample.published as f64 / sample.at_s.max(1.0);
    let dead: u64 = sample.topics.iter().map(|t| t.dead_letters).sum();
    let p99 = sample
        .latency
        .map_or_else(|| "-".to_owned(), |l| format!("{:.0} ms", l.p99_ms));
    format!(
        "[{:>6.0}/{run_s:.0} s] published {} ({rate:.0}/s)  lag {}  pending {}  dead letters {dead}  \
         RSS ≤ {:.1} MiB ({} replicas)  p99 {p99}",
        sample.at_s,
        sample.published,
        sample.lag(),
        sample.pending(),
        sample.max_rss_mib(),
        sample.replicas.len(),
    )
}

/// What the end checks need.
pub struct End<'a> {
    pub config: &'a SoakConfig,
    pub servers: &'a Servers,
    pub database_url: &'a str,
    pub redis: RedisConnection,
    pub streams: &'a [(&'static str, StreamConfig)],
    pub steps: &'a [Step],
    pub clock: Clock,
    pub orders: u64,
    pub poison: u64,
    pub logs: Vec<PathBuf>,
}

/// The run's record, as written to soak.json.
#[derive(serde::Serialize)]
struct Report<'a> {
    minutes: f64,
    rate: u32,
    replicas: u8,
    steps: &'a [Step],
    samples: &'a [Sample],
    windows: &'a [Window],
    problems: &'a [String],
}

impl End<'_> {
    /// Runs every check, writes soak.json and soak.svg, and fails listing what did not hold.
    pub async fn check(mut self, samples: Vec<Sample>) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let windows = self.windows().await?;
        problems.extend(verdict::slow_windows(&windows));
        let warm_up = plan::warm_up(Duration::from_secs_f64(self.config.minutes * 60.0));
        let (rising, judged) = verdict::resources(&samples, self.steps, warm_up);
        problems.extend(rising);
        problems.extend(verdict::too_little_judged(judged, &windows));
        let errors = self.errors()?;
        problems.extend(
            errors
                .iter()
                .take(10)
                .map(|line| format!("ERROR line outside the outages: {line}")),
        );
        if let Some(difference) = self.in_order().await? {
            problems.push(format!(
                "the tables differ from an in-order replay of the streams: {difference}"
            ));
        }
        let last = samples.last().context("no sample was taken")?;
        let dead: u64 = last.topics.iter().map(|t| t.dead_letters).sum();
        if dead != self.poison {
            problems.push(format!(
                "{dead} entries dead-lettered, {} poison published",
                self.poison
            ));
        }
        if last.pending() > 0 || last.lag() > 0 {
            problems.push(format!(
                "left: lag {}, {} pending",
                last.lag(),
                last.pending()
            ));
        }

        let out = &self.config.out;
        let run_s = self.config.minutes * 60.0;
        let report = Report {
            minutes: self.config.minutes,
            rate: self.config.rate,
            replicas: self.config.replicas,
            steps: self.steps,
            samples: &samples,
            windows: &windows,
            problems: &problems,
        };
        let json = out.join("soak.json");
        std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let svg = out.join("soak.svg");
        let drawn = chart::svg(
            &samples,
            &windows,
            self.steps,
            samples.last().map_or(run_s, |s| s.at_s),
        )?;
        std::fs::write(&svg, drawn).with_context(|| format!("writing {}", svg.display()))?;

        let judged_windows: Vec<&Window> = windows.iter().filter(|w| !w.excused).collect();
        let worst = judged_windows
            .iter()
            .map(|w| w.latency.p99_ms)
            .fold(0.0, f64::max);
        let max_rss = samples
            .iter()
            .flat_map(|s| &s.replicas)
            .map(|r| r.rss_kib)
            .max()
            .unwrap_or(0);
        println!(
            "\nSoak over: {} samples, {} latency windows ({} judged, worst p99 {worst:.0} ms), \
             {judged} replicas judged flat, peak RSS {:.1} MiB, {dead} dead letters, {} ERROR lines \
             outside the outages.\nWrote {} and {}",
            samples.len(),
            windows.len(),
            judged_windows.len(),
            max_rss as f64 / 1024.0,
            errors.len(),
            json.display(),
            svg.display()
        );
        if !problems.is_empty() {
            bail!(
                "the soak run failed {} check(s):\n  {}",
                problems.len(),
                problems.join("\n  ")
            );
        }
        println!("Every check held: exactly once in effect (in-order replay), nothing pending, resources flat, p99 < 500 ms outside the outages, no ERROR line outside them.");
        Ok(())
    }

    /// The latency of each publishing window of the run, read once everything committed.
    async fn windows(&self) -> anyhow::Result<Vec<Window>> {
        let width = Duration::from_secs(self.config.sample_seconds);
        let mut conn = order_worker::connect_postgres(self.database_url.to_owned()).await?;
        let mut windows = Vec::new();
        let mut from = Duration::ZERO;
        while from.as_secs_f64() < self.config.minutes * 60.0 {
            let to = from + width;
            let window = sample::latency(
                &mut conn,
                self.clock.unix_ms_at(from),
                self.clock.unix_ms_at(to),
            )
            .await?;
            if let Some(latency) = window {
                let (from_s, to_s) = (from.as_secs_f64(), to.as_secs_f64());
                let excused = verdict::excused(self.steps, from_s, to_s);
                windows.push(Window {
                    from_s,
                    to_s,
                    latency,
                    excused,
                });
            }
            from = to;
        }
        Ok(windows)
    }

    /// ERROR lines of every replica's log that no outage excuses.
    fn errors(&self) -> anyhow::Result<Vec<String>> {
        let mut errors = Vec::new();
        for path in &self.logs {
            let log = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            errors.extend(
                verdict::unexcused_errors(&log, self.steps, self.clock.started_unix_ms)
                    .into_iter()
                    .map(|line| format!("{name}: {line}")),
            );
        }
        Ok(errors)
    }

    /// The first difference between the tables and what one worker applying every entry in
    /// order writes into a database of its own; `None` when they are equal.
    async fn in_order(&mut self) -> anyhow::Result<Option<String>> {
        let name = format!("{}_in_order", self.config.database);
        let url = fresh_database(self.servers, &name, self.orders).await?;
        let mut expected_conn = order_worker::connect_postgres(url).await?;
        let streams: Vec<(&str, String)> = self
            .streams
            .iter()
            .map(|(topic, s)| (*topic, s.stream.clone()))
            .collect();
        let applied = apply_in_order(&mut expected_conn, &mut self.redis, &streams).await?;
        let expected = Tables::read(&mut expected_conn).await?;
        let got =
            Tables::read(&mut order_worker::connect_postgres(self.database_url.to_owned()).await?)
                .await?;
        println!(
            "\nIn-order replay: {applied} events applied one by one; tables {:?}",
            got.counts()
        );
        Ok(got.first_difference(&expected))
    }
}
