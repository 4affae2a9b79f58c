//! `order-worker preflight`: before the cut-over, with the worker's own settings, reads the live
//! streams and the database and says whether this worker will understand them and which group
//! Dapr holds. Read-only: it never creates a group, never reads as a consumer, never acks; its
//! rehearsal applies entries in a transaction that is always rolled back.
//!
//! Each thing that would go wrong at `run` is one red line ([`Preflight::problems`]); the
//! command exits 1 when there is any.

mod groups;
mod rehearsal;
mod render;
mod streams;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use serde::Serialize;

pub use groups::{Consumer, Group, Joining};
pub use rehearsal::{DeadLetterReason, Rehearsal};
pub use render::render;
pub use streams::{EntryAge, StreamFacts};

use super::{print_report, redis_now_ms, OpsConfig};
use crate::config::{redact_url, Connections, Keyspace, StreamConfig, Subscription, Topics};
use crate::ops::outbox::Outbox;
use crate::store::Tables;
use crate::stream::RedisConnection;

/// `order-worker preflight` settings: the worker's own (same flags and variables as `run`).
#[derive(Clone, Debug, clap::Args)]
#[command(mut_arg("consumer", |arg| arg.hide(true)))]
pub struct PreflightArgs {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub stream: StreamConfig,
    #[command(flatten)]
    pub topics: Topics,
    /// How many of each stream's newest entries to rehearse (with every entry Dapr holds
    /// pending).
    #[arg(long, default_value_t = 1_000)]
    pub sample: usize,
    /// Entries larger than this (all fields, in bytes) are dead-lettered unread, as the worker
    /// does.
    #[arg(long, env = "MAX_ENTRY_BYTES", default_value_t = crate::envelope::DEFAULT_MAX_ENTRY_BYTES)]
    pub max_entry_bytes: usize,
    /// Print JSON, for scripts, instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Everything preflight found.
#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    pub streams: Vec<StreamCheck>,
    pub database: Database,
    /// What would go wrong at `run`, one line each; empty when ready.
    pub problems: Vec<String>,
}

/// One subscribed stream: what is there, and how its entries would fare.
#[derive(Debug, Clone, Serialize)]
pub struct StreamCheck {
    #[serde(flatten)]
    pub facts: StreamFacts,
    /// The setting naming the stream.
    pub setting: &'static str,
    pub rehearsal: Option<Rehearsal>,
}

/// The database as `run` would find it.
#[derive(Debug, Clone, Serialize)]
pub struct Database {
    pub url: String,
    pub orders_table: String,
    /// Why `run` would refuse to start (a migration pending, the orders table's shape), if so.
    pub not_ready: Option<String>,
    /// The outbox of order status changes, when the schema has it.
    pub outbox: Option<Outbox>,
}

impl Preflight {
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs the checks and prints them; fails (exit 1) when anything would go wrong at `run`.
pub async fn run(args: PreflightArgs) -> anyhow::Result<()> {
    let preflight = check(&args).await?;
    print_report(args.json, &preflight, || render(&preflight))?;
    match preflight.problems.len() {
        0 => Ok(()),
        n => anyhow::bail!("not ready for the cut-over: {n} problem(s), each on a line above"),
    }
}

/// Reads every stream of TOPICS and the database; fails only when it cannot read.
pub async fn check(args: &PreflightArgs) -> anyhow::Result<Preflight> {
    let keyspace = Keyspace::of(&args.connections.redis_url)?;
    let subscriptions = args.topics.subscriptions(&args.stream, keyspace)?;
    let ops = OpsConfig::for_connections(&args.connections, &args.stream);
    let mut redis = ops.connect().await?;
    let now_ms = redis_now_ms(&mut redis).await?;

    let mut pg = Postgres::open(&args.connections).await;
    let database = pg.database(&args.connections).await?;
    let mut streams = Vec::new();
    for subscription in &subscriptions {
        streams.push(check_stream(&mut redis, subscription, now_ms, args, &mut pg).await?);
    }
    let problems = problems(&streams, &database);
    Ok(Preflight {
        streams,
        database,
        problems,
    })
}

/// PostgreSQL as `run` would find it: reached or not, and its tables if its schema is current
/// (else why not).
struct Postgres {
    conn: diesel::ConnectionResult<AsyncPgConnection>,
    tables: Result<Tables, String>,
}

impl Postgres {
    async fn open(connections: &Connections) -> Self {
        let url = &connections.database_url;
        let conn = crate::store::connect(url.clone()).await;
        let tables = match &conn {
            Err(error) => Err(format!("cannot reach PostgreSQL: {error:#}")),
            Ok(_) => crate::store::migrate::ensure_current(url, &connections.orders_table)
                .await
                .map_err(|error| format!("{error:#}")),
        };
        Self { conn, tables }
    }

    /// What the report says of the database, the outbox read if the schema is current.
    async fn database(&mut self, connections: &Connections) -> anyhow::Result<Database> {
        let mut database = Database {
            url: redact_url(&connections.database_url),
            orders_table: connections.orders_table.to_string(),
            not_ready: None,
            outbox: None,
        };
        if let (Ok(conn), Ok(_)) = (&mut self.conn, &self.tables) {
            // The schema is current, so the outbox is there: not reading it is a failure to say.
            let outbox = crate::ops::outbox::read(conn, 5, true).await;
            database.outbox = Some(outbox.context("reading the outbox")?);
        }
        database.not_ready = self.tables.as_ref().err().cloned();
        Ok(database)
    }

    /// The connection and tables a rehearsal applies with, or why it cannot.
    fn for_rehearsal(&mut self) -> Result<(&mut AsyncPgConnection, &Tables), String> {
        match (&mut self.conn, &self.tables) {
            (Ok(conn), Ok(tables)) => Ok((conn, tables)),
            (_, Err(why)) => Err(format!("the database is not ready: {why}")),
            (Err(_), _) => Err("PostgreSQL cannot be reached".to_owned()),
        }
    }
}

/// What `subscription`'s stream holds and, if it exists, how its entries would fare.
async fn check_stream(
    redis: &mut RedisConnection,
    subscription: &Subscription,
    now_ms: u64,
    args: &PreflightArgs,
    pg: &mut Postgres,
) -> anyhow::Result<StreamCheck> {
    let facts = streams::read(redis, subscription, now_ms).await?;
    let rehearsal = match facts.exists {
        false => None,
        true => {
            let sample = rehearsal::Sample {
                topic: subscription.topic,
                stream: &facts.stream,
                newest: args.sample,
                dapr_groups: facts.dapr_groups(),
                max_entry_bytes: args.max_entry_bytes,
            };
            Some(rehearsal::rehearse(redis, pg.for_rehearsal(), &sample).await?)
        }
    };
    Ok(StreamCheck {
        setting: crate::config::stream_setting(subscription.topic),
        facts,
        rehearsal,
    })
}

/// The red lines: each thing that would go wrong at `run`, with what to do.
fn problems(streams: &[StreamCheck], database: &Database) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(why) = &database.not_ready {
        problems.push(format!("database: `run` would refuse to start: {why}"));
    }
    if let Some(held) = database.outbox.as_ref().map(|outbox| outbox.held) {
        if held > 0 {
            problems.push(format!(
                "database: {held} outbox row(s) held (Redis refused them for good): their \
                 orders' status changes wait behind them (`order-worker outbox --held`)"
            ));
        }
    }
    for check in streams {
        let facts = &check.facts;
        if let Some(other) = facts.found_instead.first() {
            problems.push(format!(
                "stream {}: does not exist, but {other} does: this environment names the topic \
                 {other}; set {}={other}",
                facts.stream, check.setting
            ));
        }
        if let Joining::Wrong { why, fix } = &facts.joining {
            let fix = fix
                .as_ref()
                .map_or(String::new(), |fix| format!("; set {fix}"));
            problems.push(format!("{why}{fix}"));
        }
        let Some(rehearsal) = &check.rehearsal else {
            continue;
        };
        for reason in &rehearsal.dead_letters {
            problems.push(format!(
                "stream {}: {} of {} entries rehearsed would be dead-lettered ({}): {} (e.g. \
                 entry {})",
                facts.stream,
                reason.entries,
                rehearsal.entries,
                reason.outcome,
                reason.reason,
                reason.example_entry_id
            ));
        }
    }
    problems
}
