//! PostgreSQL: the connection pool, the embedded migrations, the batch apply and reading history.

pub mod apply;
pub mod connect;
#[cfg(test)]
mod connect_tests;
pub mod history;
mod late;
mod load;
pub mod migrate;
pub mod orders;
pub mod plan;
pub mod retention;
pub mod schema;
mod tables;
mod unnest;
mod write;

use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;

pub use apply::apply_batch;
pub use connect::connect;
pub use plan::{Incoming, Plan, Transition};
pub use tables::{InboxKey, Tables};

/// The worker's PostgreSQL pool: one connection per lane of each batch in flight, plus a spare
/// for reconnects (sized by the worker).
pub type DbPool = Pool<AsyncPgConnection>;

/// Why a batch could not be applied. Every variant is worth a retry except `CorruptRow`, which
/// means someone wrote a status this worker does not know into a table it owns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(#[from] diesel_async::pooled_connection::bb8::RunError),
    #[error("no answer from the database within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("a stored status is not one this worker knows: {0}")]
    CorruptRow(#[from] crate::topics::UnknownStatus),
    #[error("a recorded event cannot be read again: {0}")]
    CorruptRecord(String),
}

/// Builds the pool without connecting: the first checkout connects, so start-up errors come
/// from the schema check, which says what is wrong.
pub fn pool(database_url: &str, max_size: u32) -> DbPool {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(|url| connect(url.to_owned()).boxed());
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder()
        .max_size(max_size)
        // A round trip per checkout otherwise; a broken connection shows up as the batch's
        // error (retried on a fresh one) and is discarded when returned.
        .test_on_check_out(false)
        .connection_timeout(std::time::Duration::from_secs(5))
        .build_unchecked(manager)
}
