//! A Redis Cluster on loopback, for the tests and `just replicas`: three masters (no replicas)
//! from the installed `redis-server`, on private ports and in a private directory, torn down on
//! drop. It moves a key's slot to another master on request, as `redis-cli --cluster reshard`
//! does, so a test can watch the worker follow `MOVED` and `ASK` redirections.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Value};

use crate::local_servers::{free_port, start_redis_with, PrivateServer};

/// The slots each master starts with: all 16384, so the cluster is `ok` at once.
const SLOT_RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// How long the cluster may take to agree on its slot map before it is said to be broken.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// The running set-up.
pub struct ClusterSet {
    /// The masters by port (ascending, which picks a migration's target): port, node id, server.
    masters: Vec<(u16, String, PrivateServer)>,
    _dir: tempfile::TempDir,
}

impl ClusterSet {
    /// Starts the three masters, gives each a third of the slots and introduces them; returns
    /// once every node is `ok` and sees the whole slot map, so a client's first map is final.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the cluster")?;
        let mut nodes = Vec::new();
        for _ in &SLOT_RANGES {
            let port = free_port()?;
            // The default bus port (port + 10000) may be taken, or past 65535.
            let bus_port = free_port()?.to_string();
            let node_dir = dir.path().join(format!("node-{port}"));
            let config = node_dir.join(format!("nodes-{port}.conf"));
            let options = [
                ("--cluster-enabled", "yes"),
                ("--cluster-config-file", &config.to_string_lossy()),
                ("--cluster-node-timeout", "2000"),
                ("--cluster-port", &bus_port),
            ];
            let options: Vec<&str> = options.iter().flat_map(|(k, v)| [*k, *v]).collect();
            let server = start_redis_with(&node_dir, port, &options)?;
            let id: String = cluster(port, &["MYID"]).await?;
            nodes.push((port, bus_port, id, server));
        }
        nodes.sort_by_key(|node| node.0);
        for ((port, ..), (first, last)) in nodes.iter().zip(SLOT_RANGES) {
            let (first, last) = (first.to_string(), last.to_string());
            let () = cluster(*port, &["ADDSLOTSRANGE", &first, &last]).await?;
        }
        for (port, bus_port, ..) in &nodes[1..] {
            let meet = ["MEET", "127.0.0.1", &port.to_string(), bus_port];
            let () = cluster(nodes[0].0, &meet).await?;
        }
        let masters = nodes.into_iter().map(|(p, _, id, s)| (p, id, s)).collect();
        let set = Self { masters, _dir: dir };
        let expected: Vec<(u16, u16, u16)> = set
            .masters
            .iter()
            .zip(SLOT_RANGES)
            .map(|((port, ..), (first, last))| (first, last, *port))
            .collect();
        let what = "every node is ok and sees all three slot ranges";
        set.wait_until(what, async || {
            for (port, ..) in &set.masters {
                let info: String = cluster(*port, &["INFO"]).await.unwrap_or_default();
                let mut ranges = slot_ranges(*port).await.unwrap_or_default();
                ranges.sort();
                if !info.contains("cluster_state:ok") || ranges != expected {
                    return false;
                }
            }
            true
        })
        .await?;
        Ok(set)
    }

    /// `REDIS_URL` for the worker: every master.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .masters
            .iter()
            .map(|(port, ..)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The port of the master that owns `key`'s slot now, as the first node sees it.
    pub async fn master_of(&self, key: &str) -> anyhow::Result<u16> {
        let slot = self.slot_of(key).await?;
        owner_of(&slot_ranges(self.masters[0].0).await?, slot)
    }

    /// `n` (at most 3) stream names `{prefix}-<number>` whose slots belong to `n` different
    /// masters, so a test can spread streams over the cluster. `prefix` has no braces: a hash
    /// tag would put every name in one slot.
    pub async fn keys_on_different_masters(
        &self,
        prefix: &str,
        n: usize,
    ) -> anyhow::Result<Vec<String>> {
        if n > self.masters.len() {
            bail!("only {} masters for {n} keys", self.masters.len());
        }
        if prefix.contains(['{', '}']) {
            bail!("a key prefix with a hash tag puts every key in one slot: {prefix:?}");
        }
        let ranges = slot_ranges(self.masters[0].0).await?;
        let (mut keys, mut owners) = (Vec::new(), Vec::new());
        // Slots in thirds: a few tries find each master; many more mean a broken map.
        for suffix in 0..1000 {
            if keys.len() == n {
                return Ok(keys);
            }
            let key = format!("{prefix}-{suffix}");
            let owner = owner_of(&ranges, self.slot_of(&key).await?)?;
            if !owners.contains(&owner) {
                owners.push(owner);
                keys.push(key);
            }
        }
        bail!("no {n} keys {prefix}-<number> on different masters among 1000")
    }

    /// Moves `key`'s slot, with every key in it, to the next master by port, the way
    /// `redis-cli --cluster reshard` does: keys written meanwhile are not lost, since the source
    /// sends clients to the target (`ASK`) for keys it no longer has. Returns once every node
    /// names the target as the owner; returns the target's port.
    pub async fn migrate_slot_of(&self, key: &str) -> anyhow::Result<u16> {
        let slot_number = self.slot_of(key).await?;
        let slot = slot_number.to_string();
        let source = self.master_of(key).await?;
        let source_at = (self.masters.iter().position(|(port, ..)| *port == source))
            .context("the slot's owner is one of ours")?;
        let source_id = self.masters[source_at].1.as_str();
        let target_at = (source_at + 1) % self.masters.len();
        let (target, target_id, _) = &self.masters[target_at];
        let () = cluster(*target, &["SETSLOT", &slot, "IMPORTING", source_id]).await?;
        let () = cluster(source, &["SETSLOT", &slot, "MIGRATING", target_id]).await?;
        let mut from = connect(source).await?;
        loop {
            let keys: Vec<String> = cluster(source, &["GETKEYSINSLOT", &slot, "100"]).await?;
            if keys.is_empty() {
                break;
            }
            // OK, or NOKEY for keys deleted since GETKEYSINSLOT: both fine.
            let _: Value = redis::cmd("MIGRATE")
                .arg(&["127.0.0.1", &target.to_string(), "", "0", "5000", "KEYS"])
                .arg(&keys)
                .query_async(&mut from)
                .await
                .with_context(|| format!("migrating {} keys to port {target}", keys.len()))?;
        }
        // The target first: it bumps its epoch, so its claim wins wherever gossip disagrees.
        let (third, ..) = &self.masters[(target_at + 1) % self.masters.len()];
        for port in [*target, source, *third] {
            let () = cluster(port, &["SETSLOT", &slot, "NODE", target_id]).await?;
        }
        self.wait_until("every node names the slot's new owner", async || {
            for (port, ..) in &self.masters {
                let ranges = slot_ranges(*port).await.unwrap_or_default();
                if owner_of(&ranges, slot_number).ok() != Some(*target) {
                    return false;
                }
            }
            true
        })
        .await?;
        Ok(*target)
    }

    /// `CLUSTER KEYSLOT key`, asked of the first node.
    async fn slot_of(&self, key: &str) -> anyhow::Result<u16> {
        cluster(self.masters[0].0, &["KEYSLOT", key]).await
    }

    async fn wait_until(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        while !check().await {
            if Instant::now() > deadline {
                bail!("Redis Cluster: not true within {SETTLE_DEADLINE:?}: {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// `CLUSTER <args…>` on the node on `port`.
async fn cluster<T: FromRedisValue>(port: u16, args: &[&str]) -> anyhow::Result<T> {
    let mut conn = connect(port).await?;
    let reply = redis::cmd("CLUSTER").arg(args).query_async(&mut conn).await;
    reply.with_context(|| format!("CLUSTER {} on port {port}", args.join(" ")))
}

/// The node on `port`'s slot map, from `CLUSTER SLOTS`: (first slot, last slot, master port).
async fn slot_ranges(port: u16) -> anyhow::Result<Vec<(u16, u16, u16)>> {
    let entries: Vec<Vec<Value>> = cluster(port, &["SLOTS"]).await?;
    let field = |value: Option<&Value>| -> anyhow::Result<u16> {
        let value = value.context("CLUSTER SLOTS: a field is missing")?;
        u16::from_redis_value_ref(value).context("CLUSTER SLOTS: not a slot or a port")
    };
    entries
        .iter()
        .map(|entry| {
            let master = entry.get(2).context("CLUSTER SLOTS: no master")?;
            let master = Vec::<Value>::from_redis_value_ref(master)
                .context("CLUSTER SLOTS: the master is not an array")?;
            Ok((
                field(entry.first())?,
                field(entry.get(1))?,
                field(master.get(1))?,
            ))
        })
        .collect()
}

/// The master port that `ranges` gives `slot` to.
fn owner_of(ranges: &[(u16, u16, u16)], slot: u16) -> anyhow::Result<u16> {
    ranges
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .map(|(_, _, port)| *port)
        .with_context(|| format!("no master owns slot {slot}"))
}

/// An admin connection to one node. Responses may take longer than MIGRATE's own 5 s timeout.
async fn connect(port: u16) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let conn = client.get_multiplexed_async_connection_with_config(&config);
    conn.await
        .with_context(|| format!("connecting to the cluster node on port {port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cluster_starts_and_moves_a_slot() {
        let started = Instant::now();
        let cluster = ClusterSet::start().await.unwrap();
        eprintln!("cluster up in {:?}: {}", started.elapsed(), cluster.url());
        let keys = cluster
            .keys_on_different_masters("orders", 3)
            .await
            .unwrap();
        let mut owners = Vec::new();
        for key in &keys {
            owners.push(cluster.master_of(key).await.unwrap());
        }
        owners.sort();
        owners.dedup();
        assert_eq!(owners.len(), 3, "{keys:?} on {owners:?}");

        let nodes: Vec<String> = cluster
            .masters
            .iter()
            .map(|(port, ..)| format!("redis://127.0.0.1:{port}"))
            .collect();
        let client = redis::cluster::ClusterClient::new(nodes).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        let key = &keys[0];
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("a")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();

        let before = cluster.master_of(key).await.unwrap();
        let moved = Instant::now();
        let target = cluster.migrate_slot_of(key).await.unwrap();
        eprintln!("slot moved in {:?}", moved.elapsed());
        assert_ne!(target, before);
        assert_eq!(cluster.master_of(key).await.unwrap(), target);
        let len: usize = redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 1);
        eprintln!("test done in {:?}", started.elapsed());
    }
}
