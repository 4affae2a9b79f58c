//! The worker as operators run it: `order-worker run` processes (one or several replicas in one
//! group) draining the backlog. Measures how soon each is ready, the drain rate, and peak RSS.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::workload::Workload;

/// How long a worker may take to subscribe before the benchmark gives up.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// What one drain measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drain {
    pub replicas: usize,
    pub batch_size: u32,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Slowest replica, from spawn to its first read.
    pub ready_ms: f64,
    /// Largest peak resident set of the replicas (VmHWM).
    pub peak_rss_mb: f64,
}

/// Drains the published backlog with `replicas` worker processes at `batch_size`, then stops
/// them with SIGTERM.
pub async fn drain(
    workload: &mut Workload,
    replicas: usize,
    batch_size: u32,
) -> anyhow::Result<Drain> {
    let mut workers = Vec::new();
    let mut ready = Duration::ZERO;
    for n in 0..replicas {
        let (child, took) = spawn_ready(workload, &format!("bench-{n}"), batch_size).await?;
        ready = ready.max(took);
        workers.push(child);
    }
    // Every replica is reading once the last one subscribed; the clock starts there.
    let started = Instant::now();
    let drained = workload.wait_drained().await?;
    let seconds = drained.duration_since(started).as_secs_f64();
    let mut peak_rss_kb = 0;
    for worker in &mut workers {
        peak_rss_kb = peak_rss_kb.max(peak_rss(worker)?);
        stop(worker).await?;
    }
    Ok(Drain {
        replicas,
        batch_size,
        events: workload.events(),
        seconds,
        events_per_second: workload.events() as f64 / seconds,
        ready_ms: ready.as_secs_f64() * 1_000.0,
        peak_rss_mb: peak_rss_kb as f64 / 1024.0,
    })
}

/// Starts `order-worker run` (this very binary) and waits for its "Subscribing" line, logged
/// just before its first read. Its further logs are read and dropped.
async fn spawn_ready(
    workload: &Workload,
    name: &str,
    batch_size: u32,
) -> anyhow::Result<(Child, Duration)> {
    let spawned = Instant::now();
    let mut command = Command::new(std::env::current_exe().context("locating order-worker")?);
    if let Some(ca_cert) = &workload.redis_tls.redis_ca_cert {
        command.env("REDIS_CA_CERT", ca_cert);
    }
    let mut child = command
        .arg("run")
        .env("REDIS_URL", &workload.redis_url)
        .env("DATABASE_URL", &workload.database_url)
        .env("STREAM", &workload.stream.stream)
        .env("CONSUMER_GROUP", &workload.stream.group)
        .env("CONSUMER_NAME", name)
        .env("BATCH_SIZE", batch_size.to_string())
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting order-worker run")?;
    let stderr = child.stderr.take().context("worker stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let subscribed = tokio::time::timeout(READY_DEADLINE, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("Subscribing to stream") {
                return Ok::<_, std::io::Error>(true);
            }
        }
        Ok(false)
    })
    .await;
    let took = spawned.elapsed();
    match subscribed {
        Ok(Ok(true)) => {}
        _ => bail!("worker {name} did not subscribe within {READY_DEADLINE:?}"),
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, took))
}

/// The process's peak resident set, in KiB, from /proc (Linux).
fn peak_rss(child: &Child) -> anyhow::Result<u64> {
    let pid = child.id().context("worker exited early")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

async fn stop(child: &mut Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    if !status.success() {
        bail!("a worker exited with {status} after SIGTERM");
    }
    Ok(())
}
