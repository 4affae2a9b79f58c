//! Connecting to Redis with a checked first command, and errors that say why it failed.

use super::target::{RedisConnection, RedisTarget, Timeouts};
use crate::config::redact_url;

/// Why connecting failed, in the operator's terms: which server, and, when a plain `redis://`
/// connection was cut at once, that the server probably speaks only TLS (it resets anything
/// that is not a TLS handshake, which alone reads as a network fault).
fn connect_failed(redis_url: &str, error: redis::RedisError) -> anyhow::Error {
    let hint = if !redis_url.starts_with("rediss") && error.is_connection_dropped() {
        " (the server closed the connection at once: if it accepts only TLS, use a rediss:// URL)"
    } else {
        ""
    };
    anyhow::Error::new(error).context(format!(
        "connecting to Redis at {}{hint}",
        redact_url(redis_url)
    ))
}

/// Connects to where `target` points now (with Sentinel, the master it names) and sends a
/// `PING`: connecting alone may send nothing (no `CLIENT SETINFO`), so a server that will not
/// talk to us (TLS only, a wrong password) would otherwise show up as the first real command
/// failing, far from its cause.
pub async fn connect_checked(
    target: &RedisTarget,
    redis_url: &str,
    timeouts: Timeouts,
) -> anyhow::Result<RedisConnection> {
    let connected = async {
        let mut conn = target.connect(timeouts).await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    };
    connected
        .await
        .map_err(|error| connect_failed(redis_url, error))
}
