//! The two REDIS_URL forms that list several hosts, which `url` (and redis-rs) cannot parse:
//! `redis+sentinel://` (the sentinels, then the master's name) and `redis+cluster://` (some of
//! the cluster's nodes; the client learns the rest).

use anyhow::{bail, Context};

/// A `redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>]` URL
/// (`rediss+sentinel://` for TLS to the sentinels and the master).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
    pub credentials: Credentials,
    pub tls: bool,
}

/// A `redis+cluster://[user:password@]host1:7000,host2:7001` URL (`rediss+cluster://` for
/// TLS): any reachable node is enough to find the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub nodes: Vec<(String, u16)>,
    pub credentials: Credentials,
    pub tls: bool,
}

/// The user and password of a URL, percent-decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The sentinels' port when a host names none.
const SENTINEL_PORT: u16 = 26379;
/// A cluster node's port when a host names none.
const REDIS_PORT: u16 = 6379;

impl SentinelUrl {
    /// `Ok(None)` for a URL of another form.
    pub fn parse(url: &str) -> anyhow::Result<Option<Self>> {
        let Some(parts) = HostsUrl::parse(url, "sentinel", SENTINEL_PORT)? else {
            return Ok(None);
        };
        let mut path = parts.path.split('/');
        let Some(master) = path.next().filter(|master| !master.is_empty()) else {
            bail!("a Sentinel REDIS_URL names the master after the hosts: redis+sentinel://host:26379,host:26379/<master-name>");
        };
        let db = match path.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse()
                .with_context(|| format!("the database {db:?} in REDIS_URL is not a number"))?,
        };
        if path.next().is_some() {
            bail!("REDIS_URL has more after /<master-name>/<db> than a Sentinel URL holds");
        }
        Ok(Some(Self {
            sentinels: parts.hosts,
            master: master.to_owned(),
            db,
            credentials: parts.credentials,
            tls: parts.tls,
        }))
    }
}

impl ClusterUrl {
    /// `Ok(None)` for a URL of another form.
    pub fn parse(url: &str) -> anyhow::Result<Option<Self>> {
        let Some(parts) = HostsUrl::parse(url, "cluster", REDIS_PORT)? else {
            return Ok(None);
        };
        if !parts.path.is_empty() {
            bail!(
                "a Cluster REDIS_URL has nothing after the hosts (a cluster has only database 0): \
                 redis+cluster://host:7000,host:7001"
            );
        }
        Ok(Some(Self {
            nodes: parts.hosts,
            credentials: parts.credentials,
            tls: parts.tls,
        }))
    }
}

/// What both forms share: `redis+<kind>://` or `rediss+<kind>://`, credentials, hosts, a path.
struct HostsUrl<'a> {
    tls: bool,
    credentials: Credentials,
    hosts: Vec<(String, u16)>,
    /// After the hosts' `/`, empty if none.
    path: &'a str,
}

impl<'a> HostsUrl<'a> {
    fn parse(url: &'a str, kind: &str, default_port: u16) -> anyhow::Result<Option<Self>> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix(&format!("redis+{kind}://")) {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix(&format!("rediss+{kind}://")) {
            (true, rest)
        } else {
            return Ok(None);
        };
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Credentials::parse(credentials)?, rest),
            None => (Credentials::default(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = hosts
            .split(',')
            .map(|host| match host.rsplit_once(':') {
                Some((name, port)) => {
                    let port = port.parse().with_context(|| {
                        format!("the port of {kind} host {host:?} in REDIS_URL is not a number")
                    })?;
                    Ok((name.to_owned(), port))
                }
                None => Ok((host.to_owned(), default_port)),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if hosts.iter().any(|(host, _)| host.is_empty()) {
            bail!("REDIS_URL lists an empty {kind} host");
        }
        Ok(Some(Self {
            tls,
            credentials,
            hosts,
            path,
        }))
    }
}

impl Credentials {
    /// `user:password`, `:password` or `user`, each part percent-decoded.
    fn parse(credentials: &str) -> anyhow::Result<Self> {
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
        Ok(Self {
            username: match user {
                "" => None,
                user => Some(decode(user)?),
            },
            password: password.map(decode).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(hosts: &[(&str, u16)]) -> Vec<(String, u16)> {
        hosts.iter().map(|(h, p)| ((*h).to_owned(), *p)).collect()
    }

    fn sentinel(sentinels: &[(&str, u16)], master: &str) -> SentinelUrl {
        SentinelUrl {
            sentinels: hosts(sentinels),
            master: master.to_owned(),
            db: 0,
            credentials: Credentials::default(),
            tls: false,
        }
    }

    fn user(username: Option<&str>, password: &str) -> Credentials {
        Credentials {
            username: username.map(str::to_owned),
            password: Some(password.to_owned()),
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
                    credentials: user(Some("worker"), "p@ss"),
                    tls: true,
                    ..sentinel(&[("s1", 26379)], "orders")
                },
            ),
            (
                "redis+sentinel://:secret@s1:26379/orders",
                SentinelUrl {
                    credentials: user(None, "secret"),
                    ..sentinel(&[("s1", 26379)], "orders")
                },
            ),
        ];
        for (url, want) in cases {
            assert_eq!(SentinelUrl::parse(url).expect(url), Some(want), "{url}");
        }
    }

    #[test]
    fn cluster_urls_name_nodes_and_credentials() {
        let cases = [
            (
                "redis+cluster://n1:7000,n2:7001,n3",
                ClusterUrl {
                    nodes: hosts(&[("n1", 7000), ("n2", 7001), ("n3", 6379)]),
                    credentials: Credentials::default(),
                    tls: false,
                },
            ),
            (
                "rediss+cluster://worker:s%3Acret@n1:7000",
                ClusterUrl {
                    nodes: hosts(&[("n1", 7000)]),
                    credentials: user(Some("worker"), "s:cret"),
                    tls: true,
                },
            ),
        ];
        for (url, want) in cases {
            assert_eq!(ClusterUrl::parse(url).expect(url), Some(want), "{url}");
        }
    }

    #[test]
    fn a_url_of_another_form_is_neither() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://redis:6380/1",
            "redis+cluster://n1:7000",
        ] {
            assert_eq!(SentinelUrl::parse(url).expect(url), None, "{url}");
        }
        for url in ["redis://127.0.0.1:6379", "redis+sentinel://s1/orders"] {
            assert_eq!(ClusterUrl::parse(url).expect(url), None, "{url}");
        }
    }

    #[test]
    fn a_bad_url_says_what_is_wrong() {
        let cases = [
            ("redis+sentinel://s1:26379", "names the master"),
            ("redis+sentinel://s1:26379/", "names the master"),
            ("redis+sentinel://s1:port/orders", "port of sentinel host"),
            ("redis+sentinel://s1/orders/x", "database"),
            ("redis+sentinel://s1,,s2/orders", "empty sentinel host"),
            ("redis+cluster://n1:7000/0", "nothing after the hosts"),
            ("redis+cluster://n1:x", "port of cluster host"),
            ("redis+cluster://n1,,n2", "empty cluster host"),
        ];
        for (url, want) in cases {
            let error = SentinelUrl::parse(url)
                .and_then(|_| ClusterUrl::parse(url))
                .expect_err(url)
                .to_string();
            assert!(error.contains(want), "{url}: {error}");
        }
    }
}
