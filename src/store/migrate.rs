//! The embedded migrations: `order-worker migrate` applies them (after creating or adopting the
//! orders table, which they do not touch: its name and shape are the order service's), and
//! `order-worker run` refuses to start while any is pending, so a worker never runs against a
//! schema it does not expect.
//!
//! A contract migration (`_contract_` in its name) drops what builds before it need. `migrate`
//! holds it back, so that a rollback keeps working, and `migrate --contract` applies it; this
//! build runs on the schema either side of it (docs/deployment.md, "Contract migrations").

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use anyhow::Context;

use super::orders::adopt;
use super::tables::Tables;
use crate::config::TableName;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises `migrate` across replicas that start at once (an arbitrary constant, the same in
/// every build; "ordw" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6f72_6477;

type SyncPg = AsyncConnectionWrapper<AsyncPgConnection>;

/// What `migrate` did: the migrations applied, and the contract ones it held back.
#[derive(Debug, Default)]
pub struct Migrated {
    pub applied: Vec<String>,
    pub held: Vec<String>,
}

/// Whether the migration named `name` is a contract step, applied only when asked.
fn is_contract(name: &str) -> bool {
    name.contains("_contract_")
}

/// Creates or adopts the orders table `orders`, then applies the pending migrations (the
/// contract ones only when `contract`), under a PostgreSQL advisory lock. Several replicas may
/// run this at once: the others wait, then find nothing to do.
pub async fn run_pending(
    database_url: &str,
    orders: &TableName,
    contract: bool,
) -> anyhow::Result<Migrated> {
    // The lock belongs to a session of its own, held while the harness migrates on another.
    let mut lock = super::connect::connect_or_unreachable(database_url.to_owned()).await?;
    take_lock(&mut lock)
        .await
        .context("taking the migration lock")?;
    let migrated = async {
        let adopted = adopt(&mut lock, orders).await?;
        tracing::info!(table = %orders, "orders table: {adopted}");
        apply_embedded(database_url, contract).await
    }
    .await;
    // Closing the session would release the lock too; unlocking says so explicitly.
    let unlocked = lock
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .await
        .context("releasing the migration lock");
    let applied = migrated?;
    unlocked?;
    Ok(applied)
}

/// Waits for the migration lock by trying, not by blocking in `pg_advisory_lock`: a session
/// blocked there holds a snapshot, which a `CREATE INDEX CONCURRENTLY` of the holder waits for
/// while that session waits for the holder, a cycle PostgreSQL cannot see (the lock is held by
/// another session than the one building the index).
async fn take_lock(lock: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let sql = format!("SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY}) AS locked");
    while !diesel::sql_query(&sql)
        .get_result::<Locked>(lock)
        .await?
        .locked
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Every migration, the contract ones included: the schema `migrate --contract` leaves, which
/// tests and benchmarks run on. Returns the migrations applied.
pub async fn run_all(database_url: &str, orders: &TableName) -> anyhow::Result<Vec<String>> {
    Ok(run_pending(database_url, orders, true).await?.applied)
}

/// Applies the embedded migrations that are not applied yet, in order, holding back the
/// contract ones unless `contract`.
async fn apply_embedded(database_url: &str, contract: bool) -> anyhow::Result<Migrated> {
    let url = database_url.to_owned();
    // The sync harness blocks on the async connection, so it must not run on a runtime thread.
    tokio::task::spawn_blocking(move || {
        let mut conn = connect(&url)?;
        let failed = |error| anyhow::anyhow!("applying migrations: {error}");
        let mut migrated = Migrated::default();
        for migration in conn.pending_migrations(MIGRATIONS).map_err(failed)? {
            let name = migration.name().to_string();
            if is_contract(&name) && !contract {
                migrated.held.push(name);
            } else {
                conn.run_migration(&*migration).map_err(failed)?;
                migrated
                    .applied
                    .push(migration.name().version().to_string());
            }
        }
        Ok(migrated)
    })
    .await
    .context("migration task panicked")?
}

/// Fails with a message naming the pending migrations when the schema is behind this build
/// (contract ones aside: this build runs either side of them). Reads diesel's bookkeeping table
/// itself: diesel's harness would first run `CREATE TABLE IF NOT EXISTS` on it, which the
/// worker's runtime role, allowed no DDL, may not. Then reads what the worker's statements
/// follow of the tables (`orders` names the orders table).
pub async fn ensure_current(database_url: &str, orders: &TableName) -> anyhow::Result<Tables> {
    let mut conn = super::connect::connect_or_unreachable(database_url.to_owned()).await?;
    let applied: Vec<String> = if migrations_table_exists(&mut conn).await? {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<AppliedVersion>(&mut conn)
            .await
            .context("reading the applied migrations")?
            .into_iter()
            .map(|row| row.version)
            .collect()
    } else {
        Vec::new()
    };
    let mut pending: Vec<String> = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|error| anyhow::anyhow!("reading the embedded migrations: {error}"))?
        .iter()
        .filter(|migration| !applied.contains(&migration.name().version().to_string()))
        .map(|migration| migration.name().to_string())
        .filter(|name| !is_contract(name))
        .collect();
    pending.sort();
    if pending.is_empty() {
        Tables::inspect(&mut conn, orders).await
    } else {
        anyhow::bail!(
            "the database schema is behind this worker: {} migration(s) pending ({}); \
             run `order-worker migrate` first",
            pending.len(),
            pending.join(", ")
        )
    }
}

#[derive(diesel::QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Whether any migration ever ran here (a fresh database has not even the table).
async fn migrations_table_exists(conn: &mut AsyncPgConnection) -> anyhow::Result<bool> {
    let row: Exists =
        diesel::sql_query("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS exists")
            .get_result(conn)
            .await
            .context("looking for the migrations table")?;
    Ok(row.exists)
}

/// A blocking connection for the migration harness, made by [`super::connect`] like every
/// other (TLS, `sslmode`), on the runtime this blocking task belongs to.
fn connect(url: &str) -> anyhow::Result<SyncPg> {
    let conn = tokio::runtime::Handle::current().block_on(super::connect(url.to_owned()))?;
    Ok(SyncPg::from(conn))
}
