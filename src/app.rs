//! The two commands that run in the pod: `run` (the worker with its signals, HTTP endpoint and
//! metrics, wired together) and `migrate`.

use anyhow::Context;

use crate::config::{MigrateConfig, WorkerConfig};
use crate::http::Health;
use crate::shutdown;
use crate::store::migrate;
use crate::worker::Worker;

/// `order-worker run`: consumes until SIGTERM/SIGINT, then finishes the batches in flight
/// within `SHUTDOWN_TIMEOUT`.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let signals = shutdown::Signals::install().context("listening for SIGTERM and SIGINT")?;
    let (trigger, stop) = shutdown::channel();
    tokio::spawn(signals.forward(trigger));
    let timeout = config.shutdown_timeout;
    let metrics = crate::instruments::install();
    tokio::spawn(crate::instruments::upkeep(metrics.clone()));
    crate::outbox::instruments::describe();
    // Served from the start: a worker waiting for its servers is alive, and says why it is not
    // ready yet.
    let http_addr = config.http_addr;
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("listening on HTTP_ADDR {http_addr}"))?;
    tracing::info!(
        "serving /healthz, /readyz, /metrics and /subscriptions on http://{}",
        listener.local_addr()?
    );
    let health = Health::default();
    let served = health.clone();
    tokio::spawn(async move {
        if let Err(error) = crate::http::serve(listener, served, metrics).await {
            tracing::error!("the HTTP endpoint stopped: {error:#}");
        }
    });
    let mut stopped_early = stop.clone();
    let worker = tokio::select! {
        worker = Worker::start_waiting(config, &health.starting) => worker?,
        () = stopped_early.triggered() => {
            tracing::info!("stopped while starting: nothing was read");
            return Ok(());
        }
    };
    health.running(worker.readiness());
    shutdown::within(timeout, stop.clone(), worker.run(stop)).await
}

/// `order-worker migrate`: applies the embedded migrations that are not applied yet, the
/// contract ones only with `--contract`.
pub async fn migrate(config: MigrateConfig) -> anyhow::Result<()> {
    // Before anything is applied: a mapping that does not fit the order service's outbox
    // table is refused with the column it names.
    if config.relay.relay_table.is_some() {
        let mut conn =
            crate::store::connect::connect_or_unreachable(config.database_url.clone()).await?;
        crate::outbox::check_mapping(&mut conn, &config.relay).await?;
        if let (true, Some(table)) = (config.relay_trigger, &config.relay.relay_table) {
            use diesel_async::SimpleAsyncConnection;
            conn.batch_execute(&crate::outbox::trigger(table))
                .await
                .with_context(|| format!("giving RELAY_TABLE {table} its notify trigger"))?;
            tracing::info!("RELAY_TABLE {table}: each commit that writes rows notifies the relay");
        }
    }
    let migrated =
        migrate::run_pending(&config.database_url, &config.orders_table, config.contract).await?;
    let applied = &migrated.applied;
    if applied.is_empty() {
        tracing::info!("schema is up to date");
    } else {
        tracing::info!(migrations = ?applied, "applied {} migration(s)", applied.len());
    }
    if !migrated.held.is_empty() {
        tracing::info!(
            migrations = ?migrated.held,
            "held back {} contract migration(s): they drop what builds before them need; \
             run `order-worker migrate --contract` once no rollback to such a build is wanted",
            migrated.held.len()
        );
    }
    Ok(())
}
