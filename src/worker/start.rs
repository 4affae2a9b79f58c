//! Starting: check the schema, join the groups, connect. An outage (a server that does not
//! answer) is waited out with backoff, logged once and shown on `/readyz`; what waiting cannot
//! fix (a bad URL, credentials, a schema behind, TLS) fails at once with the reason.

use std::future::Future;

use anyhow::Context;

use super::Worker;
use crate::config::{Subscription, WorkerConfig};
use crate::http::Starting;
use crate::instruments::Recorder;
use crate::retry::Unreachable;
use crate::retry::{Dependency, Retry};
use crate::shutdown;
use crate::store::{self, migrate};
use crate::stream::connect::{RedisTarget, Timeouts};
use crate::stream::{self, ensure_group, Reader};
use crate::telemetry::SUBSCRIBING;

impl Worker {
    /// Checks the schema, joins the groups (creating them if needed) and connects the reader.
    /// Fails with a clear message rather than starting half-configured.
    pub async fn start(config: WorkerConfig) -> anyhow::Result<Self> {
        Self::start_waiting(config, &Starting::default()).await
    }

    /// [`Worker::start`], waiting for Redis and PostgreSQL as long as they do not answer
    /// (`starting` says what it waits for); drop the future to stop waiting.
    pub async fn start_waiting(config: WorkerConfig, starting: &Starting) -> anyhow::Result<Self> {
        let subscriptions = config.subscriptions()?;
        check_timing(&config)?;
        let redis = RedisTarget::new(&config.connections.redis_tls, &config.connections.redis_url)?;
        let recorder = Recorder::default();
        let redis_health = Dependency::new("Redis", "redis").recording(recorder.clone());
        let db_health = Dependency::new("PostgreSQL", "postgres").recording(recorder.clone());
        let database_url = &config.connections.database_url;
        let tables = inspect_tables(&config, &db_health, starting).await?;
        wait_out(
            "joining the consumer groups",
            &redis_health,
            starting,
            || join_groups(&redis, &config, &subscriptions),
        )
        .await?;
        let consumer = config.stream.consumer_name();
        let streams: Vec<_> = subscriptions.iter().map(|s| s.stream.clone()).collect();
        let reader = wait_out(
            "connecting the stream reader",
            &redis_health,
            starting,
            || async {
                Reader::connect(
                    redis.clone(),
                    streams.clone(),
                    consumer.clone(),
                    config.block(),
                )
                .await
                .map_err(lost)
            },
        )
        .await?;
        // One connection per lane of each batch in flight, and one spare for reconnects.
        let db = store::pool(database_url, config.transactions_at_once() as u32 + 1);
        announce(&subscriptions, &consumer, &config);
        Ok(Self {
            redis: stream::pool(redis),
            config,
            subscriptions,
            consumer,
            db,
            tables,
            reader: Some(reader),
            recorder,
            redis_health,
            db_health,
        })
    }
}

/// Refuses settings that would make a live replica look gone to the others.
fn check_timing(config: &WorkerConfig) -> anyhow::Result<()> {
    if config.consumer_gone_ms <= config.block_ms {
        anyhow::bail!(
            "CONSUMER_GONE_MS ({}) must exceed BLOCK_MS ({}): a replica waiting on a read \
             would look gone",
            config.consumer_gone_ms,
            config.block_ms
        );
    }
    Ok(())
}

/// Says what the worker consumes and whether it publishes its status changes.
fn announce(subscriptions: &[Subscription], consumer: &str, config: &WorkerConfig) {
    for Subscription { topic, stream } in subscriptions {
        tracing::info!(
            topic = topic.name(),
            "{SUBSCRIBING}: {}, group: {}, consumer: {}",
            stream.stream,
            stream.group,
            consumer
        );
    }
    let events = &config.order_events;
    if events.order_events {
        tracing::info!(
            "publishing status changes to {} (through the outbox)",
            events.order_events_topic
        );
    } else {
        tracing::warn!(
            "ORDER_EVENTS=off: status changes are not published (the order service must \
             publish them)"
        );
    }
}

/// Connects with a connection of its own rather than the pool's (a pool that cannot connect
/// says only that it timed out; this says why) and creates each group that is missing.
async fn join_groups(
    redis: &RedisTarget,
    config: &WorkerConfig,
    subscriptions: &[Subscription],
) -> anyhow::Result<()> {
    let timeouts = Timeouts {
        connect: Some(std::time::Duration::from_secs(5)),
        response: None,
    };
    let redis_url = &config.connections.redis_url;
    let mut conn = stream::client::connect_checked(redis, redis_url, timeouts).await?;
    for Subscription { stream, .. } in subscriptions {
        ensure_group(&mut conn, stream)
            .await
            .map_err(lost)
            .with_context(|| format!("creating the consumer group on {}", stream.stream))?;
    }
    Ok(())
}

/// A Redis error once connecting worked (it answered PING): the server has talked to us, so
/// a connection lost or closed now is an outage to wait out, not a misconfiguration.
fn lost(error: redis::RedisError) -> anyhow::Error {
    if error.is_io_error() || error.is_connection_dropped() {
        anyhow::Error::new(Unreachable(error.to_string()))
    } else {
        anyhow::Error::new(error)
    }
}

/// The tables as the worker's statements use them, once the schema is current; and RELAY_TABLE
/// checked.
async fn inspect_tables(
    config: &WorkerConfig,
    db_health: &Dependency,
    starting: &Starting,
) -> anyhow::Result<store::Tables> {
    let (database_url, orders_table) = (
        &config.connections.database_url,
        &config.connections.orders_table,
    );
    let announce_into = store::orders::Target::of(&config.order_events, &config.relay);
    let tables = wait_out("checking the database schema", db_health, starting, || {
        migrate::ensure_current(database_url, orders_table)
    })
    .await?
    .announcing(config.order_events.order_events)
    .announcing_into(&announce_into)
    .serving(config.topics.catalogue().clone());
    check_relay_table(config, db_health, starting).await?;
    Ok(tables)
}

/// Refuses to start when RELAY_TABLE is set and lacks a mapped column (`migrate` refuses the
/// same way).
async fn check_relay_table(
    config: &WorkerConfig,
    db_health: &Dependency,
    starting: &Starting,
) -> anyhow::Result<()> {
    let mapping = &config.relay.mapping;
    let into = &config.order_events.order_events_table;
    if into.is_some() && into != &mapping.relay_table {
        anyhow::bail!(
            "ORDER_EVENTS_TABLE must name RELAY_TABLE: the relay of that table publishes the \
             status changes written into it (unset, they go to order_events_outbox)"
        );
    }
    if mapping.relay_table.is_none() {
        return Ok(());
    }
    wait_out("checking RELAY_TABLE", db_health, starting, || async {
        let url = config.connections.database_url.clone();
        let mut conn = store::connect::connect_or_unreachable(url).await?;
        crate::outbox::check_mapping(&mut conn, mapping).await
    })
    .await
}

/// Runs `step` until it succeeds, waiting with backoff while its server does not answer.
async fn wait_out<T, F: Future<Output = anyhow::Result<T>>>(
    what: &'static str,
    dependency: &Dependency,
    starting: &Starting,
    mut step: impl FnMut() -> F,
) -> anyhow::Result<T> {
    // Never triggered: the caller stops the wait by dropping this future.
    let (_trigger, never) = shutdown::channel();
    let mut retry = Retry::new(what, dependency, &never);
    loop {
        match step().await {
            Ok(value) => {
                retry.succeeded();
                starting.set(None);
                return Ok(value);
            }
            Err(error) if unreachable(&error) => {
                starting.set(Some(format!("{what}: {error:#}")));
                retry.failed(&format!("{error:#}")).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether the error is a server that did not answer (down, restarting), not one that
/// refused us. A Redis that drops a new connection at once is [`Unreachable`] only when it is
/// not a TLS-only server doing so to a plain `redis://` one (see `stream::client`).
fn unreachable(error: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind::*, Error::DatabaseError};
    error.chain().any(|cause| {
        cause.downcast_ref::<Unreachable>().is_some()
            // A connection PostgreSQL accepted, lost before a query's answer.
            || matches!(
                cause.downcast_ref::<diesel::result::Error>(),
                Some(DatabaseError(UnableToSendCommand | ClosedConnection, _))
            )
            || cause
                .downcast_ref::<redis::RedisError>()
                .is_some_and(|e| e.is_connection_refusal() || e.is_timeout())
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Error as IoError, ErrorKind};

    use anyhow::Context;
    use diesel::result::{DatabaseErrorKind, Error::DatabaseError};

    use super::{lost, unreachable};

    #[test]
    fn a_connection_lost_after_connecting_is_waited_out_and_a_refusal_is_not() {
        // A chaos cut between the PING and XGROUP CREATE, or mid-query at the schema check.
        let redis = Err::<(), _>(lost(IoError::new(ErrorKind::BrokenPipe, "cut").into()))
            .context("creating the consumer group on s");
        assert!(unreachable(&redis.unwrap_err()));
        let lost_query = DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        );
        let postgres = Err::<(), _>(lost_query).context("reading the applied migrations");
        assert!(unreachable(&postgres.unwrap_err()));

        let refused = DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("permission denied for table orders".to_owned()),
        );
        let refused = Err::<(), _>(refused).context("reading the applied migrations");
        assert!(!unreachable(&refused.unwrap_err()));
        let redis_refused =
            redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(!unreachable(&lost(redis_refused)));
    }
}
