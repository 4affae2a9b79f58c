//! Operator commands: `pending` ([`inspect`]: what the group holds and who holds it),
//! `dead-letter` ([`dead_letter`]: list, show, purge), `trim` ([`trim`]: drop the entries
//! every group is done with), `replay` ([`replay`]: apply a range again, requeue dead
//! letters), `outbox` ([`outbox`]: the status changes waiting to be published, and who
//! relays them) and `preflight` ([`preflight`]: before the cut-over, whether the worker will
//! understand the live streams and which group is Dapr's). None of them ever acks or claims an
//! entry of the main stream: that stays the workers' job. `replay` and `preflight` talk to both
//! Redis and PostgreSQL, `outbox` to PostgreSQL only, the others to Redis only.

pub mod dead_letter;
pub mod inspect;
pub mod outbox;
pub mod output;
pub mod preflight;
pub mod replay;
pub mod subscriptions;
pub mod table;
pub mod trim;

use std::fmt;
use std::time::Duration;

use anyhow::{bail, Context};
use redis::streams::StreamInfoGroup;

use crate::config::{
    redact_url, Keyspace, StreamConfig, Subscription, Topics, DEFAULT_REDIS_URL, DEFAULT_STREAM,
};
use crate::stream::connect::{RedisTarget, Timeouts};
use crate::stream::id::StreamId;
use crate::stream::reply::parse_entries;
use crate::stream::{ReadBatch, RedisConnection, StreamEntry};

/// How long one command may take. Generous: an exact `XTRIM` of millions of entries takes
/// seconds, and redis-rs would otherwise give up after 500 ms.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the operator commands need: Redis and the stream settings, under the same flags and
/// variables as `order-worker run`, so running them in a worker's pod (`kubectl exec … --
/// order-worker pending`) looks at that worker's stream and group. No database: these commands
/// must work while PostgreSQL is the thing that is down. The consumer name and the group start
/// id are hidden: these commands never read as a consumer nor create the group.
#[derive(Clone, clap::Args)]
#[command(
    mut_arg("consumer", |arg| arg.hide(true)),
    mut_arg("group_start_id", |arg| arg.hide(true))
)]
pub struct OpsConfig {
    /// Redis URL (Dapr component: redisHost, redisPassword, enableTLS via rediss://).
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    #[command(flatten)]
    pub redis_tls: crate::config::RedisTls,
    #[command(flatten)]
    pub stream: StreamConfig,
    #[command(flatten)]
    pub topics: Topics,
    /// The topic whose stream to look at [default: for `pending` and `subscriptions` every one
    /// of TOPICS (`trim` with --all-topics too); for the others `fulfillment.status_changed`].
    #[arg(long, value_parser = crate::config::parse_topic)]
    pub topic: Option<String>,
}

impl fmt::Debug for OpsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsConfig")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_tls", &self.redis_tls)
            .field("stream", &self.stream)
            .field("topics", &self.topics)
            .field("topic", &self.topic)
            .finish()
    }
}

impl OpsConfig {
    /// Settings for `stream` on the Redis at `redis_url`, everything else at its default.
    pub fn new(redis_url: impl Into<String>, stream: StreamConfig) -> Self {
        Self {
            redis_url: redis_url.into(),
            redis_tls: crate::config::RedisTls::default(),
            topics: Topics::stream_only(&stream.stream),
            stream,
            topic: None,
        }
    }

    /// The same Redis (and TLS settings) a worker with `connections` uses, for `stream`.
    pub fn for_connections(
        connections: &crate::config::Connections,
        stream: &StreamConfig,
    ) -> Self {
        Self {
            redis_url: connections.redis_url.clone(),
            redis_tls: connections.redis_tls.clone(),
            topics: Topics::stream_only(&stream.stream),
            stream: stream.clone(),
            topic: None,
        }
    }

    /// The streams to look at: `--topic`'s, else every one of TOPICS.
    pub fn subscriptions(&self) -> anyhow::Result<Vec<Subscription>> {
        match &self.topic {
            Some(topic) => Ok(vec![self.topics.subscription(
                topic,
                &self.stream,
                self.keyspace()?,
            )?]),
            None => self.topics.subscriptions(&self.stream, self.keyspace()?),
        }
    }

    /// These settings on the one stream a command works on: `--topic`'s, else the fulfillment
    /// topic's (as before the worker served payments).
    pub fn narrowed(&self) -> anyhow::Result<Self> {
        let topic = self.topic.as_deref().unwrap_or(DEFAULT_STREAM);
        Ok(self.on(self
            .topics
            .subscription(topic, &self.stream, self.keyspace()?)?))
    }

    fn keyspace(&self) -> anyhow::Result<Keyspace> {
        Keyspace::of(&self.redis_url)
    }

    /// These settings on `subscription`'s stream.
    pub fn on(&self, subscription: Subscription) -> Self {
        Self {
            stream: subscription.stream,
            topic: Some(subscription.topic.name().to_owned()),
            ..self.clone()
        }
    }

    /// One connection for the whole command; fails at once (no retries) when Redis does not
    /// answer, because an operator at a terminal wants to know now.
    pub async fn connect(&self) -> anyhow::Result<RedisConnection> {
        let target = RedisTarget::new(&self.redis_tls, &self.redis_url)?;
        let timeouts = Timeouts {
            connect: Some(Duration::from_secs(5)),
            response: Some(RESPONSE_TIMEOUT),
        };
        crate::stream::client::connect_checked(&target, &self.redis_url, timeouts).await
    }
}

/// What `key` holds (`TYPE`): `stream`, or `none` when it does not exist.
async fn key_type(conn: &mut RedisConnection, key: &str) -> anyhow::Result<String> {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(conn)
        .await
        .with_context(|| format!("looking up stream {key}"))
}

/// Fails with a clear message unless `key` holds a stream: `XINFO` on a missing key only says
/// "no such key", and on another type "WRONGTYPE".
async fn require_stream(conn: &mut RedisConnection, key: &str) -> anyhow::Result<()> {
    match key_type(conn, key).await?.as_str() {
        "stream" => Ok(()),
        "none" => bail!("stream {key} does not exist (check STREAM / --stream)"),
        other => bail!("key {key} holds a {other}, not a stream"),
    }
}

/// Every consumer group on `stream` (`XINFO GROUPS`), after checking that the stream exists.
async fn groups(conn: &mut RedisConnection, stream: &str) -> anyhow::Result<Vec<StreamInfoGroup>> {
    require_stream(conn, stream).await?;
    crate::stream::groups(conn, stream)
        .await
        .with_context(|| format!("reading the consumer groups of {stream} (XINFO GROUPS)"))
}

/// The group named `name`, or an error naming the groups there are (a typo in CONSUMER_GROUP is
/// the usual cause).
fn find_group<'a>(
    groups: &'a [StreamInfoGroup],
    stream: &str,
    name: &str,
) -> anyhow::Result<&'a StreamInfoGroup> {
    if let Some(group) = groups.iter().find(|group| group.name == name) {
        return Ok(group);
    }
    if groups.is_empty() {
        bail!("consumer group {name} does not exist: stream {stream} has no consumer groups");
    }
    let names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
    bail!(
        "consumer group {name} does not exist on stream {stream} (its groups: {}; check CONSUMER_GROUP / --group)",
        names.join(", ")
    )
}

/// Redis's clock in milliseconds. Ages are measured against it, not the local clock, because
/// entry ids come from Redis's clock.
async fn redis_now_ms(conn: &mut RedisConnection) -> anyhow::Result<u64> {
    let (seconds, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(conn)
        .await
        .context("reading Redis's clock (TIME)")?;
    Ok(seconds * 1_000 + micros / 1_000)
}

/// How many entries of `key` have ids in `[from, below)`, counted inside Redis a page at a time
/// so a dry run over millions of entries neither copies them to us nor blocks Redis for long.
/// `progress` shows the count so far.
async fn count_range(
    conn: &mut RedisConnection,
    key: &str,
    from: &str,
    below: StreamId,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    const PAGE: u64 = 10_000;
    if below == StreamId::MIN {
        // Nothing is below `0-0`, and `(0-0` is not a valid range end.
        return Ok(0);
    }
    let script = redis::Script::new(
        r"local page = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
          if #page == 0 then return {0, ''} end
          return {#page, page[#page][1]}",
    );
    let end = format!("({below}");
    let mut start = from.to_owned();
    let mut total = 0;
    loop {
        let (counted, last): (u64, String) = script
            .key(key)
            .arg(&start)
            .arg(&end)
            .arg(PAGE)
            .invoke_async(conn)
            .await
            .with_context(|| format!("counting the entries of {key} below {below}"))?;
        total += counted;
        progress.set_position(total);
        if counted < PAGE {
            return Ok(total);
        }
        start = format!("({last}");
    }
}

/// Up to `count` entries of `stream` from `start` to `end` (XRANGE bounds, inclusive), parsed
/// like the worker's reads (an entry with no fields is kept out).
pub(crate) async fn xrange(
    conn: &mut RedisConnection,
    stream: &str,
    start: &str,
    end: &str,
    count: usize,
) -> anyhow::Result<Vec<StreamEntry>> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg(start)
        .arg(end)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .with_context(|| format!("reading {stream} from {start} to {end} (XRANGE)"))?;
    let mut batch = ReadBatch::default();
    parse_entries(reply, 0, &mut batch)?;
    Ok(batch.entries)
}

/// The newest `count` entries of `stream`, newest first (`XREVRANGE + - COUNT`), parsed like
/// [`xrange`]'s; none when it is empty or missing.
pub(crate) async fn xrevrange(
    conn: &mut RedisConnection,
    stream: &str,
    count: usize,
) -> anyhow::Result<Vec<StreamEntry>> {
    let reply: redis::Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .with_context(|| format!("reading the newest {count} entries of {stream} (XREVRANGE)"))?;
    let mut batch = ReadBatch::default();
    parse_entries(reply, 0, &mut batch)?;
    Ok(batch.entries)
}

/// The reports of a command over several streams: as text, each printed once read; with
/// `--json`, all of them as one JSON array at the end, one document any JSON parser reads.
pub(crate) struct Reports<T> {
    json: bool,
    held: Vec<T>,
}

impl<T: serde::Serialize> Reports<T> {
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            held: Vec::new(),
        }
    }

    pub(crate) fn print(
        &mut self,
        report: T,
        render: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            self.held.push(report);
            return Ok(());
        }
        output::write_stdout(render(&report).as_bytes())
    }

    pub(crate) fn finish(self) -> anyhow::Result<()> {
        match self.json {
            true => print_report(true, &self.held, String::new),
            false => Ok(()),
        }
    }
}

/// Prints a command's result: as pretty JSON with `--json` (for scripts), else as the text
/// `render` makes for people.
pub(crate) fn print_report<T: serde::Serialize>(
    json: bool,
    value: &T,
    render: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(value)? + "\n"
    } else {
        render()
    };
    output::write_stdout(text.as_bytes())
}
