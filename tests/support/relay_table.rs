//! The order service's own outbox table, shaped as it documents it, written as its API writes
//! it (a connection of its own, committed rows), and relayed by the worker (`RELAY_TABLE`).

use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use order_worker::WorkerConfig;
use order_worker_dev::order_service;

use super::order_events::Published;
use super::TestEnv;

/// The table the tests relay.
pub const TABLE: &str = order_service::OUTBOX_TABLE;

/// A row as the relay left it.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    pub topic: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub published_at: Option<String>,
}

impl TestEnv {
    /// Creates the order service's `outbox_events`, its payload column of type `payload`
    /// (`JSONB`, or `TEXT` where it may hold what is not JSON).
    pub async fn create_order_service_outbox(&self, payload: &str) {
        self.db()
            .await
            .batch_execute(&order_service::create_outbox_sql(TABLE, payload))
            .await
            .expect("the order service's outbox");
    }

    /// Commits `rows` (topic, payload as SQL text) in one transaction, as the order service's
    /// API does with each change.
    pub async fn write_outbox(&self, rows: &[(String, String)]) {
        let values: Vec<String> = rows
            .iter()
            .map(|(topic, payload)| {
                let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
                format!("({}, 'test', {})", quote(topic), quote(payload))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {TABLE} (topic, event_type, payload) VALUES {}",
            values.join(", ")
        );
        self.db().await.batch_execute(&sql).await.expect("INSERT");
    }

    /// Every row of the table, in id order.
    pub async fn outbox_table(&self) -> Vec<OutboxRow> {
        diesel::sql_query(format!(
            "SELECT id, event_id::text AS event_id, topic, status, attempts, last_error, \
             published_at::text AS published_at FROM {TABLE} ORDER BY id"
        ))
        .load(&mut self.db().await)
        .await
        .expect("outbox rows")
    }

    /// The second topic the order service publishes, on this test's own key.
    pub fn compensation_topic(&self) -> String {
        format!("{}.compensation.reservation_release", self.stream.stream)
    }

    /// The in-process worker's settings, relaying [`TABLE`].
    pub fn relaying_config(&self, consumer: &str) -> WorkerConfig {
        let mut config = self.config(consumer);
        config.relay.mapping.relay_table = Some(TABLE.parse().expect("a table name"));
        config
    }

    /// Every entry published on the two topics the tests' rows use.
    pub async fn relayed(&self) -> Vec<Published> {
        let mut all = self
            .published_on(&self.order_events().order_events_topic)
            .await;
        all.extend(self.published_on(&self.compensation_topic()).await);
        all
    }
}

impl TestEnv {
    /// The columns [`TABLE`] has.
    pub async fn outbox_columns(&self) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Column {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let sql = format!(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_name = '{TABLE}'"
        );
        let found: Vec<Column> = diesel::sql_query(sql)
            .load(&mut self.db().await)
            .await
            .expect("columns");
        found.into_iter().map(|column| column.name).collect()
    }
}
