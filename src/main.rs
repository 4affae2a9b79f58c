//! The `order-worker` command line: `run`, `migrate`, `preflight`, and the operator commands `pending`,
//! `dead-letter`, `trim`, `replay` and `outbox`. The demo, the benchmark and the replicas run are
//! `order-worker-dev`'s (`dev/`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use order_worker::{ops, LogFormat, MigrateConfig, WorkerConfig};

/// Consumes Dapr's `fulfillment.status_changed` Redis stream in a consumer group shared by all
/// replicas, applies each event to the orders in PostgreSQL exactly once in effect, and acks it
/// only after the transaction committed. Undecodable entries go to a dead-letter stream.
///
/// Every flag can also be set by the environment variable shown next to it.
#[derive(Parser)]
#[command(name = "order-worker", version, propagate_version = true, after_help = EXIT_STATUS)]
struct Cli {
    /// Log format: `json` for log collectors, `text` for people [default: json for `run` and
    /// `migrate`, text for the commands that print for a person]. Level: RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the stream until SIGTERM/SIGINT (a second signal exits at once).
    #[command(after_help = order_worker::TRACING_HELP)]
    Run(Box<WorkerConfig>),
    /// Apply the embedded database migrations (safe when several replicas run it at once).
    Migrate(MigrateConfig),
    /// Before the cut-over from Dapr: read the live streams and the database, with the
    /// worker's own settings, and say whether `run` will understand them.
    ///
    /// Per stream: its length and first/last entries, its consumer groups and their consumers,
    /// which group is Dapr's (a consumer named as its group) and whether CONSUMER_GROUP is that
    /// group, and what `run` would do with it (if it would create a new group and replay the
    /// stream while Dapr's pending entries are never taken over: a red line with the setting to
    /// use). Then a rehearsal: the newest --sample entries and every entry Dapr holds pending go
    /// through the worker's own decoder and rules in a transaction that is rolled back: how many
    /// would apply, be duplicate, stale, ignored or dead-lettered (by reason, with an example),
    /// which orders the database lacks, and which payload fields the worker ignores. Then the
    /// database: migrations applied, the orders table accepted, the outbox.
    ///
    /// Read-only: never creates a group, never reads as a consumer, never acks, commits nothing.
    /// Exit status 0 when ready, 1 when anything would go wrong (each reason on its own line),
    /// 2 for a wrong command line.
    Preflight(ops::preflight::PreflightArgs),
    /// List what is consumed, as Dapr's /dapr/subscribe did: each topic of TOPICS with its
    /// stream, group, dead-letter stream, lag and pending count.
    Subscriptions(ops::subscriptions::SubscriptionsArgs),
    /// Show the group's backlog: stream length, lag, last delivered id, pending entries per
    /// consumer (pod), the oldest pending entries, and the dead-letter count.
    Pending(ops::inspect::PendingArgs),
    /// Look at the dead-letter stream (list, show) and delete old dead letters (purge).
    DeadLetter(ops::dead_letter::DeadLetterArgs),
    /// Delete the stream entries every consumer group is done with (XTRIM MINID below the
    /// oldest entry any group has pending or not yet delivered), but keep --keep (default 7
    /// days) of history for replay; never an unacked one.
    Trim(ops::trim::TrimArgs),
    /// Run a range of the stream through decode → apply again (idempotent; --dry-run writes
    /// nothing), or move dead letters back to the stream after a fix (--dead-letter).
    Replay(ops::replay::ReplayArgs),
    /// Show the status changes waiting in the outbox to be published (orders.order.status_changed):
    /// rows waiting and held, the oldest one's age, which replica relays, and the oldest rows.
    ///
    /// Look here when subscribers stop seeing status changes, or the outbox gauges grow. Rows
    /// waiting grow while Redis refuses writes (down, out of memory, read-only replica) or no
    /// replica relays: the relay is the one session holding its PostgreSQL advisory lock, and
    /// nobody holds it while no worker runs, none reaches PostgreSQL, or ORDER_EVENTS=off. A held
    /// row is one Redis refused for good (its reason shown); it stops its order's later events,
    /// which wait behind it. Reads PostgreSQL only (DATABASE_URL), never Redis, and changes
    /// nothing; nobody relaying is reported, not an error.
    Outbox(ops::outbox::OutboxArgs),
    /// Print a shell completion script (`order-worker completions bash >
    /// /etc/bash_completion.d/order-worker`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (`order-worker man > order-worker.1`), or write one page per command
    /// into a directory.
    Man {
        /// Write order-worker.1 and order-worker-<command>.1 here instead of printing.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// The exit statuses, in `--help` and the man page.
const EXIT_STATUS: &str = "Exit status: 0 done (also when the reader of the output closes it \
early, as with `| head`); 1 failed (the error is logged on stderr); 2 the command line is wrong \
(unknown flag, bad value); 130 `run` stopped at once by a second SIGTERM/SIGINT.";

/// `order-worker completions <shell>`: rendered in memory first, because clap_complete panics
/// when its writer fails (a closed pipe).
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "order-worker", &mut script);
    ops::output::write_stdout(&script)
}

/// `order-worker man`: the top-level page on stdout, or every command's page in `out_dir`.
fn man(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match out_dir {
        Some(dir) => clap_mangen::generate_to(Cli::command(), &dir)
            .with_context(|| format!("writing the man pages into {}", dir.display())),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            ops::output::write_stdout(&page)
        }
    }
}

/// How long a command other than `run` waits for its last spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that print for a person log only warnings, as text.
    let interactive = !matches!(cli.command, Command::Run(_) | Command::Migrate(_));
    let (format, level) = if interactive {
        (LogFormat::Text, "warn")
    } else {
        (LogFormat::Json, "info")
    };
    let telemetry = match order_worker::init_telemetry(cli.log_format.unwrap_or(format), level) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("order-worker: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    // The last spans go out within SHUTDOWN_TIMEOUT for `run` (it bounds the pod's exit).
    let flush_within = match &cli.command {
        Command::Run(config) => config.shutdown_timeout,
        _ => FLUSH_TIMEOUT,
    };
    let result = match cli.command {
        Command::Run(config) => order_worker::run(*config).await,
        Command::Migrate(config) => order_worker::migrate(config).await,
        Command::Subscriptions(args) => ops::subscriptions::run(args).await,
        Command::Pending(args) => ops::inspect::run(args).await,
        Command::DeadLetter(args) => ops::dead_letter::run(args).await,
        Command::Trim(args) => ops::trim::run(args).await,
        Command::Replay(args) => ops::replay::run(args).await,
        Command::Outbox(args) => ops::outbox::run(args).await,
        Command::Preflight(args) => ops::preflight::run(args).await,
        Command::Completions { shell } => completions(shell),
        Command::Man { out_dir } => man(out_dir),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        // What was read of the output is all its reader wanted, as with `grep … | head`.
        Err(error) if ops::output::is_output_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.finish(flush_within).await;
    code
}
