//! Redis clients made from the settings: REDIS_URL, and what it has no parameter for
//! ([`RedisTls`]: a private CA, the sentinels' own password).

use anyhow::{bail, Context};
use redis::{Client, IntoConnectionInfo, TlsCertificates};

use super::RedisTarget;
use crate::config::{redact_url, ClusterUrl, RedisTls, SentinelUrl};

impl RedisTarget {
    /// Where `redis_url` says Redis is: `redis+sentinel://` URLs name the sentinels and the
    /// master's name, `redis+cluster://` URLs some nodes of a cluster (`rediss+…` for TLS);
    /// any other, one server. `tls` says what the URL cannot.
    pub fn new(tls: &RedisTls, redis_url: &str) -> anyhow::Result<Self> {
        if let Some(sentinel) = SentinelUrl::parse(redis_url)? {
            if tls.redis_ca_cert.is_some() {
                bail!("REDIS_CA_CERT is not supported with a Sentinel REDIS_URL yet: the sentinels and the master are checked against the system's roots");
            }
            crate::tls::provider();
            return Self::sentinel(&sentinel, tls.redis_sentinel_password.as_deref());
        }
        if let Some(cluster) = ClusterUrl::parse(redis_url)? {
            crate::tls::provider();
            let ca_cert = match &tls.redis_ca_cert {
                Some(_) if !cluster.tls => bail!(
                    "REDIS_CA_CERT is set but REDIS_URL {} is not a rediss+cluster:// (TLS) URL",
                    redact_url(redis_url)
                ),
                Some(path) => Some(read_ca_cert(path)?),
                None => None,
            };
            return Self::cluster(&cluster, ca_cert);
        }
        Ok(Self::server(client(tls, redis_url)?))
    }
}

/// The client every Redis connection is made from, so `rediss://` and a private CA work
/// the same everywhere. The server's certificate is checked against `REDIS_CA_CERT`, or
/// without it the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
pub fn client(tls: &RedisTls, redis_url: &str) -> anyhow::Result<Client> {
    let invalid = || format!("invalid REDIS_URL {}", redact_url(redis_url));
    // The redis crate builds its TLS settings on the process' default crypto provider.
    crate::tls::provider();
    let info = redis_url.into_connection_info().with_context(invalid)?;
    // redis-rs labels each connection with `CLIENT SETINFO`, a command Redis < 7.2 lacks and
    // an ACL user would need to be granted; nothing reads the label.
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    let Some(ca_cert) = tls.redis_ca_cert.as_deref() else {
        return Client::open(info).with_context(invalid);
    };
    if !redis_url.starts_with("rediss://") {
        bail!(
            "REDIS_CA_CERT is set but REDIS_URL {} is not a rediss:// (TLS) URL",
            redact_url(redis_url)
        );
    }
    let pem = read_ca_cert(ca_cert)?;
    Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .with_context(invalid)
}

/// REDIS_CA_CERT's PEM, parsed here first so that a wrong file is named at start rather than
/// failing each handshake.
fn read_ca_cert(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    crate::tls::read_certificates(path).context("REDIS_CA_CERT")?;
    std::fs::read(path).with_context(|| format!("reading REDIS_CA_CERT {}", path.display()))
}
