//! Connecting to Redis with a checked first command, and errors that say why it failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connect::{RedisConnection, RedisTarget, Timeouts};
use crate::config::redact_url;
use crate::retry::Unreachable;
use crate::tls;

/// Why connecting failed, in the operator's terms: which server, and what a connection closed
/// at once means. A plain `redis://` server that does so and answers a TLS handshake accepts
/// only TLS (it resets anything else): a misconfiguration, said as such. Otherwise the server
/// is going away, or something in between (a proxy, a mesh sidecar) has no server behind it:
/// [`Unreachable`], waited out like a refused connection.
async fn connect_failed(
    target: &RedisTarget,
    redis_url: &str,
    error: redis::RedisError,
) -> anyhow::Error {
    let at = format!("connecting to Redis at {}", redact_url(redis_url));
    if !error.is_connection_dropped() {
        return anyhow::Error::new(error).context(at);
    }
    let tls_only = match target.plain_server() {
        Some((host, port)) => speaks_tls(&host, port).await,
        // Over TLS already, the hint does not apply; Sentinel and cluster nodes are not probed.
        None => !redis_url.starts_with("rediss"),
    };
    if tls_only {
        let hint =
            "the server closed the connection at once: if it accepts only TLS, use a rediss:// URL";
        return anyhow::Error::new(error).context(format!("{at} ({hint})"));
    }
    anyhow::Error::new(Unreachable(format!(
        "{at}: the connection was closed at once ({error})"
    )))
}

/// Whether `host:port` answers a TLS ClientHello with a TLS record (a handshake or an alert).
/// Only the first byte is read: the certificate does not matter here.
async fn speaks_tls(host: &str, port: u16) -> bool {
    const HANDSHAKE: u8 = 0x16;
    const ALERT: u8 = 0x15;
    let probe = async {
        let config = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
        let mut hello = Vec::new();
        rustls::ClientConnection::new(Arc::new(config), name)?.write_tls(&mut hello)?;
        let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.write_all(&hello).await?;
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).await?;
        anyhow::Ok(matches!(first[0], HANDSHAKE | ALERT))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
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
    match connected.await {
        Ok(conn) => Ok(conn),
        Err(error) => Err(connect_failed(target, redis_url, error).await),
    }
}
