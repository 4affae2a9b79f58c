//! Where Redis is: one server (`redis://`, `rediss://`); the master that a set of sentinels
//! names (`redis+sentinel://`), asked again for every new connection, so that after a failover
//! the worker talks to the new master; or a cluster (`redis+cluster://`), whose client routes
//! each command to the master of its key's slot.

mod connection;
mod settings;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo, RedisResult, TlsCertificates, TlsMode,
};
use tokio::sync::Mutex;

use crate::config::{ClusterUrl, Credentials, SentinelUrl};
pub use connection::RedisConnection;
pub use settings::client;

/// What every Redis connection of the worker is made from.
#[derive(Clone)]
pub struct RedisTarget(Arc<Target>);

enum Target {
    Server(Client),
    Sentinel {
        sentinels: Mutex<SentinelClient>,
        master: String,
    },
    Cluster(ClusterClient),
}

/// How long a new connection waits to connect and for each reply; `None`: redis-rs' default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub response: Option<Duration>,
}

impl RedisTarget {
    /// One server, as `client` connects.
    pub fn server(client: Client) -> Self {
        Self(Arc::new(Target::Server(client)))
    }

    /// The master the sentinels of `url` name; `sentinel_password` is the sentinels' own, when
    /// they have one (the URL's credentials are the master's).
    pub fn sentinel(url: &SentinelUrl, sentinel_password: Option<&str>) -> anyhow::Result<Self> {
        let sentinel_settings = Credentials {
            username: None,
            password: sentinel_password.map(str::to_owned),
        };
        let sentinels: Vec<ConnectionInfo> = url
            .sentinels
            .iter()
            .map(|host| node(host, url.tls, &sentinel_settings))
            .collect::<RedisResult<_>>()
            .context("the sentinels of REDIS_URL")?;
        let master = settings(&url.credentials).set_db(url.db);
        let mut master = SentinelNodeConnectionInfo::default().set_redis_connection_info(master);
        if url.tls {
            master = master.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(
            sentinels,
            &url.master,
            Some(master),
            SentinelServerType::Master,
        )
        .context("the sentinels of REDIS_URL")?;
        Ok(Self(Arc::new(Target::Sentinel {
            sentinels: Mutex::new(client),
            master: url.master.clone(),
        })))
    }

    /// The cluster that the nodes of `url` belong to; `ca_cert` (PEM) checks the nodes'
    /// certificates instead of the system's roots.
    pub fn cluster(url: &ClusterUrl, ca_cert: Option<Vec<u8>>) -> anyhow::Result<Self> {
        let nodes: Vec<ConnectionInfo> = url
            .nodes
            .iter()
            .map(|host| node(host, url.tls, &url.credentials))
            .collect::<RedisResult<_>>()
            .context("the nodes of REDIS_URL")?;
        let mut builder = ClusterClientBuilder::new(nodes);
        if let Some(root_cert) = ca_cert {
            builder = builder.certs(TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            });
        }
        let client = builder.build().context("the nodes of REDIS_URL")?;
        Ok(Self(Arc::new(Target::Cluster(client))))
    }

    /// The `host:port` of a single server reached without TLS: the only case whose dropped
    /// connections can be told apart (see `stream::client`).
    pub fn plain_server(&self) -> Option<(String, u16)> {
        match &*self.0 {
            Target::Server(client) => match client.get_connection_info().addr() {
                ConnectionAddr::Tcp(host, port) => Some((host.clone(), *port)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether this is a cluster, where keys of different slots live on different masters.
    pub fn is_cluster(&self) -> bool {
        matches!(&*self.0, Target::Cluster(_))
    }

    /// A new connection to where Redis is now: with Sentinel, the master the sentinels name at
    /// this moment; with a cluster, its masters.
    pub async fn connect(&self, timeouts: Timeouts) -> RedisResult<RedisConnection> {
        let client = match &*self.0 {
            Target::Server(client) => client.clone(),
            Target::Sentinel { sentinels, .. } => sentinels.lock().await.async_get_client().await?,
            Target::Cluster(client) => {
                let mut config = ClusterConfig::new();
                if let Some(timeout) = timeouts.connect {
                    config = config.set_connection_timeout(timeout);
                }
                if let Some(timeout) = timeouts.response {
                    config = config.set_response_timeout(timeout);
                }
                let conn = client.get_async_connection_with_config(config).await?;
                return Ok(RedisConnection::cluster(conn));
            }
        };
        let mut config = AsyncConnectionConfig::new();
        if let Some(timeout) = timeouts.connect {
            config = config.set_connection_timeout(Some(timeout));
        }
        if let Some(timeout) = timeouts.response {
            config = config.set_response_timeout(Some(timeout));
        }
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(RedisConnection::Server(conn))
    }
}

/// A sentinel's or a cluster node's address.
fn node(
    (host, port): &(String, u16),
    tls: bool,
    credentials: &Credentials,
) -> RedisResult<ConnectionInfo> {
    let addr = if tls {
        ConnectionAddr::TcpTls {
            host: host.clone(),
            port: *port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.clone(), *port)
    };
    Ok(addr
        .into_connection_info()?
        .set_redis_settings(settings(credentials)))
}

/// Connection settings with `credentials`. No `CLIENT SETINFO` label: Redis < 7.2 lacks the
/// command and an ACL user would need it granted (see `RedisTls::client`).
fn settings(credentials: &Credentials) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(username) = &credentials.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &credentials.password {
        settings = settings.set_password(password);
    }
    settings
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Target::Server(_) => f.write_str("Redis server"),
            Target::Sentinel { master, .. } => write!(f, "Redis master {master:?} (Sentinel)"),
            Target::Cluster(_) => f.write_str("Redis Cluster"),
        }
    }
}

/// The pool's connections. A master demoted by a failover still answers `PING`, so with
/// Sentinel a connection is only good while its server says it is the master. A cluster
/// connection finds a moved or failed-over slot's new master by itself, except after a MULTI
/// aborted by the move: then it is replaced by a new one, which asks the cluster afresh.
impl bb8::ManageConnection for RedisTarget {
    type Connection = RedisConnection;
    type Error = redis::RedisError;

    async fn connect(&self) -> RedisResult<RedisConnection> {
        RedisTarget::connect(self, Timeouts::default()).await
    }

    async fn is_valid(&self, conn: &mut RedisConnection) -> RedisResult<()> {
        match &*self.0 {
            Target::Server(_) | Target::Cluster(_) => redis::cmd("PING").query_async(conn).await,
            Target::Sentinel { .. } => {
                let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(conn).await?;
                match role.first() {
                    Some(redis::Value::BulkString(role)) if role == b"master" => Ok(()),
                    _ => Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "no longer the master (a failover)",
                    ))),
                }
            }
        }
    }

    fn has_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.is_stale()
    }
}
