//! The order service's own outbox relayed (issue 38, `RELAY_TABLE`): its table, shaped as it
//! documents it, written as its API writes it (one row per transaction, by connections of the
//! bench's own, not the worker's) at a steady rate while one `order-worker run` process relays
//! it; each row's time from its COMMIT returning to its entry reaching a reader blocked on the
//! row's topic stream (XREAD BLOCK). Measured with the opt-in notify trigger (`migrate
//! --relay-trigger`, which the docs recommend wherever the order service's table may be given
//! it) and without it (`RELAY_TRIGGER`'s default: the relay looks every `RELAY_POLL_INTERVAL`,
//! 200 ms). Every row must reach the stream exactly once, each order's in the order of its ids,
//! and be marked published.

mod arrivals;
mod writers;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use super::reader::Reader;
use super::workload::{Backlog, Workload};
use crate::order_service::{create_outbox_sql, OUTBOX_TABLE};
use crate::worker_process::{worker_env, LogTo, WorkerChild};
use arrivals::measure;
use writers::{insert, plan, write, Row, WRITERS};

/// The most seconds each side writes for (the bench's `--latency-seconds`, if fewer): two sides
/// of 3 s keep the phase near 10 s.
const MAX_SECONDS: u64 = 3;

/// How long the rows may take to reach the stream after the last COMMIT.
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(30);

/// COMMIT → XADD of the order service's rows, each way of waking the relay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayedTable {
    /// Rows per second the writers were paced at, and for how long.
    pub rate: u32,
    pub seconds: u64,
    pub writers: usize,
    /// With the notify trigger `migrate --relay-trigger` adds.
    pub trigger: Relayed,
    /// Without it: the relay's poll finds the rows.
    pub poll: Relayed,
}

/// What one side measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Relayed {
    /// Rows written and measured (each reached the stream once).
    pub rows: u64,
    /// The rate they were committed at, from the first COMMIT to the last.
    pub rows_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Creates the order service's table in the bench's database, measures relaying it without the
/// trigger and then with it (as an operator would add it), and drops it again.
pub async fn phase(
    workload: &mut Workload,
    order_worker: &Path,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<RelayedTable> {
    let seconds = seconds.min(MAX_SECONDS);
    let count = (u64::from(rate) * seconds).max(1) as usize;
    workload.reset(Backlog::Fulfillment).await?;
    let create = create_outbox_sql(OUTBOX_TABLE, "JSONB");
    let mut db = workload.db().await?;
    db.batch_execute(&format!("DROP TABLE IF EXISTS {OUTBOX_TABLE}; {create}"))
        .await?;
    let poll = side(workload, order_worker, rate, count, "poll").await?;
    add_trigger(workload, order_worker).await?;
    let trigger = side(workload, order_worker, rate, count, "trigger").await?;
    db.batch_execute(&format!("DROP TABLE {OUTBOX_TABLE}"))
        .await?;
    Ok(RelayedTable {
        rate,
        seconds,
        writers: WRITERS,
        trigger,
        poll,
    })
}

/// `order-worker migrate` with `RELAY_TRIGGER=true`, as the docs have an operator add the
/// trigger.
async fn add_trigger(workload: &Workload, order_worker: &Path) -> anyhow::Result<()> {
    let migrated = tokio::process::Command::new(order_worker)
        .arg("migrate")
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", &workload.connections.database_url)
        .env("RELAY_TABLE", OUTBOX_TABLE)
        .env("RELAY_TRIGGER", "true")
        .output()
        .await
        .context("running order-worker migrate")?;
    if !migrated.status.success() {
        bail!(
            "order-worker migrate --relay-trigger: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
    }
    Ok(())
}

/// One worker process relaying the emptied table while `count` rows are written at `rate`;
/// checks what reached the stream and the table, and measures.
async fn side(
    workload: &mut Workload,
    order_worker: &Path,
    rate: u32,
    count: usize,
    name: &str,
) -> anyhow::Result<Relayed> {
    let what = format!("relayed table ({name})");
    let topic = workload.relayed_topic();
    workload.delete_keys(workload.relayed_keys()).await?;
    (workload.db().await?)
        .batch_execute(&format!("TRUNCATE {OUTBOX_TABLE}"))
        .await?;
    // A connection of its own: a blocked XREAD holds up whatever else is sent on one.
    let connections = &workload.connections;
    let redis =
        crate::local_servers::connect_redis(&connections.redis_tls, &connections.redis_url).await?;
    let reader = Reader::default();
    let reading = tokio::spawn(reader.clone().run(redis, topic.clone()));
    let _stop_reading = reader.stop_on_drop();
    let worker_name = format!("bench-relay-{name}");
    let mut env = worker_env(connections, &workload.stream, &worker_name);
    env.push(("RELAY_TABLE".to_owned(), OUTBOX_TABLE.to_owned()));
    let log = workload.log(&worker_name);
    let (mut worker, _) =
        WorkerChild::spawn(order_worker, &worker_name, &env, LogTo::File(&log)).await?;
    let see_log = || format!("{what} (log: {})", log.display());
    // A first row, unmeasured: the relay has taken the lead and its fence once it is there.
    let warm_up = Row {
        event_id: uuid::Uuid::new_v4().to_string(),
        order: "bench-relay-warm-up".to_owned(),
        seq: count,
    };
    insert(&mut workload.db().await?, &topic, &warm_up).await?;
    arrived(&reader, 1).await.with_context(see_log)?;
    let rows = plan(workload, count);
    let committed = write(workload, &topic, &rows, rate).await?;
    let all_arrived = arrived(&reader, count + 1).await;
    reader.stop();
    let arrivals = reading.await.context("reader task")??;
    worker.stop().await?;
    all_arrived.with_context(see_log)?;
    check_stored(workload, &topic, count + 1)
        .await
        .with_context(see_log)?;
    measure(&arrivals, &rows, &warm_up, &committed).with_context(see_log)
}

/// Waits until `reader` received `expected` entries, at most [`ARRIVAL_DEADLINE`].
async fn arrived(reader: &Reader, expected: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + ARRIVAL_DEADLINE;
    while reader.received() < expected {
        if Instant::now() >= deadline {
            bail!(
                "{} of {expected} row(s) reached the stream within {ARRIVAL_DEADLINE:?}",
                reader.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Once the worker stopped: the stream holds `expected` entries (none published twice after
/// the reader stopped) and the table's every row is marked published.
async fn check_stored(workload: &mut Workload, topic: &str, expected: usize) -> anyhow::Result<()> {
    let length: usize = redis::cmd("XLEN")
        .arg(topic)
        .query_async(&mut workload.redis)
        .await?;
    if length != expected {
        bail!("{topic} holds {length} entries for {expected} rows");
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let unmarked: Count = diesel::sql_query(format!(
        "SELECT count(*) AS rows FROM {OUTBOX_TABLE} \
         WHERE published_at IS NULL OR status <> 'published'"
    ))
    .get_result(&mut workload.db().await?)
    .await?;
    if unmarked.rows > 0 {
        bail!("{} row(s) not marked published", unmarked.rows);
    }
    Ok(())
}
