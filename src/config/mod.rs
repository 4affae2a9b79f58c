//! Settings: command-line flags, each with an environment variable fallback (the names the
//! Kubernetes manifests set), and the defaults Dapr's `pubsub.redis` component used.

use std::fmt;
use std::path::PathBuf;

use std::time::Duration;

mod order_events;
mod redis_url;
mod relay_table;
mod streams;
mod table_name;
pub use order_events::{fence_of, OrderEvents};
pub use redis_url::{ClusterUrl, Credentials, SentinelUrl};
pub use relay_table::{sql_literal, RelayMapping, RelayTable, Retention};
pub(crate) use streams::parse_topic;
pub use streams::{stream_setting, Keyspace, StreamConfig, Subscription, Topics};
pub use table_name::TableName;

/// The local servers' default ports: what a laptop has.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The base topic's stream key, as Dapr writes it.
pub const DEFAULT_STREAM: &str = crate::topics::BASE;
/// Dapr's own default group: its `consumerID` defaults to the app-id, and the order service's
/// worker runs as `order-worker` (docs/cutover.md, "Which group is Dapr's"). A component that sets
/// `consumerID` needs CONSUMER_GROUP set to match: `order-worker preflight` tells which.
pub const DEFAULT_GROUP: &str = "order-worker";
/// Entries per read and transaction. Dapr reads 100 (queueDepth); 500 drains a backlog faster
/// (BENCHMARKS.md) and costs nothing at low rates, where a read returns what has arrived.
pub const DEFAULT_BATCH_SIZE: u32 = 500;
/// Lanes each batch is split into (`CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: u16 = 1;
pub const DEFAULT_BLOCK_MS: u64 = 2000;
/// How often each replica looks for stuck entries, and how idle they must be (Dapr: 15 s and
/// 60 s; shorter here because only truly stuck entries are ever idle that long).
pub const DEFAULT_CLAIM_INTERVAL_MS: u64 = 5_000;
pub const DEFAULT_CLAIM_MIN_IDLE_MS: u64 = 30_000;
/// How long a consumer holding entries must be silent to be taken for gone.
pub const DEFAULT_CONSUMER_GONE_MS: u64 = 6_000;
/// Attempts before an entry that keeps failing is dead-lettered.
pub const DEFAULT_MAX_DELIVERIES: u32 = 10;
/// Consumers idle this long with nothing pending are removed from the group.
pub const DEFAULT_CONSUMER_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Below Kubernetes' default 30 s grace period.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_INBOX_PRUNE_INTERVAL: Duration = Duration::from_secs(600);
const MIN_INBOX_RETENTION: Duration = Duration::from_secs(3600);
/// The longest one attempt to apply a batch may take (it normally commits in milliseconds).
pub const DEFAULT_APPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Dapr's `XGROUP CREATE … 0`: a new group reads the retained stream from the start.
pub const DEFAULT_GROUP_START_ID: &str = "0";

/// Where the worker connects. The URLs may hold passwords, so their values never appear in
/// `--help` (`hide_env_values`) and `Debug` prints them redacted.
#[derive(Clone, clap::Args)]
pub struct Connections {
    /// Redis URL (Dapr component: redisHost, redisPassword, enableTLS via rediss://). One
    /// server: redis://[user:password@]host:6379[/db]. Sentinel (Dapr: failover,
    /// sentinelMasterName): redis+sentinel://[user:password@]host:26379,host:26379/<master>[/db].
    /// Cluster (Dapr: redisType cluster): redis+cluster://[user:password@]host:7000,host:7001.
    /// rediss… for TLS.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    #[command(flatten)]
    pub redis_tls: RedisTls,
    /// PostgreSQL URL of the orders database. TLS as libpq's `sslmode` says (`disable`,
    /// `prefer` (default), `require`, `verify-ca`, `verify-full`); `sslrootcert=<PEM file>`
    /// names the CA to verify the server against (else the system's roots).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// The order service's orders table: `table` or `schema.table` (plain identifiers, folded
    /// to lower case). The worker reads and writes its `id` (TEXT, VARCHAR or UUID), `status`
    /// (TEXT, VARCHAR or an enum of the statuses) and `updated_at`; `order-worker migrate` adds
    /// its one column, `fulfillment_status`, or creates the table when there is none.
    #[arg(long, env = "ORDERS_TABLE", default_value = "orders")]
    pub orders_table: TableName,
}

impl Connections {
    /// Both URLs, with Redis' certificate checked against the system's roots.
    pub fn new(redis_url: impl Into<String>, database_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            redis_tls: RedisTls::default(),
            database_url: database_url.into(),
            orders_table: TableName::default(),
        }
    }
}

/// What reaching Redis takes beyond its URL, which has no parameter for it: how a `rediss://`
/// connection checks the server's certificate, and the sentinels' own password. Shared by every
/// command.
#[derive(Clone, Default, clap::Args)]
pub struct RedisTls {
    /// PEM file with the CA certificate(s) that signed Redis's certificate, for `rediss://` to
    /// a server with a private CA [default: the system's roots; `SSL_CERT_FILE` also works].
    #[arg(long, env = "REDIS_CA_CERT")]
    pub redis_ca_cert: Option<PathBuf>,
    /// With a `redis+sentinel://` REDIS_URL: the sentinels' password, when they have one of
    /// their own (the URL's credentials are the master's).
    #[arg(long, env = "REDIS_SENTINEL_PASSWORD", hide_env_values = true)]
    pub redis_sentinel_password: Option<String>,
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = self.redis_sentinel_password.as_ref().map(|_| "***");
        f.debug_struct("RedisTls")
            .field("redis_ca_cert", &self.redis_ca_cert)
            .field("redis_sentinel_password", &password)
            .finish()
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_tls", &self.redis_tls)
            .field("database_url", &redact_url(&self.database_url))
            .field("orders_table", &self.orders_table.to_string())
            .finish()
    }
}

/// What `order-worker migrate` needs: only the database.
#[derive(Clone, clap::Args)]
pub struct MigrateConfig {
    /// PostgreSQL URL of the orders database (a role allowed to run DDL).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// The order service's orders table: `table` or `schema.table` (plain identifiers, folded
    /// to lower case). The worker reads and writes its `id` (TEXT, VARCHAR or UUID), `status`
    /// (TEXT, VARCHAR or an enum of the statuses) and `updated_at`; `order-worker migrate` adds
    /// its one column, `fulfillment_status`, or creates the table when there is none.
    #[arg(long, env = "ORDERS_TABLE", default_value = "orders")]
    pub orders_table: TableName,
    /// Also apply the contract migrations, which drop what earlier builds need (an index their
    /// queries use): without it they are held back, so a rollback to the previous build keeps
    /// working. This build runs either side of them; set it once the release is settled.
    #[arg(long, env = "MIGRATE_CONTRACT")]
    pub contract: bool,
    #[command(flatten)]
    pub relay: RelayMapping,
    /// Also give RELAY_TABLE a trigger that notifies the relay on each commit that writes rows
    /// (`pg_notify`, one per statement), so it publishes within milliseconds instead of at its
    /// next poll. The one change made to the order service's table; opt-in.
    #[arg(long, env = "RELAY_TRIGGER", requires = "relay_table")]
    pub relay_trigger: bool,
}

/// Replaces the password in a URL with `***`, for logs and error messages.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        // A Sentinel URL lists hosts, which `url` does not parse: hide what follows the first
        // `user:` of its credentials.
        Err(_) => match raw.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((credentials, hosts)) => match credentials.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
                    None => raw.to_owned(),
                },
                None => raw.to_owned(),
            },
            None => "<unparsable URL>".to_owned(),
        },
    }
}

/// Everything `order-worker run` needs.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub topics: Topics,
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub stream: StreamConfig,
    #[command(flatten)]
    pub order_events: OrderEvents,
    #[command(flatten)]
    pub relay: RelayTable,
    /// Entries read (and applied in one transaction) at a time (Dapr component: queueDepth).
    #[arg(long, env = "BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long one XREADGROUP waits for new entries, in ms (Dapr component: readTimeout).
    /// Also bounds how long a shutdown waits for an idle read to return.
    #[arg(long, env = "BLOCK_MS", default_value_t = DEFAULT_BLOCK_MS)]
    pub block_ms: u64,
    /// Entries larger than this (all fields, in bytes) are dead-lettered, not parsed.
    #[arg(long, env = "MAX_ENTRY_BYTES", default_value_t = crate::envelope::DEFAULT_MAX_ENTRY_BYTES)]
    pub max_entry_bytes: usize,
    /// How often to claim entries stuck with other consumers (XAUTOCLAIM), in ms.
    #[arg(long, env = "CLAIM_INTERVAL_MS", default_value_t = DEFAULT_CLAIM_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub claim_interval_ms: u64,
    /// How long an entry must have been idle in the pending list before it is claimed, in ms.
    /// Entries this worker is still processing are kept fresh, so only abandoned ones qualify.
    #[arg(long, env = "CLAIM_MIN_IDLE_MS", default_value_t = DEFAULT_CLAIM_MIN_IDLE_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub claim_min_idle_ms: u64,
    /// A consumer silent this long (no read, claim or keep-alive) while holding entries is gone,
    /// a replica killed or its pod lost: what it holds is claimed at the next claim round, not
    /// after CLAIM_MIN_IDLE_MS. Live replicas never look gone: they read at least every
    /// BLOCK_MS and keep their batches fresh every third of this. In ms, above BLOCK_MS.
    #[arg(long, env = "CONSUMER_GONE_MS", default_value_t = DEFAULT_CONSUMER_GONE_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub consumer_gone_ms: u64,
    /// An entry that failed this many deliveries (e.g. its order never appeared) is
    /// dead-lettered with its last error.
    #[arg(long, env = "MAX_DELIVERIES", default_value_t = DEFAULT_MAX_DELIVERIES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_deliveries: u32,
    /// After SIGTERM, how long to finish the batch in flight before exiting anyway (`20s`,
    /// `1m`, or plain seconds). Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Lanes each batch is split into by order id, applied at once in separate transactions.
    /// Events of one order always go to the same one, in stream order, so no order is ever
    /// updated by two at a time. (Besides, two batches of disjoint orders are applied at once.)
    #[arg(long, env = "CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Consumers of the group idle longer than this with nothing pending are removed (pods
    /// long gone); one with pending entries never is (`1h`, `30m`, or plain seconds).
    #[arg(long, env = "CONSUMER_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub consumer_idle_timeout: Duration,
    /// How long the inbox remembers an event, so that its redelivery, a publisher's retry of it
    /// or a replay of its entry is a `duplicate` (`7d`, `36h`; at least 1h). Keep it at least
    /// the stream's retention (`trim --keep`): an entry older than this replayed applies again.
    /// An order's record goes whole, once it has had no event for this long.
    #[arg(long, env = "INBOX_RETENTION", default_value = "7d", value_parser = parse_inbox_retention)]
    pub inbox_retention: Duration,
    /// How often a replica drops what is older than INBOX_RETENTION (one replica at a time)
    /// and refreshes the inbox gauges.
    #[arg(long, env = "INBOX_PRUNE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub inbox_prune_interval: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`127.0.0.1:0`: any free port).
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9090")]
    pub http_addr: std::net::SocketAddr,
    /// The longest one attempt to apply a lane may take before its connection is taken for
    /// stalled (a network partition), dropped and the attempt retried. Not a setting: tests
    /// shorten it to see a stall handled within seconds.
    #[arg(skip = DEFAULT_APPLY_TIMEOUT)]
    pub apply_timeout: Duration,
}

/// INBOX_RETENTION: a duration of an hour or more (the database refuses less).
fn parse_inbox_retention(raw: &str) -> Result<Duration, String> {
    let keep = parse_duration(raw)?;
    if keep < MIN_INBOX_RETENTION {
        return Err("the inbox keeps at least an hour of events (write e.g. 7d or 36h)".to_owned());
    }
    Ok(keep)
}

/// A duration as operators write it: `20s`, `500ms`, `1m`, `7d`, or plain seconds.
pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    if let Ok(seconds) = raw.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(raw).map_err(|error| format!("{error} (write e.g. 20s, 500ms or 1m)"))
}

impl WorkerConfig {
    /// Defaults for everything but where to connect and which stream (the payment streams and
    /// the published events' beside it): what tests and the demo use.
    pub fn new(connections: Connections, stream: StreamConfig) -> Self {
        Self {
            topics: Topics::stream_only(&stream.stream),
            connections,
            order_events: OrderEvents::beside(&stream.stream),
            relay: RelayTable::default(),
            stream,
            batch_size: DEFAULT_BATCH_SIZE,
            block_ms: DEFAULT_BLOCK_MS,
            max_entry_bytes: crate::envelope::DEFAULT_MAX_ENTRY_BYTES,
            claim_interval_ms: DEFAULT_CLAIM_INTERVAL_MS,
            claim_min_idle_ms: DEFAULT_CLAIM_MIN_IDLE_MS,
            consumer_gone_ms: DEFAULT_CONSUMER_GONE_MS,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            consumer_idle_timeout: DEFAULT_CONSUMER_IDLE_TIMEOUT,
            inbox_retention: DEFAULT_INBOX_RETENTION,
            inbox_prune_interval: DEFAULT_INBOX_PRUNE_INTERVAL,
            http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            apply_timeout: DEFAULT_APPLY_TIMEOUT,
        }
    }

    /// The subscriptions, in `TOPICS` order: see [`Topics::subscriptions`].
    pub fn subscriptions(&self) -> anyhow::Result<Vec<Subscription>> {
        let keyspace = Keyspace::of(&self.connections.redis_url)?;
        self.topics.subscriptions(&self.stream, keyspace)
    }

    pub fn block(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }

    pub fn claim_interval(&self) -> Duration {
        Duration::from_millis(self.claim_interval_ms)
    }

    pub fn claim_min_idle(&self) -> Duration {
        Duration::from_millis(self.claim_min_idle_ms)
    }

    pub fn consumer_gone(&self) -> Duration {
        Duration::from_millis(self.consumer_gone_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{parse_duration, redact_url};

    #[test]
    fn durations_are_read_as_written_in_the_readme() {
        let hour = 3_600;
        for (raw, seconds) in [
            ("36h", 36 * hour),
            ("90m", 90 * 60),
            ("7d", 7 * 24 * hour),
            ("3600", hour),
            ("0", 0),
            ("20s", 20),
        ] {
            assert_eq!(
                parse_duration(raw),
                Ok(Duration::from_secs(seconds)),
                "{raw}"
            );
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["36x", "", "-1h", "h"] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains("write e.g. 20s"), "{bad}: {error}");
        }
    }

    #[test]
    fn passwords_are_hidden_in_every_form_of_url() {
        let cases = [
            ("redis://:secret@redis:6379", "redis://:***@redis:6379"),
            (
                "redis+sentinel://worker:secret@s1:26379,s2:26379/orders",
                "redis+sentinel://worker:***@s1:26379,s2:26379/orders",
            ),
            (
                "redis+sentinel://s1:26379,s2:26379/orders",
                "redis+sentinel://s1:26379,s2:26379/orders",
            ),
            (
                "redis+cluster://:secret@n1:7000,n2:7001",
                "redis+cluster://:***@n1:7000,n2:7001",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
