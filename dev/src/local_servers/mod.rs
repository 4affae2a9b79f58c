//! Finding Redis and PostgreSQL for the demo and the benchmark: the URLs given, else the local
//! default ports, else private servers started from the installed binaries in a temporary
//! directory (and stopped when the run ends, whatever happens); and a database of their own.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel_async::RunQueryDsl;

use order_worker::{Connections, RedisTls, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL};

mod ports;
mod private_server;

pub use ports::free_port;
pub use private_server::PrivateServer;

/// Drops and creates the database `name` on the server of `admin_url`, so every run starts the
/// same and nothing else on the server is touched; returns its URL.
pub async fn recreate_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("--database must be letters, digits and underscores, not {name:?}");
    }
    drop_database(admin_url, name).await?;
    let mut admin = order_worker::connect_postgres(admin_url.to_owned()).await?;
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(admin_url).context("DATABASE_URL is not a URL")?;
    url.set_path(name);
    Ok(url.to_string())
}

/// Drops the database `name` on the server of `admin_url`, if it exists.
pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = order_worker::connect_postgres(admin_url.to_owned()).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// How long a private server may take to accept connections.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// The servers the demo uses; private ones stop when this is dropped.
pub struct Servers {
    pub redis_url: String,
    /// How `rediss://` checks Redis's certificate.
    pub redis_tls: RedisTls,
    /// A PostgreSQL URL to a database the demo may create databases from.
    pub admin_url: String,
    /// Which servers these are, for the report.
    pub origin: &'static str,
    _private: Vec<PrivateServer>,
    _dir: Option<tempfile::TempDir>,
}

/// Which servers the demo or the benchmark should use; without URLs, the local default ports
/// if they answer, else private servers.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServerUrls {
    /// Redis to use [default: 127.0.0.1:6379 if it answers, else a private redis-server].
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    #[command(flatten)]
    pub redis_tls: RedisTls,
    /// PostgreSQL server to use; a database of the run's own is created there
    /// [default: 127.0.0.1:5432 if it answers, else a private PostgreSQL].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl ServerUrls {
    /// Finds (or starts) the servers; `force_private` skips the local ports.
    pub async fn find(&self, force_private: bool) -> anyhow::Result<Servers> {
        let mut servers = find(
            self.redis_url.clone(),
            self.database_url.clone(),
            force_private,
        )
        .await?;
        servers.redis_tls = self.redis_tls.clone();
        Ok(servers)
    }
}

/// Given URLs win; otherwise the local default ports if both answer; otherwise (or with
/// `force_private`) private servers.
async fn find(
    redis_url: Option<String>,
    database_url: Option<String>,
    force_private: bool,
) -> anyhow::Result<Servers> {
    if let (Some(redis_url), Some(admin_url)) = (&redis_url, &database_url) {
        return Ok(Servers::external(
            redis_url,
            admin_url,
            "given by REDIS_URL and DATABASE_URL",
        ));
    }
    let reachable = |port| {
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(300),
        )
        .is_ok()
    };
    if !force_private
        && redis_url.is_none()
        && database_url.is_none()
        && reachable(6379)
        && reachable(5432)
    {
        // Both on this machine, over loopback, and Redis without TLS: PostgreSQL without it
        // too, so a run measures the worker rather than the encryption (libpq's `prefer` would
        // use TLS wherever the server has a certificate, as Debian's does).
        return Ok(Servers::external(
            DEFAULT_REDIS_URL,
            &format!("{DEFAULT_DATABASE_URL}?sslmode=disable"),
            "local default ports, no TLS",
        ));
    }
    start_private(redis_url, database_url).await
}

impl Servers {
    /// Where a worker on these servers connects, with `database_url` one of its databases.
    pub fn connections(&self, database_url: &str) -> Connections {
        let mut connections = Connections::new(&self.redis_url, database_url);
        connections.redis_tls = self.redis_tls.clone();
        connections
    }

    fn external(redis_url: &str, admin_url: &str, origin: &'static str) -> Self {
        Self {
            redis_url: redis_url.to_owned(),
            redis_tls: RedisTls::default(),
            admin_url: admin_url.to_owned(),
            origin,
            _private: Vec::new(),
            _dir: None,
        }
    }
}

async fn start_private(
    redis_url: Option<String>,
    database_url: Option<String>,
) -> anyhow::Result<Servers> {
    let dir = tempfile::Builder::new()
        .prefix("order-worker-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let mut private = Vec::new();
    let redis_url = match redis_url {
        Some(url) => url,
        None => {
            let port = free_port()?;
            private.push(start_redis(dir.path(), port, &[])?);
            format!("redis://127.0.0.1:{port}")
        }
    };
    let admin_url = match database_url {
        Some(url) => url,
        None => {
            let port = free_port()?;
            private.push(start_postgres(dir.path(), port, &[])?);
            let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
            wait_for_postgres(&url).await?;
            url
        }
    };
    Ok(Servers {
        redis_url,
        redis_tls: RedisTls::default(),
        admin_url,
        origin: "private servers in a temporary directory",
        _private: private,
        _dir: Some(dir),
    })
}

/// A connection to the Redis of `redis_url`: with Sentinel, to the master of now; with a
/// cluster, to its masters.
pub async fn connect_redis(
    redis_tls: &RedisTls,
    redis_url: &str,
) -> anyhow::Result<order_worker::RedisConnection> {
    // Generous: a loaded machine (a test suite, a benchmark) may take seconds to answer a
    // large XRANGE, which redis-rs would otherwise give up on after half a second.
    let timeouts = order_worker::Timeouts {
        connect: Some(Duration::from_secs(5)),
        response: Some(Duration::from_secs(30)),
    };
    let conn = order_worker::RedisTarget::new(redis_tls, redis_url)?
        .connect(timeouts)
        .await;
    conn.with_context(|| {
        format!(
            "connecting to Redis at {}",
            order_worker::redact_url(redis_url)
        )
    })
}

/// A redis-server in `dir` on 127.0.0.1:`port`, saving nothing; returns once it accepts
/// connections. With `tls` options (`--tls-cert-file …`) that port speaks TLS only.
pub fn start_redis(dir: &Path, port: u16, tls: &[&str]) -> anyhow::Result<PrivateServer> {
    let port_arg = port.to_string();
    let mut command = redis_server()?;
    if tls.is_empty() {
        command.args(["--port", &port_arg]);
    } else {
        command
            .args(["--port", "0", "--tls-port", &port_arg])
            .args(tls);
    }
    command
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    let mut server = PrivateServer::spawn("redis-server", command)?;
    server.wait_for_port(port)?;
    Ok(server)
}

/// [`start_redis`] without TLS, with more options (`--replicaof …`); creates `dir`.
pub fn start_redis_with(dir: &Path, port: u16, options: &[&str]) -> anyhow::Result<PrivateServer> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut command = redis_server()?;
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(options);
    let mut server = PrivateServer::spawn("redis-server", command)?;
    server.wait_for_port(port)?;
    Ok(server)
}

/// A sentinel on `port`, from `config` (which it rewrites as it learns the set-up).
pub fn start_sentinel(config: &Path, port: u16) -> anyhow::Result<PrivateServer> {
    let mut command = redis_server()?;
    command.arg(config).arg("--sentinel");
    let mut server = PrivateServer::spawn("redis-sentinel", command)?;
    server.wait_for_port(port)?;
    Ok(server)
}

fn redis_server() -> anyhow::Result<Command> {
    let binary = find_binary("redis-server", &[]).context(
        "redis-server not found: install the Debian package redis-server (or set REDIS_URL)",
    )?;
    Ok(Command::new(binary))
}

/// Whether this process runs as root, where PostgreSQL must run as another user.
fn as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Makes `path` the postgres user's when running as root (PostgreSQL then runs as that user
/// and wants its data directory and key files to be its own).
pub fn give_to_postgres(path: &Path) -> anyhow::Result<()> {
    if !as_root() {
        return Ok(());
    }
    let owned = Command::new("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(path)
        .status()?;
    if !owned.success() {
        bail!("cannot hand {} to the postgres user", path.display());
    }
    Ok(())
}

/// initdb + postgres in `dir`, listening on 127.0.0.1:`port`, with `settings` as extra `-c`
/// options (TLS, a pg_hba file…). PostgreSQL refuses to run as root, so as root both run as
/// the `postgres` user the Debian package creates (through setpriv, which execs, so the child
/// we hold is the postmaster itself and stopping it stops the server).
pub fn start_postgres(
    dir: &Path,
    port: u16,
    settings: &[(&str, &str)],
) -> anyhow::Result<PrivateServer> {
    let missing =
        "PostgreSQL not found: install the Debian package postgresql (or set DATABASE_URL)";
    let initdb = find_binary("initdb", &["/usr/lib/postgresql"]).context(missing)?;
    let postgres = find_binary("postgres", &["/usr/lib/postgresql"]).context(missing)?;
    let data = dir.join("pgdata");
    let as_root = as_root();
    let command_as_owner = |binary: &Path| {
        if as_root {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(binary);
            command
        } else {
            Command::new(binary)
        }
    };
    if as_root {
        // The temporary directory is root's; the postgres user needs to reach and own its part.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        std::fs::create_dir(&data)?;
        give_to_postgres(&data)?;
    }
    let initialised = command_as_owner(&initdb)
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running initdb")?;
    if !initialised.status.success() {
        bail!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initialised.stderr).trim()
        );
    }
    let mut command = command_as_owner(&postgres);
    command
        .arg("-D")
        .arg(&data)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-k",
        ])
        .arg(&data);
    for (name, value) in settings {
        command.arg("-c").arg(format!("{name}={value}"));
    }
    PrivateServer::spawn("postgres", command)
}

/// `name` on PATH, else under one of `roots` (searched one level of versions deep, newest
/// first, as in /usr/lib/postgresql/15/bin).
fn find_binary(name: &str, roots: &[&str]) -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut versioned: Vec<PathBuf> = roots
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin").join(name))
        })
        .collect();
    versioned.sort();
    versioned.reverse();
    on_path
        .into_iter()
        .chain(versioned)
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow::anyhow!("{name} is not installed"))
}

async fn wait_for_postgres(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        match order_worker::connect_postgres(url.to_owned()).await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() > deadline => {
                bail!("the private PostgreSQL did not accept connections within {STARTUP_DEADLINE:?}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
