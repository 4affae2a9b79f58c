//! Where Redis is: one server (`redis://`, `rediss://`), or the master that a set of sentinels
//! names (`redis+sentinel://`, `rediss+sentinel://`), asked again for every new connection, so
//! that after a failover the worker talks to the new master.

use std::fmt;
use std::sync::Arc;

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisResult,
    TlsMode,
};
use tokio::sync::Mutex;

/// What every Redis connection of the worker is made from.
#[derive(Clone)]
pub struct RedisTarget(Arc<Target>);

enum Target {
    Server(Client),
    Sentinel {
        sentinels: Mutex<SentinelClient>,
        master: String,
    },
}

impl RedisTarget {
    /// One server, as `client` connects.
    pub fn server(client: Client) -> Self {
        Self(Arc::new(Target::Server(client)))
    }

    /// The master the sentinels of `url` name; `sentinel_password` is the sentinels' own, when
    /// they have one (the URL's credentials are the master's).
    pub fn sentinel(url: &SentinelUrl, sentinel_password: Option<&str>) -> anyhow::Result<Self> {
        let sentinels: Vec<ConnectionInfo> = url
            .sentinels
            .iter()
            .map(|(host, port)| {
                let addr = if url.tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                };
                let settings = RedisConnectionInfo::default().set_skip_set_lib_name();
                let settings = match sentinel_password {
                    Some(password) => settings.set_password(password),
                    None => settings,
                };
                Ok(addr.into_connection_info()?.set_redis_settings(settings))
            })
            .collect::<RedisResult<_>>()
            .context("the sentinels of REDIS_URL")?;
        let mut master = RedisConnectionInfo::default()
            .set_db(url.db)
            .set_skip_set_lib_name();
        if let Some(username) = &url.username {
            master = master.set_username(username);
        }
        if let Some(password) = &url.password {
            master = master.set_password(password);
        }
        let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(master);
        if url.tls {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(
            sentinels,
            &url.master,
            Some(node),
            SentinelServerType::Master,
        )
        .context("the sentinels of REDIS_URL")?;
        Ok(Self(Arc::new(Target::Sentinel {
            sentinels: Mutex::new(client),
            master: url.master.clone(),
        })))
    }

    /// A client for the server to talk to now: for Sentinel, the master the sentinels name at
    /// this moment.
    pub async fn client(&self) -> RedisResult<Client> {
        match &*self.0 {
            Target::Server(client) => Ok(client.clone()),
            Target::Sentinel { sentinels, .. } => sentinels.lock().await.async_get_client().await,
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Target::Server(_) => f.write_str("Redis server"),
            Target::Sentinel { master, .. } => write!(f, "Redis master {master:?} (Sentinel)"),
        }
    }
}

/// The pool's connections. A master demoted by a failover still answers `PING`, so with
/// Sentinel a connection is only good while its server says it is the master.
impl bb8::ManageConnection for RedisTarget {
    type Connection = MultiplexedConnection;
    type Error = redis::RedisError;

    async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        self.client()
            .await?
            .get_multiplexed_async_connection()
            .await
    }

    async fn is_valid(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        match &*self.0 {
            Target::Server(_) => redis::cmd("PING").query_async(conn).await,
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

    fn has_broken(&self, _: &mut MultiplexedConnection) -> bool {
        false
    }
}

/// A `redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>]` URL
/// (`rediss+sentinel://` for TLS to the sentinels and the master).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
}

/// The sentinels' port when a host names none.
const SENTINEL_PORT: u16 = 26379;

impl SentinelUrl {
    /// `Ok(None)` for a URL of one server (`redis://`, `rediss://`).
    pub fn parse(url: &str) -> anyhow::Result<Option<Self>> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            (true, rest)
        } else {
            return Ok(None);
        };
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials), rest),
            None => (None, rest),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = match credentials.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (credentials, None),
                };
                let decode = |part: &str| -> anyhow::Result<String> {
                    let decoded = percent_encoding::percent_decode_str(part).decode_utf8();
                    Ok(decoded
                        .context("REDIS_URL's credentials are not UTF-8")?
                        .into_owned())
                };
                let user = match user {
                    "" => None,
                    user => Some(decode(user)?),
                };
                (user, password.map(decode).transpose()?)
            }
        };
        let mut parts = rest.split('/');
        let hosts = parts.next().unwrap_or_default();
        let Some(master) = parts.next().filter(|master| !master.is_empty()) else {
            bail!("a Sentinel REDIS_URL names the master after the hosts: redis+sentinel://host:26379,host:26379/<master-name>");
        };
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse()
                .with_context(|| format!("the database {db:?} in REDIS_URL is not a number"))?,
        };
        if parts.next().is_some() {
            bail!("REDIS_URL has more after /<master-name>/<db> than a Sentinel URL holds");
        }
        let sentinels = hosts
            .split(',')
            .map(|host| match host.rsplit_once(':') {
                Some((name, port)) => {
                    let port = port.parse().with_context(|| {
                        format!("the port of sentinel {host:?} in REDIS_URL is not a number")
                    })?;
                    Ok((name.to_owned(), port))
                }
                None => Ok((host.to_owned(), SENTINEL_PORT)),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if sentinels.iter().any(|(host, _)| host.is_empty()) {
            bail!("REDIS_URL lists an empty sentinel host");
        }
        Ok(Some(Self {
            sentinels,
            master: master.to_owned(),
            db,
            username,
            password,
            tls,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(hosts: &[(&str, u16)], master: &str) -> SentinelUrl {
        SentinelUrl {
            sentinels: hosts.iter().map(|(h, p)| ((*h).to_owned(), *p)).collect(),
            master: master.to_owned(),
            db: 0,
            username: None,
            password: None,
            tls: false,
        }
    }

    #[test]
    fn sentinel_urls_name_hosts_master_db_and_credentials() {
        let cases = [
            (
                "redis+sentinel://s1:26379,s2:26380/orders",
                sentinel(&[("s1", 26379), ("s2", 26380)], "orders"),
            ),
            (
                "redis+sentinel://s1,s2/orders/3",
                SentinelUrl {
                    db: 3,
                    ..sentinel(&[("s1", 26379), ("s2", 26379)], "orders")
                },
            ),
            (
                "rediss+sentinel://worker:p%40ss@s1:26379/orders",
                SentinelUrl {
                    username: Some("worker".to_owned()),
                    password: Some("p@ss".to_owned()),
                    tls: true,
                    ..sentinel(&[("s1", 26379)], "orders")
                },
            ),
            (
                "redis+sentinel://:secret@s1:26379/orders",
                SentinelUrl {
                    password: Some("secret".to_owned()),
                    ..sentinel(&[("s1", 26379)], "orders")
                },
            ),
        ];
        for (url, want) in cases {
            assert_eq!(SentinelUrl::parse(url).expect(url), Some(want), "{url}");
        }
    }

    #[test]
    fn a_server_url_is_no_sentinel_url() {
        for url in ["redis://127.0.0.1:6379", "rediss://redis:6380/1"] {
            assert_eq!(SentinelUrl::parse(url).expect(url), None, "{url}");
        }
    }

    #[test]
    fn a_sentinel_url_without_master_or_with_a_bad_port_says_what_is_wrong() {
        let cases = [
            ("redis+sentinel://s1:26379", "names the master"),
            ("redis+sentinel://s1:26379/", "names the master"),
            ("redis+sentinel://s1:port/orders", "port of sentinel"),
            ("redis+sentinel://s1/orders/x", "database"),
            ("redis+sentinel://s1,,s2/orders", "empty sentinel host"),
        ];
        for (url, want) in cases {
            let error = SentinelUrl::parse(url).expect_err(url).to_string();
            assert!(error.contains(want), "{url}: {error}");
        }
    }
}
