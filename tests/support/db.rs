//! Reading what the worker wrote, and where the group stands, for assertions.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use order_worker::schema::{order_status_history, orders, processed_events};
use order_worker::{order_history, HistoryRow};

use super::TestEnv;

impl TestEnv {
    pub async fn order_status(&self, id: &str) -> String {
        orders::table
            .find(id)
            .select(orders::status)
            .first(&mut self.db().await)
            .await
            .expect("order exists")
    }

    /// Orders at `status`.
    pub async fn count_orders(&self, status: &str) -> i64 {
        orders::table
            .filter(orders::status.eq(status))
            .count()
            .get_result(&mut self.db().await)
            .await
            .expect("count orders")
    }

    pub async fn order_fulfillment_status(&self, id: &str) -> Option<String> {
        orders::table
            .find(id)
            .select(orders::fulfillment_status)
            .first(&mut self.db().await)
            .await
            .expect("order exists")
    }

    /// The order's history as (from, to, reason), oldest first.
    pub async fn history(&self, order_id: &str) -> Vec<HistoryRow> {
        order_history(&mut self.db().await, order_id)
            .await
            .expect("read history")
    }

    /// The `metadata` of the order's history rows, oldest first.
    pub async fn history_metadata(&self, order_id: &str) -> Vec<Option<serde_json::Value>> {
        order_status_history::table
            .filter(order_status_history::order_id.eq(order_id))
            .order(order_status_history::id)
            .select(order_status_history::metadata)
            .load(&mut self.db().await)
            .await
            .expect("read history metadata")
    }

    pub async fn history_count(&self) -> i64 {
        order_status_history::table
            .count()
            .get_result(&mut self.db().await)
            .await
            .expect("count history")
    }

    pub async fn inbox_outcome(&self, event_id: &str) -> Option<String> {
        processed_events::table
            .find(event_id)
            .select(processed_events::outcome)
            .first(&mut self.db().await)
            .await
            .optional()
            .expect("read inbox")
    }

    /// Rows in the inbox (`processed_events`): one per distinct event ever applied.
    pub async fn inbox_count(&self) -> i64 {
        processed_events::table
            .count()
            .get_result(&mut self.db().await)
            .await
            .expect("count inbox")
    }

    /// Entries not delivered to the group yet (XINFO GROUPS lag; 0 while the group does not
    /// exist).
    pub async fn lag(&self) -> u64 {
        self.lag_of(&self.stream.stream).await
    }

    /// [`TestEnv::lag`] of the group on the stream `key`.
    pub async fn lag_of(&self, key: &str) -> u64 {
        let reply: redis::RedisResult<redis::streams::StreamInfoGroupsReply> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut self.redis.clone())
            .await;
        reply
            .ok()
            .and_then(|info| {
                info.groups
                    .into_iter()
                    .find(|group| group.name == self.stream.group)
            })
            .and_then(|group| group.lag)
            .map_or(0, |lag| lag as u64)
    }

    /// A connection holding order `id`'s row lock in an open transaction, as a rival writer would:
    /// a worker's batch holding that order waits behind it. `ROLLBACK` on it lets go.
    pub async fn lock_order(&self, id: &str) -> AsyncPgConnection {
        let mut rival = self.db().await;
        rival
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM orders WHERE id = '{id}' FOR UPDATE"
            ))
            .await
            .expect("lock the order");
        rival
    }

    /// Sessions of this test's database waiting for a lock.
    pub async fn lock_waits(&self) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result::<Count>(&mut self.db().await)
        .await
        .expect("pg_stat_activity")
        .n
    }
}
