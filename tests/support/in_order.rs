//! The determinism yardstick (the dev crate's, which the soak run shares) for a test's streams.

use super::TestEnv;

impl TestEnv {
    /// Applies every decodable entry of `streams` ((topic, key) pairs) to this environment's
    /// database in stream order, as one worker would one by one. Returns how many.
    pub async fn apply_in_order(&self, streams: &[(&str, String)]) -> usize {
        order_worker_dev::in_order::apply_in_order(
            &mut self.db().await,
            &mut self.redis.clone(),
            streams,
        )
        .await
        .expect("applies in order")
    }
}
