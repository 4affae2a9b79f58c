//! order-worker reads the order service's Redis streams exactly as Dapr's `pubsub.redis` writes
//! them, in a consumer group shared by every replica, and keeps each order's status in
//! PostgreSQL right, exactly once in effect.
//!
//! An entry's path, a module per step: `stream` reads a batch from every subscribed stream
//! (XREADGROUP, or XAUTOCLAIM for stuck entries) → `envelope` opens Dapr's format and the entry's
//! topic (`topics`, one module each) reads its event → `store` applies the batch in one
//! transaction by the topics' rules → `verdict` says ack, dead-letter or leave pending →
//! `stream` settles (XACK, each topic's dead-letter stream). `worker` drives the loop (`worker/batch.rs`
//! is one batch's whole life); `app` wires it to signals, `http` and `instruments`. `ops` holds
//! the operator commands. Modules are private: below is what the binary, the tests and the
//! development tooling (`dev/`, `order-worker-dev`) use.

mod app;
mod config;
mod envelope;
mod http;
mod instruments;
pub mod ops;
mod outbox;
mod retry;
mod shutdown;
mod store;
mod stream;
mod telemetry;
mod tls;
mod topics;
mod verdict;
mod worker;

// The commands: `run`, `migrate`, and the operator commands in `ops`.
pub use app::{migrate, run};
pub use config::{
    fence_of, redact_url, Connections, Keyspace, MigrateConfig, OrderEvents, RedisTls,
    RelayMapping, RelayTable, Retention as RelayRetention, StreamConfig, TableName, Topics,
    WorkerConfig, DEFAULT_BATCH_SIZE, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL,
};
pub use telemetry::{
    init as init_telemetry, LogFormat, Telemetry, EXPORT_FAILING, SUBSCRIBING, TRACING_HELP,
    UPDATED_ORDER, WITHDREW_CHANGE,
};

// The worker in-process, as the tests, the demo and the benchmark run it.
pub use shutdown::{channel as shutdown_channel, Shutdown, ShutdownTrigger};
pub use worker::{Committed, Progress, Worker};

// The data: statuses, PostgreSQL (connect, migrate, the tables, an order's history).
pub use store::history::{order_history, HistoryRow};
pub use store::migrate::run_all as run_migrations;
pub use store::{connect as connect_postgres, schema};
pub use topics::{FulfillmentStatus, OrderStatus, PaymentStatus, PROCESSING_EVENT};

// The pipeline's parts, for the benchmark's per-event baseline and the tests that play a
// consumer which dies half-way (read, decode and apply, but never ack).
pub use config::{ClusterUrl, SentinelUrl};
pub use envelope::DEFAULT_MAX_ENTRY_BYTES;
pub use store::{apply_batch, Incoming, Tables};
pub use stream::connect::{client as redis_client, RedisConnection, RedisTarget, Timeouts};
pub use stream::id::{parse_boundary, StreamId};
pub use stream::{
    ensure_group, group_info, settle, DeadLetter, ReadBatch, Reader, Settlement, StreamEntry,
};
pub use topics::{by_name as topic, decode, Event, FulfillmentEvent, Topic};

// What a topic defined outside the crate implements (the tests define one): see `Topic`.
pub use envelope::{DecodeError, Payload};
pub use topics::{Catalogue, Change, Move, Outcome, Row, State, StreamKey};
