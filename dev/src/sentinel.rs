//! A Redis Sentinel set-up on loopback, for the tests and `just replicas`: a master, a replica
//! and three sentinels (quorum 2) from the installed `redis-server`, on private ports and in a
//! private directory, torn down on drop. It fails over on request (`SENTINEL FAILOVER`) or when
//! its master is killed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;

use crate::local_servers::{free_port, start_redis_with, PrivateServer};

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "orders";

/// How long a failover may take before the set-up is said to be broken.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);

/// The running set-up.
pub struct SentinelSet {
    /// The two data servers by port: the master first, until a failover.
    servers: Vec<(u16, Option<PrivateServer>)>,
    sentinels: Vec<(u16, PrivateServer)>,
    /// The sentinels' own password (`requirepass` on each), if they have one.
    sentinel_password: Option<String>,
    _dir: tempfile::TempDir,
}

impl SentinelSet {
    /// Starts the master, its replica (in sync when this returns) and three sentinels watching
    /// them, which notice a dead master within a second.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// [`SentinelSet::start`], the sentinels asking for `password` (the data servers ask for
    /// none): what `REDIS_SENTINEL_PASSWORD` is for.
    pub async fn start_with_sentinel_password(password: &str) -> anyhow::Result<Self> {
        Self::start_with(Some(password.to_owned())).await
    }

    async fn start_with(sentinel_password: Option<String>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the Sentinel set-up")?;
        let master_port = free_port()?;
        let replica_port = free_port()?;
        let master = start_redis_with(&dir.path().join("master"), master_port, &[])?;
        let replica_of = master_port.to_string();
        let replica = start_redis_with(
            &dir.path().join("replica"),
            replica_port,
            &["--replicaof", "127.0.0.1", &replica_of],
        )?;
        let mut sentinels = Vec::new();
        for n in 0..3 {
            let port = free_port()?;
            let config = dir.path().join(format!("sentinel-{n}.conf"));
            // With a password, each sentinel asks for it and gives it to the others.
            let auth = sentinel_password
                .as_ref()
                .map_or_else(String::new, |password| {
                    format!("requirepass {password}\nsentinel sentinel-pass {password}\n")
                });
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n{auth}",
                    dir = dir.path().display()
                ),
            )
            .context("writing a sentinel's configuration")?;
            sentinels.push((port, crate::local_servers::start_sentinel(&config, port)?));
        }
        let set = Self {
            servers: vec![(master_port, Some(master)), (replica_port, Some(replica))],
            sentinels,
            sentinel_password,
            _dir: dir,
        };
        set.wait_until(
            "the replica is in sync and every sentinel sees it",
            async || {
                let synced = set.replica_in_sync(replica_port).await;
                let mut seen = true;
                for (port, _) in &set.sentinels {
                    seen &= set.sentinel_sees_replica(*port).await;
                }
                synced && seen
            },
        )
        .await?;
        Ok(set)
    }

    /// `REDIS_URL` for the worker: every sentinel, then the master's name.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The port of the server the first sentinel names as master now.
    pub async fn master_port(&self) -> anyhow::Result<u16> {
        self.master_named_by(self.sentinels[0].0).await
    }

    /// A connection to the sentinel on `port`, with its password if it has one.
    async fn sentinel(&self, port: u16) -> anyhow::Result<MultiplexedConnection> {
        connect(port, self.sentinel_password.as_deref()).await
    }

    /// The master's port as the sentinel on `port` names it.
    async fn master_named_by(&self, port: u16) -> anyhow::Result<u16> {
        let mut conn = self.sentinel(port).await?;
        let (_, master): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await?;
        Ok(master)
    }

    /// `SENTINEL FAILOVER`: the replica becomes the master, the old master its replica. Returns
    /// once every sentinel names the new master and the old one replicates it (the sentinels
    /// demote it some seconds after the switch; until then it still says it is a master).
    pub async fn failover(&self) -> anyhow::Result<u16> {
        let before = self.master_port().await?;
        let mut conn = self.sentinel(self.sentinels[0].0).await?;
        let () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await?;
        let after = self.wait_for_new_master(before).await?;
        self.wait_until("the old master replicates the new one", async || {
            info(before, "replication").await.is_some_and(|info| {
                info.contains("role:slave") && info.contains("master_link_status:up")
            })
        })
        .await?;
        Ok(after)
    }

    /// SIGKILLs the master; returns once the sentinels promoted the replica.
    pub async fn kill_master(&mut self) -> anyhow::Result<u16> {
        let before = self.master_port().await?;
        let (_, server) = self
            .servers
            .iter_mut()
            .find(|(port, _)| *port == before)
            .context("the master is one of ours")?;
        if let Some(mut server) = server.take() {
            server.kill();
        }
        self.wait_for_new_master(before).await
    }

    /// Waits until every sentinel names a master other than `before`, and it takes writes.
    async fn wait_for_new_master(&self, before: u16) -> anyhow::Result<u16> {
        self.wait_until(
            "every sentinel names a new master, which takes writes",
            async || {
                let mut named = Vec::new();
                for (port, _) in &self.sentinels {
                    named.push(self.master_named_by(*port).await.ok());
                }
                match named.first() {
                    Some(Some(port)) if *port != before && named.iter().all(|n| n == &named[0]) => {
                        is_master(*port).await
                    }
                    _ => false,
                }
            },
        )
        .await?;
        self.master_port().await
    }

    async fn replica_in_sync(&self, port: u16) -> bool {
        info(port, "replication")
            .await
            .is_some_and(|info| info.contains("master_link_status:up"))
    }

    async fn sentinel_sees_replica(&self, port: u16) -> bool {
        let Ok(mut conn) = self.sentinel(port).await else {
            return false;
        };
        let replicas: redis::RedisResult<Vec<redis::Value>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await;
        replicas.is_ok_and(|replicas| !replicas.is_empty())
    }

    async fn wait_until(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + FAILOVER_DEADLINE;
        while !check().await {
            if Instant::now() > deadline {
                bail!("Sentinel set-up: not true within {FAILOVER_DEADLINE:?}: {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// Whether the server on `port` says it is a master.
async fn is_master(port: u16) -> bool {
    info(port, "replication")
        .await
        .is_some_and(|info| info.contains("role:master"))
}

/// `INFO section` of the server on `port`, if it answers.
async fn info(port: u16, section: &str) -> Option<String> {
    let mut conn = connect(port, None).await.ok()?;
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .ok()
}

async fn connect(port: u16, password: Option<&str>) -> anyhow::Result<MultiplexedConnection> {
    let auth = password.map_or_else(String::new, |password| format!(":{password}@"));
    let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}
