//! `order-worker-dev dapr-consumer`: the order service's old worker as Dapr's `pubsub.redis`
//! component ran it (DESIGN §1), for rehearsing the cut-over and its rollback against the real
//! servers. Per topic: group = consumer name = `--consumer-id` (every replica the same
//! consumer), `XGROUP CREATE … 0 MKSTREAM`, `XREADGROUP COUNT <queue-depth>` into a queue that
//! `--concurrency` handlers take from, `XACK` once the handler succeeded, and a reclaim loop
//! every `--redeliver-interval` (`XPENDING - + 100` group-wide, `XCLAIM` of what is idle for
//! `--processing-timeout`). The handler is the old worker's: one event applied to PostgreSQL
//! in one transaction, with the product's own decode and `apply_batch`, so the end state is
//! comparable with the in-order replay. As Dapr ≤ 1.16 with an app that answers `DROP` for
//! what it cannot parse: an undecodable entry is acked and dropped, a failed apply stays
//! pending for the reclaim loop. SIGTERM stops reading and lets the handlers finish the entry
//! they hold; what is still queued stays pending under the consumer id, as Dapr leaves it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch, Mutex};

use order_worker::{apply_batch, decode, ensure_group, Incoming, Tables, DEFAULT_MAX_ENTRY_BYTES};
use order_worker::{Connections, Keyspace, RedisConnection, StreamConfig, Topic, Topics};

/// One stream entry: its id and its fields in order.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// How long one read blocks (Dapr's `readTimeout` is forever; a bound lets SIGTERM be seen).
const BLOCK: Duration = Duration::from_secs(1);

/// Dapr's reclaim loop reads this many pending entries per round.
const RECLAIM_BATCH: usize = 100;

/// Imitates Dapr's `pubsub.redis` subscriber with the order service's old worker behind it:
/// one consumer group per topic named by --consumer-id, that same id as the consumer name of
/// every replica, XREADGROUP --queue-depth at a time into --concurrency handlers, XACK after a
/// handler succeeded, and a reclaim loop (XPENDING + XCLAIM) every --redeliver-interval for
/// entries idle longer than --processing-timeout. Each handler applies one event to
/// PostgreSQL in its own transaction. SIGTERM stops it as a sidecar stops: entries read but
/// not handled stay pending under the consumer id.
#[derive(Clone, Debug, clap::Args)]
pub struct DaprConsumerConfig {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub topics: Topics,
    /// Stream key of `fulfillment.status_changed`.
    #[arg(long, env = "STREAM", default_value = "fulfillment.status_changed")]
    pub stream: String,
    /// Dapr's `consumerID` (defaults to the app-id there): the group's name on every stream,
    /// and the consumer name of every replica.
    #[arg(long)]
    pub consumer_id: String,
    /// Dapr's `queueDepth`: entries read at a time and queued for the handlers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub queue_depth: u32,
    /// Dapr's `concurrency`: handlers taking entries from the queue at once (no order kept).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub concurrency: u32,
    /// Dapr's `redeliverInterval`: how often the reclaim loop runs.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub redeliver_interval: Duration,
    /// Dapr's `processingTimeout`: how long an entry stays pending before it is claimed again.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub processing_timeout: Duration,
    /// How long the app takes per event before it applies it: a slow app, so that entries
    /// are held (pending) while it works.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub handler_delay: Duration,
}

/// Consumes until SIGTERM (or Ctrl-C), then returns once the handlers let go.
pub async fn run(config: DaprConsumerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed first: a SIGTERM while it connects stops it cleanly too.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let base = StreamConfig {
        group: config.consumer_id.clone(),
        consumer: Some(config.consumer_id.clone()),
        ..StreamConfig::for_stream(&config.stream)
    };
    let keyspace = Keyspace::of(&config.connections.redis_url)?;
    let subscriptions = config.topics.subscriptions(&base, keyspace)?;
    let mut db = order_worker::connect_postgres(config.connections.database_url.clone()).await?;
    let tables = Tables::inspect(&mut db, &config.connections.orders_table).await?;
    let mut redis = connect(&config).await?;
    for subscription in &subscriptions {
        ensure_group(&mut redis, &subscription.stream)
            .await
            .with_context(|| format!("XGROUP CREATE {}", subscription.stream.stream))?;
    }
    let keys: Vec<&str> = subscriptions
        .iter()
        .map(|s| s.stream.stream.as_str())
        .collect();
    // The line a test or a person waits for: every group exists, reading starts.
    println!("reading {} as {}", keys.join(", "), config.consumer_id);
    let (stop, stopped) = watch::channel(false);
    let consumers = subscriptions.into_iter().map(|subscription| {
        let consumer = Subscriber {
            config: &config,
            topic: subscription.topic,
            stream: subscription.stream,
            tables: tables.clone(),
            redis: redis.clone(),
        };
        consumer.run(stopped.clone())
    });
    let running = futures_util::future::try_join_all(consumers);
    tokio::pin!(running);
    tokio::select! {
        result = &mut running => return result.map(drop),
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = stop.send(true);
    running.await.map(drop)
}

async fn connect(config: &DaprConsumerConfig) -> anyhow::Result<RedisConnection> {
    crate::local_servers::connect_redis(
        &config.connections.redis_tls,
        &config.connections.redis_url,
    )
    .await
}

/// One topic's subscription: its reader, handlers and reclaim loop.
struct Subscriber<'a> {
    config: &'a DaprConsumerConfig,
    topic: &'static dyn Topic,
    stream: StreamConfig,
    tables: Tables,
    redis: RedisConnection,
}

impl Subscriber<'_> {
    async fn run(self, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (queue, taken) = mpsc::channel::<Entry>(self.config.queue_depth as usize);
        let taken = Arc::new(Mutex::new(taken));
        let handlers = (0..self.config.concurrency).map(|_| self.handle(&taken, stopped.clone()));
        tokio::try_join!(
            self.read(&queue, stopped.clone()),
            self.reclaim(&queue, stopped.clone()),
            futures_util::future::try_join_all(handlers),
        )
        .map(drop)
    }

    /// `XREADGROUP … COUNT <queue-depth> BLOCK … >` on a connection of its own (a blocking
    /// read would hold up the acks on a shared one), each entry queued for the handlers.
    async fn read(
        &self,
        queue: &mpsc::Sender<Entry>,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut conn = connect(self.config).await?;
        while !*stopped.borrow() {
            let reply: Option<Vec<(String, Vec<Entry>)>> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.stream.group)
                .arg(&self.config.consumer_id)
                .arg("COUNT")
                .arg(self.config.queue_depth)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.stream.stream)
                .arg(">")
                .query_async(&mut conn)
                .await
                .with_context(|| format!("XREADGROUP {}", self.stream.stream))?;
            for entry in reply.into_iter().flatten().flat_map(|(_, entries)| entries) {
                tokio::select! {
                    sent = queue.send(entry) => sent.context("the handlers are gone")?,
                    // Read but never handled: it stays pending, as a stopping sidecar leaves it.
                    _ = stopped.changed() => return Ok(()),
                }
            }
        }
        Ok(())
    }

    /// Every `--redeliver-interval`: the group's pending entries idle for
    /// `--processing-timeout`, whoever holds them, claimed and queued again.
    async fn reclaim(
        &self,
        queue: &mpsc::Sender<Entry>,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut redis = self.redis.clone();
        let timeout = self.config.processing_timeout.as_millis() as u64;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.redeliver_interval) => {}
                _ = stopped.changed() => return Ok(()),
            }
            let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
                .arg(&self.stream.stream)
                .arg(&self.stream.group)
                .arg("-")
                .arg("+")
                .arg(RECLAIM_BATCH)
                .query_async(&mut redis)
                .await
                .with_context(|| format!("XPENDING {}", self.stream.stream))?;
            let idle: Vec<&str> = pending
                .iter()
                .filter(|(_, _, idle_ms, _)| *idle_ms >= timeout)
                .map(|(id, ..)| id.as_str())
                .collect();
            if idle.is_empty() {
                continue;
            }
            // Entries deleted from the stream meanwhile are dropped from the pending list by
            // XCLAIM itself (Redis 7) and not returned.
            let claimed: Vec<Entry> = redis::cmd("XCLAIM")
                .arg(&self.stream.stream)
                .arg(&self.stream.group)
                .arg(&self.config.consumer_id)
                .arg(timeout)
                .arg(&idle)
                .query_async(&mut redis)
                .await
                .with_context(|| format!("XCLAIM {}", self.stream.stream))?;
            for entry in claimed {
                queue.send(entry).await.context("the handlers are gone")?;
            }
        }
    }

    /// One handler: takes entries until told to stop, each handled and acked on success.
    async fn handle(
        &self,
        taken: &Mutex<mpsc::Receiver<Entry>>,
        stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut db =
            order_worker::connect_postgres(self.config.connections.database_url.clone()).await?;
        let mut redis = self.redis.clone();
        loop {
            let next = tokio::select! {
                next = async { taken.lock().await.recv().await } => next,
                () = until_stopped(stopped.clone()) => None,
            };
            let Some((id, fields)) = next else {
                return Ok(());
            };
            tokio::time::sleep(self.config.handler_delay).await;
            if self.apply(&mut db, &id, &fields).await {
                let _: u64 = redis::cmd("XACK")
                    .arg(&self.stream.stream)
                    .arg(&self.stream.group)
                    .arg(&id)
                    .query_async(&mut redis)
                    .await
                    .with_context(|| format!("XACK {} {id}", self.stream.stream))?;
            }
        }
    }

    /// The old worker's handler: whether the entry is done with (applied, or undecodable and
    /// dropped) and may be acked; false leaves it pending for the reclaim loop.
    async fn apply(
        &self,
        db: &mut diesel_async::AsyncPgConnection,
        id: &str,
        fields: &[(String, Vec<u8>)],
    ) -> bool {
        let order_ids = self.tables.orders.order_ids();
        let event = match decode(self.topic, fields, DEFAULT_MAX_ENTRY_BYTES, order_ids) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(stream = %self.stream.stream, id, %error, "dropped (DROP)");
                return true;
            }
        };
        let incoming = [Incoming {
            entry_id: id,
            event: &event,
        }];
        match apply_batch(db, &self.tables, &incoming).await {
            // An order that does not exist yet: the old worker answered RETRY.
            Ok(plan) => !plan
                .outcomes
                .iter()
                .any(|outcome| outcome.as_str() == "unknown_order"),
            Err(error) => {
                tracing::warn!(stream = %self.stream.stream, id, %error, "left pending (RETRY)");
                false
            }
        }
    }
}

/// Resolves once `stopped` turns true.
async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
