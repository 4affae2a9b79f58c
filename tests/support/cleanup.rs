//! Removing what a test created: its database and streams, by [`TestEnv::cleanup`] at the end
//! of a test, or by the environment's `Drop` when the test panicked before it got there.

use diesel_async::RunQueryDsl;

use super::{admin, TestEnv};

impl TestEnv {
    /// Drops another database this test created on the same server.
    pub async fn drop_database(&self, name: &str) {
        let mut admin = admin(&self.admin_url).await;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop database");
    }

    /// Drops the database and deletes the streams this test created.
    pub async fn cleanup(mut self) {
        remove(
            &mut self.redis.clone(),
            &self.keys(),
            &self.admin_url,
            &self.db_name,
        )
        .await
        .expect("test database and streams removed");
        self.cleaned = true;
    }

    /// The streams a test may have written: the fulfillment stream, the payment streams (also
    /// under the names other environments give them) and their dead-letter streams, and the
    /// published status changes with their relay's fence.
    fn keys(&self) -> Vec<String> {
        let payments = [
            "payment.confirmed",
            "payment.failed",
            "payments.payment.confirmed",
            "payments.payment.failed",
        ]
        .map(|t| self.payment_stream(t));
        let events = self.order_events();
        let mut keys = vec![
            self.stream.stream.clone(),
            self.stream.dead_letter_stream(),
            events.fence_key(),
            events.order_events_topic.clone(),
        ];
        // The order service's outbox relayed (`relay_table.rs`): its topics and their fences.
        for topic in [events.order_events_topic.clone(), self.compensation_topic()] {
            keys.push(format!(
                "{}.{}",
                order_worker::fence_of(&topic),
                super::relay_table::TABLE
            ));
            keys.push(topic);
        }
        for key in payments {
            keys.push(format!("{key}.deadletter"));
            keys.push(key);
        }
        keys
    }
}

/// A test that panicked leaves nothing behind: the same removal, on a runtime of its own
/// (the test's may be unwinding), on fresh connections, its failures ignored (a panic in a
/// panic aborts the whole test binary).
impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let (redis_tls, redis_url) = (self.redis_tls.clone(), self.redis_url.clone());
        let (keys, admin_url, db_name) =
            (self.keys(), self.admin_url.clone(), self.db_name.clone());
        let removal = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let connecting =
                    order_worker_dev::local_servers::connect_redis(&redis_tls, &redis_url);
                let mut redis = connecting.await.ok()?;
                remove(&mut redis, &keys, &admin_url, &db_name).await.ok()
            })
        });
        let _ = removal.join();
    }
}

async fn remove(
    redis: &mut order_worker::RedisConnection,
    keys: &[String],
    admin_url: &str,
    db_name: &str,
) -> anyhow::Result<()> {
    let _: () = redis::cmd("DEL").arg(keys).query_async(redis).await?;
    let mut admin = order_worker::connect_postgres(admin_url.to_owned()).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}
