//! Where the commands' output goes, as a Unix tool's does: stdout written through one lock with
//! its errors returned (`println!` panics when the reader is gone: `… | head`), and progress on
//! stderr only when a person watches it.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The reader of stdout went away (`order-worker pending | head -3`): what it wanted was
/// printed, so `main` ends the command quietly with status 0, as `grep` and `ls` do. Its own
/// type, so a broken pipe to Redis or PostgreSQL is never mistaken for it.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct OutputClosed;

/// Writes `bytes` to stdout and flushes; a closed pipe is [`OutputClosed`].
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(error) => Err(anyhow::Error::new(error).context("writing to stdout")),
    }
}

/// Whether `error` is only that stdout's reader went away.
pub fn is_output_closed(error: &anyhow::Error) -> bool {
    error.downcast_ref::<OutputClosed>().is_some()
}

/// An instant as people and scripts read times: RFC 3339, UTC, to the millisecond. Every
/// command prints times this way.
pub fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`rfc3339`] of `ms` since the epoch (a stream id's time); past what a date can hold, the
/// number itself.
pub fn rfc3339_ms(ms: u64) -> String {
    let time = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis);
    time.map_or_else(|| format!("{ms} ms"), rfc3339)
}

/// A progress bar over `total` items on stderr: done/total, rate and ETA. Hidden when stderr is
/// no terminal (a pipe, a log file, a test) or `quiet` (`--json`: a script runs it), so what
/// those read never changes.
pub fn bar(total: u64, unit: &str, quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template =
        format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{rate}}, ETA {{eta}})");
    let style = ProgressStyle::with_template(&template)
        .expect("a valid template")
        // Whole items per second: indicatif's own `per_sec` shows four decimals.
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            },
        )
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar
}

/// A spinner on stderr for one step whose progress cannot be measured (a single `XTRIM`),
/// under the same conditions as [`bar`].
pub fn spinner(message: String, quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.set_message(message);
    // Ticks from its own thread: the step it stands for blocks on one reply.
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
