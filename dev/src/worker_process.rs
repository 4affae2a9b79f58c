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
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use order_worker::{
    Connections, StreamConfig, PROCESSING_EVENT, SUBSCRIBING, UPDATED_ORDER, WITHDREW_CHANGE,
};

/// How long a worker may take to subscribe before it counts as failed to start.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How often the log file of a child logging to one is looked at until it subscribed.
const LOG_POLL: Duration = Duration::from_millis(2);

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

/// Where a child's log (stderr) goes.
#[derive(Debug, Clone, Copy)]
pub enum LogTo<'a> {
    /// Through this process, which counts its lines (see [`WorkerChild::counts`]) and copies
    /// them to the file, if given; the child may wait on a full pipe while this one is busy.
    Counted(Option<&'a Path>),
    /// Straight into the file, as `2> file` would: nothing between the child and the disk that
    /// could slow it, and nothing counted.
    File(&'a Path),
}

impl LogTo<'_> {
    fn path(&self) -> Option<&Path> {
        match self {
            Self::Counted(copy) => *copy,
            Self::File(path) => Some(path),
        }
    }
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
    /// Reads the child's log to its end (EOF when it exits), counting and copying lines; none
    /// when it logs to a file.
    forwarder: Option<JoinHandle<()>>,
}

impl WorkerChild {
    /// Starts `<program> run` (`program`: the `order-worker` binary, see
    /// [`order_worker_binary`]) with `env` over its own defaults (RUST_LOG and LOG_FORMAT of
    /// this process are not passed on) and waits for its "Subscribing" line, logged just before
    /// its first read. Its log (stderr) goes where `log` says. Returns the child and how long it
    /// took to subscribe.
    pub async fn spawn(
        program: &Path,
        name: &str,
        env: &[(String, String)],
        log: LogTo<'_>,
    ) -> anyhow::Result<(Self, Duration)> {
        let spawned = Instant::now();
        let stderr = match log {
            LogTo::Counted(_) => Stdio::piped(),
            LogTo::File(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
        };
        let mut child = Command::new(program)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} run as {name}", program.display()))?;
        let counts = Arc::new(LogCounts::default());
        let (subscribed, forwarder) = match log {
            LogTo::Counted(copy) => {
                let stderr = child.stderr.take().context("worker stderr")?;
                let (subscribed, forwarder) = forward(stderr, copy, counts.clone()).await?;
                let subscribed = tokio::time::timeout(READY_DEADLINE, subscribed).await;
                (matches!(subscribed, Ok(Ok(()))), Some(forwarder))
            }
            LogTo::File(path) => {
                let subscribed = logged_subscribing(path, &mut child);
                let subscribed = tokio::time::timeout(READY_DEADLINE, subscribed).await;
                (matches!(subscribed, Ok(Ok(true))), None)
            }
        };
        let took = spawned.elapsed();
        let mut worker = Self {
            name: name.to_owned(),
            started: spawned,
            child,
            counts,
            forwarder,
        };
        if !subscribed {
            let see = log
                .path()
                .map_or_else(String::new, |path| format!(" (log: {})", path.display()));
            bail!("worker {name} {}{see}", worker.not_subscribed().await);
        }
        Ok((worker, took))
    }

    /// Why a child never subscribed, once it is killed: it exited (no "Subscribing" line, its
    /// log ended; reaped in a moment), or it kept running past the deadline.
    async fn not_subscribed(&mut self) -> String {
        let exited = tokio::time::timeout(Duration::from_millis(500), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        let _ = self.child.kill().await;
        exited.map_or_else(
            || format!("did not subscribe within {READY_DEADLINE:?}"),
            |status| format!("exited with {status} before subscribing"),
        )
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

/// Reads a child's log (`stderr`) to its end (EOF when it exits), counting lines into `counts`
/// and copying them to `copy` if given. Returns what says it subscribed (dropped unsent if it
/// exits before), and the reading task.
async fn forward(
    stderr: ChildStderr,
    copy: Option<&Path>,
    counts: Arc<LogCounts>,
) -> anyhow::Result<(oneshot::Receiver<()>, JoinHandle<()>)> {
    let mut sink = match copy {
        Some(path) => Some(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    let mut lines = BufReader::new(stderr).lines();
    let (subscribed_tx, subscribed_rx) = oneshot::channel();
    let forwarder = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(PROCESSING_EVENT) {
                counts.events.fetch_add(1, Ordering::Relaxed);
            } else if line.contains(UPDATED_ORDER) {
                counts.transitions.fetch_add(1, Ordering::Relaxed);
            } else if line.contains(WITHDREW_CHANGE) {
                counts.withdrawn.fetch_add(1, Ordering::Relaxed);
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
    Ok((subscribed_rx, forwarder))
}

/// Whether the child logged its "Subscribing" line to the file `log` (true) or exited first
/// (false). The child writes the file itself, so nothing wakes this: it looks every few
/// milliseconds.
async fn logged_subscribing(log: &Path, child: &mut Child) -> anyhow::Result<bool> {
    loop {
        // Looked at before the log, so a line written just before exiting is still seen.
        let exited = child.try_wait()?.is_some();
        let written = tokio::fs::read(log)
            .await
            .with_context(|| format!("reading {}", log.display()))?;
        if String::from_utf8_lossy(&written).contains(SUBSCRIBING) {
            return Ok(true);
        }
        if exited {
            return Ok(false);
        }
        tokio::time::sleep(LOG_POLL).await;
    }
}
