//! `bench --profile DIR`: where a drain's time goes, per 1,000 events. Around each drain the
//! servers' own statistics are reset and read back (PostgreSQL's `pg_stat_statements` per
//! statement, Redis' `INFO commandstats` per command), the first worker's CPU time is read from
//! /proc, and Linux `perf` samples it; `inferno` folds the samples into a flame graph
//! (`DIR/flame-<orders>.svg`) and the worker's CPU is shared out by part ([`part`]).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::process::{Child, Command};

use super::workload::Workload;

/// Sampling rate: enough samples for percentages in a few seconds' drain, and a 100,000-order
/// drain's data (call stacks copied at each sample) under 100 MB.
const PERF_HZ: &str = "199";

/// One drain's costs, in milliseconds per 1,000 events.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cost {
    pub wall_ms: f64,
    /// The first worker's CPU (user + system), then shared out by part (from perf's samples).
    pub worker_cpu_ms: f64,
    pub worker_parts: BTreeMap<String, f64>,
    /// Execution time per statement (`pg_stat_statements`, the run's database; first 80
    /// characters of the normalised query), and calls per 1,000 events.
    pub statements: Vec<Timed>,
    /// Time in Redis per command (`INFO commandstats`: the whole server).
    pub redis: Vec<Timed>,
    pub flame_graph: Option<PathBuf>,
}

/// A statement or command: its time and calls per 1,000 events.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timed {
    pub what: String,
    pub ms: f64,
    pub calls: f64,
}

/// A drain being profiled: [`start`] before the workers start, [`Profiling::finish`] once drained.
pub struct Profiling {
    dir: PathBuf,
    orders: usize,
    perf: Option<(Child, PathBuf, u32)>,
}

/// Resets the servers' statistics; fails with the setting to change when PostgreSQL does not
/// load `pg_stat_statements`.
pub async fn start(workload: &Workload, dir: &Path) -> anyhow::Result<Profiling> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut db = workload.db().await?;
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
    )
    .await
    .context(
        "resetting pg_stat_statements: the server must load it (ALTER SYSTEM SET \
                  shared_preload_libraries = 'pg_stat_statements', then restart PostgreSQL)",
    )?;
    let mut redis = workload.redis.clone();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut redis)
        .await
        .context("CONFIG RESETSTAT")?;
    Ok(Profiling {
        dir: dir.to_owned(),
        orders: workload.orders.len(),
        perf: None,
    })
}

impl Profiling {
    /// Samples the worker `pid` with `perf record` until [`Profiling::finish`].
    pub fn attach(&mut self, pid: u32) -> anyhow::Result<()> {
        let data = self.dir.join(format!("perf-{}.data", self.orders));
        let perf = Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                PERF_HZ,
                "--call-graph",
                "dwarf,16384",
                "-p",
            ])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(
                "starting perf (Debian: apt-get install linux-perf; it needs \
                      kernel.perf_event_paranoid <= 1 or root)",
            )?;
        self.perf = Some((perf, data, pid));
        Ok(())
    }

    /// Reads everything back (the worker still running) and folds perf's samples.
    pub async fn finish(self, workload: &Workload, seconds: f64) -> anyhow::Result<Cost> {
        let per = 1_000.0 / workload.events() as f64;
        let mut cost = Cost {
            wall_ms: seconds * 1_000.0 * per,
            statements: statements(&mut workload.db().await?, per).await?,
            redis: commandstats(workload, per).await?,
            ..Cost::default()
        };
        if let Some((perf, data, pid)) = self.perf {
            cost.worker_cpu_ms = cpu_ms(pid)? * per;
            stop(perf).await?;
            let folded = fold(&data)?;
            let svg = self.dir.join(format!("flame-{}.svg", self.orders));
            flame_graph(&folded, &svg)?;
            cost.flame_graph = Some(svg);
            cost.worker_parts = shares(&std::fs::read_to_string(&folded)?)
                .into_iter()
                .map(|(part, share)| (part.to_owned(), share * cost.worker_cpu_ms))
                .collect();
        }
        Ok(cost)
    }
}

/// The worker's CPU time so far (user + system, in clock ticks of 10 ms), in milliseconds.
fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (in parentheses, which may hold spaces).
    let after = &stat[stat
        .rfind(')')
        .context("no command name in /proc/<pid>/stat")?
        + 2..];
    let mut fields = after.split(' ').skip(11);
    let mut ticks = || -> anyhow::Result<u64> {
        let field = fields
            .next()
            .context("/proc/<pid>/stat too short for utime and stime")?;
        Ok(field.parse()?)
    };
    let ticks = ticks()? + ticks()?;
    Ok(ticks as f64 * 10.0)
}

async fn stop(perf: Child) -> anyhow::Result<()> {
    let pid = perf.id().context("perf exited early")?;
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = perf.wait_with_output().await?.status;
    // perf writes its data on SIGINT, then ends by it.
    let interrupted = status.signal() == Some(2) || status.code() == Some(130);
    anyhow::ensure!(
        status.success() || interrupted,
        "perf record failed: {status}"
    );
    Ok(())
}

/// `perf script | inferno-collapse-perf` into `<data>.folded`.
fn fold(data: &Path) -> anyhow::Result<PathBuf> {
    let folded = data.with_extension("folded");
    let script = std::process::Command::new("perf")
        .args(["script", "-i"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running perf script")?;
    let status = std::process::Command::new("inferno-collapse-perf")
        .stdin(script.stdout.context("perf script's output")?)
        .stdout(std::fs::File::create(&folded)?)
        .status()
        .context("running inferno-collapse-perf (cargo install inferno)")?;
    anyhow::ensure!(status.success(), "inferno-collapse-perf failed: {status}");
    Ok(folded)
}

fn flame_graph(folded: &Path, svg: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("inferno-flamegraph")
        .arg(folded)
        .stdout(std::fs::File::create(svg)?)
        .status()
        .context("running inferno-flamegraph (cargo install inferno)")?;
    anyhow::ensure!(status.success(), "inferno-flamegraph failed: {status}");
    Ok(())
}

/// What a stack of the worker was doing, by its frames (the first rule that matches wins: a
/// log line written while applying is logging).
pub fn part(stack: &str) -> &'static str {
    const RULES: &[(&str, &[&str])] = &[
        ("log writer thread", &["tracing-append"]),
        (
            "log lines (formatting)",
            &[
                "tracing_subscriber::fmt",
                "traced::log_",
                "tracing_core::event",
            ],
        ),
        (
            "spans",
            &[
                "traced::entry_span",
                "telemetry::spans",
                "tracing_subscriber::registry",
                "tracing_core::span",
                "opentelemetry",
            ],
        ),
        (
            "decode",
            &["topics::decode", "order_worker::envelope", "serde_json"],
        ),
        ("relay (outbox → Redis)", &["order_worker::outbox"]),
        (
            "PostgreSQL client",
            &["tokio_postgres", "postgres_protocol", "diesel", "store::"],
        ),
        ("Redis client", &["redis::", "order_worker::stream"]),
        ("metrics", &["metrics"]),
    ];
    RULES
        .iter()
        .find(|(_, frames)| frames.iter().any(|frame| stack.contains(frame)))
        .map_or("other (runtime, kernel, allocator)", |(part, _)| part)
}

/// Each part's share of the samples in folded stacks (`frame;frame;… count` per line).
fn shares(folded: &str) -> BTreeMap<&'static str, f64> {
    let mut samples: BTreeMap<&'static str, f64> = BTreeMap::new();
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        *samples.entry(part(stack)).or_default() += count.parse::<f64>().unwrap_or(0.0);
    }
    let total: f64 = samples.values().sum();
    samples.values_mut().for_each(|n| *n /= total.max(1.0));
    samples
}

/// The run's database's statements, slowest first.
async fn statements(db: &mut AsyncPgConnection, per: f64) -> anyhow::Result<Vec<Timed>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        query: String,
        #[diesel(sql_type = BigInt)]
        calls: i64,
        #[diesel(sql_type = Double)]
        ms: f64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 80) AS query, calls, \
         total_exec_time AS ms FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ORDER BY total_exec_time DESC LIMIT 12",
    )
    .load(db)
    .await
    .context("reading pg_stat_statements")?;
    Ok(rows
        .into_iter()
        .map(|row| Timed {
            what: row.query,
            ms: row.ms * per,
            calls: row.calls as f64 * per,
        })
        .collect())
}

/// Redis' time per command since the reset, slowest first.
async fn commandstats(workload: &Workload, per: f64) -> anyhow::Result<Vec<Timed>> {
    let mut redis = workload.redis.clone();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await?;
    let mut timed: Vec<Timed> = info
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok())
            };
            Some(Timed {
                what: name.to_owned(),
                ms: field("usec")? / 1_000.0 * per,
                calls: field("calls")? * per,
            })
        })
        .collect();
    timed.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(timed)
}

/// The costs as lines of the bench's table.
pub fn render(orders: usize, cost: &Cost) -> String {
    let mut out = format!("cost per 1,000 events, drain at {orders} orders\n");
    let mut line = |what: &str, ms: f64, calls: Option<f64>| {
        let calls = calls.map_or(String::new(), |c| format!("  ({c:.1} calls)"));
        out.push_str(&format!("  {what:<82} {ms:>8.2} ms{calls}\n"));
    };
    line("wall clock", cost.wall_ms, None);
    line("worker CPU (first replica)", cost.worker_cpu_ms, None);
    for (part, ms) in &cost.worker_parts {
        line(&format!("  {part}"), *ms, None);
    }
    for statement in &cost.statements {
        line(
            &format!("PostgreSQL: {}", statement.what),
            statement.ms,
            Some(statement.calls),
        );
    }
    for command in cost.redis.iter().take(8) {
        line(
            &format!("Redis: {}", command.what),
            command.ms,
            Some(command.calls),
        );
    }
    if let Some(svg) = &cost.flame_graph {
        out.push_str(&format!("  flame graph: {}\n", svg.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_goes_to_the_first_part_it_matches() {
        let cases = [
            (
                "tracing-append;std::io::Write::write_all;write",
                "log writer thread",
            ),
            (
                "tokio-runtime-w;order_worker::worker::traced::log_applied;serde_json::ser",
                "log lines (formatting)",
            ),
            (
                "tokio-runtime-w;order_worker::topics::decode;serde_json::de::from_slice",
                "decode",
            ),
            (
                "tokio-runtime-w;tokio_postgres::connection::Connection::poll",
                "PostgreSQL client",
            ),
            (
                "tokio-runtime-w;redis::aio::multiplexed_connection",
                "Redis client",
            ),
            (
                "tokio-runtime-w;epoll_wait",
                "other (runtime, kernel, allocator)",
            ),
        ];
        for (stack, expected) in cases {
            assert_eq!(part(stack), expected, "{stack}");
        }
    }

    #[test]
    fn a_process_cpu_time_is_read_from_proc() {
        let ms = cpu_ms(std::process::id()).expect("this process's /proc/<pid>/stat");
        assert!(ms >= 0.0 && ms.is_finite(), "{ms}");
    }

    #[test]
    fn shares_add_up_to_one() {
        let folded = "a;tokio_postgres::x 3\nb;redis::y 1\n";
        let shares = shares(folded);
        assert_eq!(shares["PostgreSQL client"], 0.75);
        assert_eq!(shares["Redis client"], 0.25);
    }
}
