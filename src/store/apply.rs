//! Applies a batch of events in one PostgreSQL transaction with a fixed number of statements,
//! whatever the batch size: lock, load, plan in memory, write set-based.
//!
//! Order rows are locked `FOR UPDATE` in id order before anything else is read, so two replicas
//! that hold events of the same order serialise on it (the second then sees the first's inbox
//! rows and reports duplicates) and never deadlock. An order with a late event (see `late`) is
//! recomputed from its record, read in one more round trip; the others apply as they come.

use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::late::{late_orders, plan_batch};
use super::load::{load, load_records, RECORD_STATEMENTS};
use super::plan::{plan, Incoming, Plan};
use super::tables::Tables;
use super::write::write;
use super::StoreError;

/// Applies `batch` (in stream order) atomically and returns what happened to each event.
/// Nothing is written unless everything is: the caller acks only after this returns `Ok`.
pub async fn apply_batch(
    conn: &mut AsyncPgConnection,
    tables: &Tables,
    batch: &[Incoming<'_>],
) -> Result<Plan, StoreError> {
    if batch.is_empty() {
        return Ok(Plan::default());
    }
    conn.transaction(async |conn| {
        let (state, inbox, loads) = load(conn, tables, batch).await?;
        let mut late = late_orders(batch, &inbox);
        // An order in a status the rules do not know is not recomputed: its events are refused.
        late.retain(|order_id| !state.foreign.contains_key(order_id));
        let (mut plan, reads) = if late.is_empty() {
            (plan(batch, state), loads)
        } else {
            let records = load_records(conn, &late, &state, tables.catalogue()).await?;
            (
                plan_batch(batch, state, &records),
                loads + RECORD_STATEMENTS,
            )
        };
        if !tables.announces() {
            plan.changes.clear();
        }
        let writes = write(conn, &tables.orders, &plan).await?;
        // BEGIN and COMMIT, around the reads and the writes.
        plan.statements = 2 + reads + writes;
        Ok(plan)
    })
    .await
}
