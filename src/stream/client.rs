//! The Redis client every connection of the binary is made from, so `rediss://` and a private
//! CA work the same for the worker's pool, its reader, and the operator commands.

use std::path::Path;

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, TlsCertificates};

use crate::config::redact_url;

/// A client for `redis_url`. With `rediss://` the server's certificate is checked against
/// `ca_cert` (a PEM file, e.g. the cluster's private CA) or, without it, the system's roots
/// (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
pub fn client(redis_url: &str, ca_cert: Option<&Path>) -> anyhow::Result<Client> {
    let invalid = || format!("invalid REDIS_URL {}", redact_url(redis_url));
    // The redis crate builds its TLS settings on the process' default crypto provider.
    crate::tls::provider();
    let info = redis_url.into_connection_info().with_context(invalid)?;
    // redis-rs labels each connection with `CLIENT SETINFO`, a command Redis < 7.2 lacks and
    // an ACL user would need to be granted; nothing reads the label.
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    let Some(ca_cert) = ca_cert else {
        return Client::open(info).with_context(invalid);
    };
    if !redis_url.starts_with("rediss://") {
        bail!(
            "REDIS_CA_CERT is set but REDIS_URL {} is not a rediss:// (TLS) URL",
            redact_url(redis_url)
        );
    }
    // Parsed here first, so a wrong file is named at start rather than failing each handshake.
    crate::tls::read_certificates(ca_cert).context("REDIS_CA_CERT")?;
    let pem = std::fs::read(ca_cert)
        .with_context(|| format!("reading REDIS_CA_CERT {}", ca_cert.display()))?;
    Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .with_context(invalid)
}

/// Why connecting failed, in the operator's terms: which server, and, when a plain `redis://`
/// connection was cut at once, that the server probably speaks only TLS (it resets anything
/// that is not a TLS handshake, which alone reads as a network fault).
fn connect_failed(redis_url: &str, error: redis::RedisError) -> anyhow::Error {
    let hint = if !redis_url.starts_with("rediss://") && error.is_connection_dropped() {
        " (the server closed the connection at once: if it accepts only TLS, use a rediss:// URL)"
    } else {
        ""
    };
    anyhow::Error::new(error).context(format!(
        "connecting to Redis at {}{hint}",
        redact_url(redis_url)
    ))
}

/// Connects and sends a `PING`: connecting alone may send nothing (no `CLIENT SETINFO`), so a
/// server that will not talk to us (TLS only, a wrong password) would otherwise show up as the
/// first real command failing, far from its cause.
pub async fn connect_checked(
    client: &Client,
    redis_url: &str,
    settings: &AsyncConnectionConfig,
) -> anyhow::Result<MultiplexedConnection> {
    let connected = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(settings)
            .await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    };
    connected
        .await
        .map_err(|error| connect_failed(redis_url, error))
}
