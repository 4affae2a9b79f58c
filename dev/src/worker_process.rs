//! `order-worker run` as a child process, as the benchmark and `order-worker-dev replicas` run
//! it: the `order-worker` binary (see [`order_worker_binary`]) started with the settings an
//! operator would give a pod, awaited until it subscribed, stopped with SIGTERM like Kubernetes
//! stops a pod.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use order_worker::{
    Connections, StreamConfig, PROCESSING_EVENT, SUBSCRIBING, UPDATED_ORDER, WITHDREW_CHANGE,
};

/// How long a worker may take to subscribe before it counts as failed to start.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long a worker may take to exit after SIGTERM (its SHUTDOWN_TIMEOUT is 20 s by default).
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The environment variable naming the `order-worker` binary the children run.
pub const ORDER_WORKER_BIN: &str = "ORDER_WORKER_BIN";

/// The `order-worker` binary to run as children: `ORDER_WORKER_BIN` if set, else the
/// `order-worker` file next to the current executable (the same target directory, where
/// `cargo build --bins --workspace` puts both). Fails, saying how to build it, if it is not there.
pub fn order_worker_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(ORDER_WORKER_BIN) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{ORDER_WORKER_BIN} is {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating the current executable")?;
    let dir = exe
        .parent()
        .context("the current executable has no directory")?;
    let path = dir.join("order-worker");
    if !path.is_file() {
        // A debug order-worker-dev points at a debug build; anything else at the release one.
        let release = if dir.ends_with("debug") {
            ""
        } else {
            " --release"
        };
        bail!(
            "no order-worker binary at {} (next to {}): build it with \
             `cargo build{release} --bin order-worker`, or set {ORDER_WORKER_BIN} to its path",
            path.display(),
            exe.display()
        );
    }
    Ok(path)
}

/// The environment `order-worker run` reads, for one consumer of `stream`'s group; extra
/// settings (BATCH_SIZE, LOG_FORMAT, …) are appended by the caller.
pub fn worker_env(
    connections: &Connections,
    stream: &StreamConfig,
    consumer: &str,
) -> Vec<(String, String)> {
    let order_events = order_worker::OrderEvents::beside(&stream.stream).order_events_topic;
    let mut env: Vec<(String, String)> = [
        ("REDIS_URL", connections.redis_url.as_str()),
        ("DATABASE_URL", &connections.database_url),
        ("STREAM", &stream.stream),
        ("CONSUMER_GROUP", &stream.group),
        ("CONSUMER_NAME", consumer),
        // Several children on one machine: each gets a free port for its HTTP endpoint.
        ("HTTP_ADDR", "127.0.0.1:0"),
        // The tooling publishes fulfillment events only.
        ("TOPICS", "fulfillment.status_changed"),
        // Published beside the stream, never on the shared default key.
        ("ORDER_EVENTS_TOPIC", &order_events),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    if let Some(ca_cert) = &connections.redis_tls.redis_ca_cert {
        env.push(("REDIS_CA_CERT".to_owned(), ca_cert.display().to_string()));
    }
    env
}

/// Counts taken from a worker's log lines.
#[derive(Debug, Default)]
struct LogCounts {
    events: AtomicU64,
    transitions: AtomicU64,
    withdrawn: AtomicU64,
}

/// A running `order-worker run` child.
pub struct WorkerChild {
    /// Its consumer name, which is how the group and its log tell it apart.
    pub name: String,
    /// When it was spawned.
    pub started: Instant,
    child: Child,
    counts: Arc<LogCounts>,
    /// Reads the child's log to its end (EOF when it exits), counting and copying lines.
    forwarder: Option<JoinHandle<()>>,
}

impl WorkerChild {
    /// Starts `<program> run` (`program`: the `order-worker` binary, see
    /// [`order_worker_binary`]) with `env` and waits for its "Subscribing" line, logged just
    /// before its first read. Its log (stderr) is copied to `log` if given, else dropped.
    /// Returns the child and how long it took to subscribe.
    pub async fn spawn(
        program: &Path,
        name: &str,
        env: &[(String, String)],
        log: Option<&Path>,
    ) -> anyhow::Result<(Self, Duration)> {
        let spawned = Instant::now();
        let mut child = Command::new(program)
            .arg("run")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} run as {name}", program.display()))?;
        let mut sink = match log {
            Some(path) => Some(
                tokio::fs::File::create(path)
                    .await
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => None,
        };
        let stderr = child.stderr.take().context("worker stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let counts = Arc::new(LogCounts::default());
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let counted = counts.clone();
        let forwarder = tokio::spawn(async move {
            let mut subscribed = Some(subscribed_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(PROCESSING_EVENT) {
                    counted.events.fetch_add(1, Ordering::Relaxed);
                } else if line.contains(UPDATED_ORDER) {
                    counted.transitions.fetch_add(1, Ordering::Relaxed);
                } else if line.contains(WITHDREW_CHANGE) {
                    counted.withdrawn.fetch_add(1, Ordering::Relaxed);
                } else if line.contains(SUBSCRIBING) {
                    if let Some(tx) = subscribed.take() {
                        let _ = tx.send(());
                    }
                }
                if let Some(file) = &mut sink {
                    // A log that cannot be written only loses the copy, not the counts.
                    let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                }
            }
            if let Some(file) = &mut sink {
                let _ = file.flush().await;
            }
        });
        // The sender is dropped without sending when the child exits before subscribing.
        let subscribed = tokio::time::timeout(READY_DEADLINE, subscribed_rx).await;
        let took = spawned.elapsed();
        if !matches!(subscribed, Ok(Ok(()))) {
            let mut failed = Self {
                name: name.to_owned(),
                started: spawned,
                child,
                counts,
                forwarder: Some(forwarder),
            };
            // A child that exited (no "Subscribing" line, its log ended) is reaped in a moment.
            let exited = tokio::time::timeout(Duration::from_millis(500), failed.child.wait())
                .await
                .ok()
                .and_then(Result::ok);
            let _ = failed.child.kill().await;
            let why = exited.map_or_else(
                || format!("did not subscribe within {READY_DEADLINE:?}"),
                |status| format!("exited with {status} before subscribing"),
            );
            let see = log.map_or_else(String::new, |path| format!(" (log: {})", path.display()));
            bail!("worker {name} {why}{see}");
        }
        Ok((
            Self {
                name: name.to_owned(),
                started: spawned,
                child,
                counts,
                forwarder: Some(forwarder),
            },
            took,
        ))
    }

    /// Events it logged processing, and status changes it logged writing and withdrawing (an
    /// order recomputed for a late event), so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.counts.events.load(Ordering::Relaxed),
            self.counts.transitions.load(Ordering::Relaxed),
            self.counts.withdrawn.load(Ordering::Relaxed),
        )
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The process's peak resident set, in KiB, from /proc (Linux).
    pub fn peak_rss_kb(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("worker exited early")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/<pid>/status")
    }

    /// Sends SIGTERM and waits for the exit and the end of its log, failing unless it exits
    /// with status 0 in time: a worker that cannot stop cleanly is what a rolling restart must
    /// not hide.
    pub async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .context("running kill -TERM")?;
        }
        let status = tokio::time::timeout(STOP_DEADLINE, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "worker {} still running {STOP_DEADLINE:?} after SIGTERM",
                    self.name
                )
            })??;
        if let Some(forwarder) = self.forwarder.take() {
            // Its log ends when it exits, so the counts are final after this.
            let _ = forwarder.await;
        }
        if !status.success() {
            bail!("worker {} exited with {status} after SIGTERM", self.name);
        }
        Ok(status)
    }
}
