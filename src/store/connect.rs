//! Connecting to PostgreSQL, over TLS as the URL's `sslmode` asks, with libpq's meanings:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked; checked like `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | always | signed by `sslrootcert` (else the system roots) |
//! | `verify-full` | always | as `verify-ca`, and it names the host |
//!
//! tokio-postgres knows only the first three, and no `sslrootcert`, so both are taken out of
//! the URL here and the certificate check is done by the rustls configuration given to it.
//! Every connection of the binary (the pool, migrations, replay, demo, bench) comes here.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use diesel::result::DatabaseErrorKind;
use diesel::ConnectionError;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use rustls::client::WebPkiServerVerifier;
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsStream};
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::redact_url;
use crate::retry::Unreachable;
use crate::tls;

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// As written in a URL, for error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Ok(match raw {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            // libpq's `allow` prefers plain text, which a worker carrying order data never should.
            other => {
                return Err(format!(
                    "sslmode={other} is not supported (use disable, prefer, require, verify-ca or verify-full)"
                ))
            }
        })
    }
}

/// What a URL asks for: tokio-postgres' settings, and how to check the server's certificate.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl Target {
    /// Parses a `postgres://` URL; `sslmode` and `sslrootcert` are read here, the other
    /// parameters by tokio-postgres.
    pub fn parse(database_url: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(database_url)
            .map_err(|error| format!("DATABASE_URL is not a postgres:// URL: {error}"))?;
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => ssl_mode = value.parse()?,
                "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        url.set_query(None);
        if !rest.is_empty() {
            url.query_pairs_mut().extend_pairs(rest);
        }
        let mut config = tokio_postgres::Config::from_str(url.as_str())
            .map_err(|error| format!("invalid DATABASE_URL: {}", with_causes(&error)))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        });
        Ok(Self {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// The rustls configuration for this mode (`None` for `disable`).
    pub fn tls(&self) -> anyhow::Result<Option<rustls::ClientConfig>> {
        let provider = tls::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let verify_chain = || -> anyhow::Result<Arc<WebPkiServerVerifier>> {
            let roots = Arc::new(tls::roots(self.root_cert.as_deref())?);
            Ok(WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build()?)
        };
        let config = match (self.ssl_mode, &self.root_cert) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::Prefer, _) | (SslMode::Require, None) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(tls::EncryptOnly::new(provider)))
                .with_no_client_auth(),
            (SslMode::Require, Some(_)) | (SslMode::VerifyCa, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(tls::AnyHostname::new(verify_chain()?)))
                .with_no_client_auth(),
            (SslMode::VerifyFull, _) => builder
                .with_webpki_verifier(verify_chain()?)
                .with_no_client_auth(),
        };
        Ok(Some(config))
    }
}

/// Connects as the URL says, and makes PostgreSQL plan every statement for its actual
/// arguments. The worker's statements are prepared once per connection and run for its whole
/// life; a generic plan fixed while the tables were small (a fresh install) would scan them
/// whole forever after, turning a 1 ms lookup of a batch's event ids into 50 ms by 30,000 rows.
pub async fn connect(url: String) -> diesel::ConnectionResult<AsyncPgConnection> {
    open(url).await.map_err(|failure| match failure {
        Failure::Unreachable(Unreachable(message)) => ConnectionError::BadConnection(message),
        Failure::Refused(error) => error,
    })
}

/// [`connect`], with a server that does not answer told apart ([`Unreachable`]).
pub async fn connect_or_unreachable(url: String) -> anyhow::Result<AsyncPgConnection> {
    open(url).await.map_err(|failure| match failure {
        Failure::Unreachable(unreachable) => anyhow::Error::new(unreachable),
        Failure::Refused(error) => anyhow::Error::new(error),
    })
}

enum Failure {
    Unreachable(Unreachable),
    Refused(ConnectionError),
}

async fn open(url: String) -> Result<AsyncPgConnection, Failure> {
    let target = Target::parse(&url)
        .map_err(|error| Failure::Refused(ConnectionError::InvalidConnectionUrl(error)))?;
    let opening = Opening {
        url: &url,
        target: &target,
    };
    let tls = target.tls().map_err(|error| {
        Failure::Refused(ConnectionError::BadConnection(
            opening.message(&format!("{error:#}")),
        ))
    })?;
    let mut conn = match tls {
        None => opening.connect(tokio_postgres::NoTls).await?,
        Some(tls) => opening.connect(MakeRustlsConnect::new(tls)).await?,
    };
    // Every statement is planned for its own arguments (a batch's arrays vary in size), and
    // never compiled: JIT pays off for long analytic queries, and a batch's statement whose
    // estimate crosses `jit_above_cost` (an inbox without statistics yet, after a restore)
    // spent 40 ms compiling to run in 3 (BENCHMARKS.md, "A regression the 3,000-order rows hide").
    conn.batch_execute("SET plan_cache_mode = force_custom_plan; SET jit = off")
        .await
        .map_err(|error| opening.setup_failed(ConnectionError::CouldntSetupConfiguration(error)))?;
    Ok(conn)
}

/// A connection being opened to `url`: how its failures are told and said.
struct Opening<'a> {
    url: &'a str,
    target: &'a Target,
}

impl Opening<'_> {
    /// Connects through `tls` (a connector, or none) and hands the connection to diesel-async.
    async fn connect<T>(&self, tls: T) -> Result<AsyncPgConnection, Failure>
    where
        T: MakeTlsConnect<Socket>,
        T::Stream: TlsStream + Unpin + Send + 'static,
    {
        let (client, connection) = self
            .target
            .config
            .connect(tls)
            .await
            .map_err(|error| self.failed(error))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(|error| self.setup_failed(error))
    }

    /// `error`, saying where and how the worker was connecting.
    fn message(&self, error: &dyn std::fmt::Display) -> String {
        format!(
            "connecting to PostgreSQL at {} (sslmode={}): {error}",
            redact_url(self.url),
            self.target.ssl_mode.as_str()
        )
    }

    /// A failure to connect: the server unreachable, or refusing us.
    fn failed(&self, error: tokio_postgres::Error) -> Failure {
        let text = self.message(&with_causes(&error));
        if is_unreachable(&error) {
            Failure::Unreachable(Unreachable(text))
        } else {
            Failure::Refused(ConnectionError::BadConnection(text))
        }
    }

    /// Lost once connected, before the set-up's queries were answered (no SQL state: diesel-async
    /// says `UnableToSendCommand`): the server hung up, as above, rather than refused us.
    fn setup_failed(&self, error: ConnectionError) -> Failure {
        match &error {
            ConnectionError::CouldntSetupConfiguration(diesel::result::Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                _,
            )) => Failure::Unreachable(Unreachable(self.message(&error))),
            _ => Failure::Refused(error),
        }
    }
}

/// Whether the server never answered or hung up before saying why: nothing it sent refuses us
/// (a refusal is a database error, a TLS failure is invalid data).
fn is_unreachable(error: &tokio_postgres::Error) -> bool {
    use std::io::ErrorKind::*;
    if error.as_db_error().is_some() {
        return false;
    }
    if error.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
                    | HostUnreachable
                    | NetworkUnreachable
            );
        }
        source = cause.source();
    }
    false
}

/// An error with its causes: tokio-postgres says only "error performing TLS handshake", the
/// reason (a certificate from an unknown issuer, say) is in its sources.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
