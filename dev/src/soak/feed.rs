//! Publishing the soak's traffic at a steady rate: every 100 ms, what the rate owes by then, in
//! one pipeline per tick, straight to Redis (never through the outage proxy: publishers keep
//! publishing while the workers are cut off).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use order_worker::RedisConnection;

use super::traffic::Traffic;

/// What the feed did so far, read by the sampler.
#[derive(Debug, Default)]
pub struct Fed {
    pub published: AtomicU64,
    pub poison: AtomicU64,
}

/// Publishes `total` entries at `rate` per second to the streams `key_of` names for each topic.
pub async fn feed(
    mut redis: RedisConnection,
    key_of: impl Fn(&str) -> String,
    rate: u32,
    total: u64,
    fed: &Fed,
) -> anyhow::Result<()> {
    let mut traffic = Traffic::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let started = Instant::now();
    let mut published = 0u64;
    while published < total {
        ticker.tick().await;
        let owed = ((started.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
        if owed == published {
            continue;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut pipe = redis::pipe();
        let mut poison = 0;
        for _ in published..owed {
            let publication = traffic.next(&now);
            poison += u64::from(publication.poison);
            pipe.cmd("XADD")
                .arg(key_of(publication.topic))
                .arg("*")
                .arg(&publication.fields)
                .ignore();
        }
        let () = pipe
            .query_async(&mut redis)
            .await
            .context("publishing the soak's traffic")?;
        fed.published.fetch_add(owed - published, Ordering::Relaxed);
        fed.poison.fetch_add(poison, Ordering::Relaxed);
        published = owed;
    }
    Ok(())
}
