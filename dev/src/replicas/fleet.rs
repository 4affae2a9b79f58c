//! The replicas as a Deployment runs them: N `order-worker run` children in one group, each
//! with a pod-like name and a log file, replaced one at a time in a rolling restart.

use std::path::PathBuf;

use anyhow::bail;
use order_worker::RedisConnection;

use super::names::ReplicaSet;
use super::watch::snapshot;
use crate::worker_process::{worker_env, LogTo, WorkerChild};
use order_worker::ops::table::Table;
use order_worker::ops::OpsConfig;
use order_worker::{Connections, StreamConfig};

/// What every replica shares: the binary, where the servers are, the stream and group, the
/// batch size, and the directory their logs go to.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The `order-worker` binary each replica runs (`order-worker run`).
    pub order_worker: PathBuf,
    /// Redis, and the run's own database (not the server's admin database).
    pub connections: Connections,
    /// The streams the replicas consume, in one group: the first is STREAM (the fulfillment
    /// topic's); the others' settings come with `extra_env`.
    pub streams: Vec<StreamConfig>,
    pub batch_size: u32,
    /// Settings beyond the stream, batch size and log format (TOPICS, the payment streams…).
    pub extra_env: Vec<(String, String)>,
    /// Each replica logs to `<log_dir>/<name>.log`, kept after the run for a look.
    pub log_dir: PathBuf,
}

/// What one replica did, from its log.
#[derive(Debug, Clone)]
pub struct ReplicaCounts {
    /// Its pod-like name (its consumer name).
    pub name: String,
    /// Whether it still runs.
    pub running: bool,
    /// Events it processed.
    pub events: u64,
    /// Status changes it wrote.
    pub transitions: u64,
    /// Status changes it withdrew, recomputing an order for a late event (it or another wrote
    /// them).
    pub withdrawn: u64,
}

/// One replica started during the run, running or stopped.
struct Replica {
    child: WorkerChild,
    running: bool,
}

/// Every replica started during the run, in starting order; stopped ones are kept for the
/// report of who did what.
pub struct Fleet {
    settings: FleetSettings,
    replicas: Vec<Replica>,
}

impl Fleet {
    /// No replica yet: they are started one by one, each waited for, as a rollout does.
    pub fn new(settings: FleetSettings) -> Self {
        Self {
            settings,
            replicas: Vec::new(),
        }
    }

    /// Starts one more replica named from `set` and waits until it subscribed.
    pub async fn start(&mut self, set: &ReplicaSet) -> anyhow::Result<()> {
        let name = set.pod_name();
        let settings = &self.settings;
        let mut env = worker_env(&settings.connections, &settings.streams[0], &name);
        env.extend([
            ("BATCH_SIZE".to_owned(), settings.batch_size.to_string()),
            ("LOG_FORMAT".to_owned(), "text".to_owned()),
        ]);
        // Later settings win over worker_env's (TOPICS).
        env.extend(settings.extra_env.iter().cloned());
        let log = settings.log_dir.join(format!("{name}.log"));
        let (child, took) = WorkerChild::spawn(
            &settings.order_worker,
            &name,
            &env,
            LogTo::Counted(Some(&log)),
        )
        .await?;
        println!("started {name}: subscribed after {} ms", took.as_millis());
        self.replicas.push(Replica {
            child,
            running: true,
        });
        Ok(())
    }

    /// Stops every running replica, one after the other, each started again under a new
    /// pod-like name (a new ReplicaSet, as `kubectl rollout restart` makes) once the old one
    /// exited. Fails if a replica does not exit with status 0 or leaves anything pending under
    /// its name: its replacement has another name, so nothing would ever read those entries
    /// again but a claim after CLAIM_MIN_IDLE_MS.
    pub async fn rolling_restart(&mut self, redis: &mut RedisConnection) -> anyhow::Result<()> {
        let next = ReplicaSet::new();
        let running: Vec<usize> = (0..self.replicas.len())
            .filter(|&i| self.replicas[i].running)
            .collect();
        for index in running {
            self.stop(index, redis).await?;
            self.start(&next).await?;
        }
        println!("rolling restart done");
        Ok(())
    }

    /// SIGTERMs replica `index`, waits for exit status 0 and checks that its consumer holds
    /// nothing any more on any stream.
    async fn stop(&mut self, index: usize, redis: &mut RedisConnection) -> anyhow::Result<()> {
        let replica = &mut self.replicas[index];
        replica.running = false;
        replica.child.stop().await?;
        let name = &replica.child.name;
        for stream in &self.settings.streams {
            let ops = OpsConfig::for_connections(&self.settings.connections, stream);
            let left = snapshot(redis, &ops)
                .await?
                .consumers
                .iter()
                .find(|consumer| &consumer.name == name)
                .map_or(0, |consumer| consumer.pending);
            if left > 0 {
                bail!(
                    "{name} exited leaving {left} entries of {} pending under its name",
                    stream.stream
                );
            }
        }
        println!("stopped {name}: SIGTERM, exit status 0, nothing left pending");
        Ok(())
    }

    /// The replicas running now: name, process id and when each was started.
    pub fn running(&self) -> Vec<(&str, u32, std::time::Instant)> {
        self.replicas
            .iter()
            .filter(|replica| replica.running)
            .filter_map(|replica| {
                let child = &replica.child;
                Some((child.name.as_str(), child.pid()?, child.started))
            })
            .collect()
    }

    /// Each replica's log file, in starting order.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.replicas
            .iter()
            .map(|replica| {
                self.settings
                    .log_dir
                    .join(format!("{}.log", replica.child.name))
            })
            .collect()
    }

    /// Stops every replica still running (at the end of the run).
    pub async fn stop_all(&mut self, redis: &mut RedisConnection) -> anyhow::Result<()> {
        for index in 0..self.replicas.len() {
            if self.replicas[index].running {
                self.stop(index, redis).await?;
            }
        }
        Ok(())
    }

    /// Who did what: per replica, the events it processed and the status changes it wrote and
    /// withdrew (recomputing an order for a late event), from its log; and the status changes
    /// all replicas left written together.
    pub fn report(&self) -> (String, u64) {
        let columns = ["replica", "state", "events", "status changes", "withdrawn"];
        let mut table = Table::new(&columns);
        let (mut transitions, mut withdrawals) = (0, 0);
        for replica in &self.replicas {
            let (events, written, withdrawn) = replica.child.counts();
            transitions += written;
            withdrawals += withdrawn;
            let state = if replica.running {
                "running"
            } else {
                "stopped"
            };
            table.row(vec![
                replica.child.name.clone(),
                state.to_owned(),
                events.to_string(),
                written.to_string(),
                withdrawn.to_string(),
            ]);
        }
        (table.render(2), transitions.saturating_sub(withdrawals))
    }

    /// Every replica started, in starting order, with what it did so far.
    pub fn counts(&self) -> Vec<ReplicaCounts> {
        self.replicas
            .iter()
            .map(|replica| {
                let (events, transitions, withdrawn) = replica.child.counts();
                ReplicaCounts {
                    name: replica.child.name.clone(),
                    running: replica.running,
                    events,
                    transitions,
                    withdrawn,
                }
            })
            .collect()
    }

    /// Replicas that processed no event at all, by name.
    pub fn idle(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|replica| replica.child.counts().0 == 0)
            .map(|replica| replica.child.name.clone())
            .collect()
    }
}
