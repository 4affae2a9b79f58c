//! Which Redis set-up `replicas` and `bench` run against: the servers found or given, or a
//! Sentinel set-up or a Cluster of their own on loopback, started from the installed
//! `redis-server` and stopped when the run ends.

use crate::cluster::ClusterSet;
use crate::local_servers::ServerUrls;
use crate::sentinel::SentinelSet;
use order_worker::DEFAULT_DATABASE_URL;

/// The command-line choice of topology.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Topology {
    /// Run against a Redis Sentinel set-up of its own on loopback (a master, a replica, three
    /// sentinels; `redis+sentinel://` REDIS_URL) instead of one Redis server.
    #[arg(long, conflicts_with_all = ["redis_url", "cluster"])]
    pub sentinel: bool,
    /// Run against a Redis Cluster of its own on loopback (three masters; `redis+cluster://`
    /// REDIS_URL) instead of one Redis server.
    #[arg(long, conflicts_with = "redis_url")]
    pub cluster: bool,
}

/// A set-up started for the run: keep it until the run ends, dropping it stops the servers.
pub enum Started {
    Nothing,
    Sentinel(SentinelSet),
    Cluster(ClusterSet),
}

impl Topology {
    /// Starts the chosen set-up, if any, and points `urls` at it (PostgreSQL: the local default
    /// port unless given).
    pub async fn start(&self, urls: &mut ServerUrls) -> anyhow::Result<Started> {
        let started = match (self.sentinel, self.cluster) {
            (true, _) => {
                let set = SentinelSet::start().await?;
                urls.redis_url = Some(set.url());
                Started::Sentinel(set)
            }
            (_, true) => {
                let set = ClusterSet::start().await?;
                urls.redis_url = Some(set.url());
                Started::Cluster(set)
            }
            _ => return Ok(Started::Nothing),
        };
        if urls.database_url.is_none() {
            urls.database_url = Some(format!("{DEFAULT_DATABASE_URL}?sslmode=disable"));
        }
        Ok(started)
    }
}
