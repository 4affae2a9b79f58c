//! The binary as a Unix tool in a pipeline: when the reader of its output goes away early
//! (`order-worker pending | head`), every printing command ends with status 0 and no panic
//! text, as `grep` and `ls` do; a wrong command line exits with 2.
//!
//! Each command runs twice: once with a reader that closes the pipe before reading anything
//! (every write fails), once with one that reads a line and closes (the writer is cut off in
//! the middle, for the commands whose output is made larger than the pipe's buffer). Neither
//! gets a progress bar: those are drawn on a terminal only, which a run under `script` shows.

mod support;

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use order_worker::FulfillmentStatus;
use order_worker_dev::publisher::{self, Format};
use support::ops::stdout;
use support::process::ORDER_WORKER;
use support::TestEnv;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// How long one command may take to end after its reader went away.
const DEADLINE: Duration = Duration::from_secs(60);

/// Larger than a pipe's buffer (64 KiB on Linux) and the reader's own (8 KiB) together, so the
/// command is still writing when the reader closes.
const MORE_THAN_A_PIPE_HOLDS: usize = 128 * 1024;

/// Runs `command` with stdout going to a reader that reads `lines` lines, then closes the pipe;
/// returns the exit status and stderr.
async fn closed_after(mut command: Command, lines: usize) -> (ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("order-worker starts");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    for _ in 0..lines {
        let line = tokio::time::timeout(DEADLINE, reader.next_line())
            .await
            .expect("a line within the deadline")
            .expect("stdout readable");
        assert!(
            line.is_some(),
            "the command printed less than {lines} lines"
        );
    }
    drop(reader);
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("the command ends once its reader is gone")
        .expect("waiting for order-worker");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, stderr)
}

/// `order-worker <args>` closed at once and after its first line: status 0 and no panic text
/// both times.
async fn ends_quietly(command: impl Fn() -> Command, args: &[&str]) {
    for lines in [0, 1] {
        let mut run = command();
        run.args(args);
        let (status, stderr) = closed_after(run, lines).await;
        assert_eq!(
            status.code(),
            Some(0),
            "{args:?}, reader closed after {lines} line(s): {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
            "{args:?}, reader closed after {lines} line(s): {stderr}"
        );
        // Progress is drawn on a terminal only: a pipe gets no bar, no carriage return.
        assert!(
            !stderr.contains(['\r', '\x1b']),
            "{args:?}: progress drawn into a pipe: {stderr:?}"
        );
    }
}

/// [`ends_quietly`] for the test's Redis, database and stream, after checking that the full
/// output is larger than a pipe holds.
async fn ends_quietly_when_cut_off(env: &TestEnv, args: &[&str]) {
    let full = env.order_worker(args).await;
    assert!(full.status.success(), "{args:?}: {full:?}");
    assert!(
        full.stdout.len() > MORE_THAN_A_PIPE_HOLDS,
        "{args:?} printed only {} bytes: {}",
        full.stdout.len(),
        stdout(&full)
    );
    ends_quietly(|| env.command(&env.redis_url, &env.database_url), args).await;
}

/// XADDs `n` entries with `fields(i)` to `key` in one pipeline.
async fn xadd_many(
    env: &TestEnv,
    key: &str,
    n: usize,
    fields: impl Fn(usize) -> Vec<(String, String)>,
) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD").arg(key).arg("*").arg(fields(i)).ignore();
    }
    let _: () = pipe
        .query_async(&mut env.redis.clone())
        .await
        .expect("XADD");
}

#[tokio::test]
async fn help_completions_and_the_man_page_end_quietly() {
    let command = || Command::new(ORDER_WORKER);
    for args in [
        &["--help"][..],
        &["replay", "--help"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["man"],
    ] {
        ends_quietly(command, args).await;
    }
}

#[tokio::test]
async fn subscriptions_and_trim_end_quietly() {
    let env = TestEnv::new().await;
    let ids = env.fill(10).await;
    env.create_group(&env.stream.group).await;
    let read = env.read_as(&env.stream.group, "pod-a", 10).await;
    env.ack(&env.stream.group, &read[..5]).await;
    assert_eq!(read, ids);
    let command = || env.command(&env.redis_url, &env.database_url);
    for args in [
        &["subscriptions"][..],
        &["subscriptions", "--json"],
        &["trim", "--dry-run"],
        &["trim", "--dry-run", "--json"],
    ] {
        ends_quietly(command, args).await;
    }
    env.cleanup().await;
}

#[tokio::test]
async fn pending_ends_quietly_when_cut_off() {
    let env = TestEnv::new().await;
    let stream = env.stream.stream.clone();
    xadd_many(&env, &stream, 4_000, |i| {
        vec![("n".to_owned(), i.to_string())]
    })
    .await;
    env.create_group(&env.stream.group).await;
    env.read_as(&env.stream.group, "order-worker-7d9c4b-x2x9z", 4_000)
        .await;
    ends_quietly_when_cut_off(&env, &["pending", "--count", "4000"]).await;
    ends_quietly_when_cut_off(&env, &["pending", "--count", "4000", "--json"]).await;
    env.cleanup().await;
}

#[tokio::test]
async fn dead_letter_list_ends_quietly_when_cut_off() {
    let env = TestEnv::new().await;
    let dead_letters = env.stream.dead_letter_stream();
    xadd_many(&env, &dead_letters, 1_500, |i| {
        vec![
            ("source_id".to_owned(), format!("1700000000000-{i}")),
            ("delivery_count".to_owned(), "1".to_owned()),
            (
                "error".to_owned(),
                format!("order \"order-{i:05}\" does not exist; {}", "x".repeat(80)),
            ),
        ]
    })
    .await;
    ends_quietly_when_cut_off(&env, &["dead-letter", "list", "--count", "2000"]).await;
    ends_quietly_when_cut_off(&env, &["dead-letter", "list", "--count", "2000", "--json"]).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_replay_dry_run_ends_quietly_when_cut_off() {
    let env = TestEnv::new().await;
    let stream = env.stream.stream.clone();
    // Orders that do not exist: every event is listed as `unknown_order`, with its order id.
    xadd_many(&env, &stream, 2_000, |i| {
        let order = format!("order-that-was-never-created-in-this-database-{i:05}");
        let event = publisher::event(
            &order,
            &format!("f-{order}"),
            None,
            FulfillmentStatus::Shipped,
            &chrono::Utc::now().to_rfc3339(),
        );
        let id = uuid::Uuid::new_v4().to_string();
        publisher::entry_fields(&stream, &event, &id, Format::CloudEvent)
    })
    .await;
    ends_quietly_when_cut_off(&env, &["replay", "--from", "0", "--dry-run"]).await;
    ends_quietly_when_cut_off(&env, &["replay", "--from", "0", "--dry-run", "--json"]).await;
    // The other half: a person at a terminal sees the bar; a script's `--json` does not.
    let dry_run = ["replay", "--from", "0", "--dry-run"];
    let seen = on_a_terminal(&env, &dry_run).await;
    assert!(seen.contains(BAR), "no progress on a terminal: {seen:?}");
    let seen = on_a_terminal(&env, &[&dry_run[..], &["--json"]].concat()).await;
    assert!(!seen.contains(BAR), "progress drawn for --json: {seen:?}");
    env.cleanup().await;
}

/// What only replay's bar shows: `… entries (<rate>/s, ETA <eta>)`.
const BAR: &str = "/s, ETA ";

/// Runs `order-worker <args>` for the test with stdout and stderr on a terminal (a pseudo-terminal
/// `script` opens) and returns everything the terminal received.
async fn on_a_terminal(env: &TestEnv, args: &[&str]) -> String {
    let worker = env.command(&env.redis_url, &env.database_url);
    let settings = worker
        .as_std()
        .get_envs()
        .filter_map(|(name, value)| Some((name, value?)));
    let line = format!("{ORDER_WORKER} {}", args.join(" "));
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .envs(settings)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, output)
        .await
        .expect("ends within the deadline")
        .expect("`script` runs: install util-linux's bsdutils (apt-get install bsdutils)");
    let seen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args:?} on a terminal: {seen}");
    seen
}

#[tokio::test]
async fn a_wrong_command_line_exits_with_2() {
    for args in [
        &["no-such-command"][..],
        &["pending", "--no-such-flag"],
        &["pending", "--count", "0"],
        &["completions", "tcsh"],
    ] {
        let output = Command::new(ORDER_WORKER)
            .args(args)
            .output()
            .await
            .expect("order-worker runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("--help"),
            "{args:?}: {stderr}"
        );
    }
}
