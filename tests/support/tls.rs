//! A private Redis and PostgreSQL that speak TLS only, with certificates from a throwaway CA
//! made for the test, in a temporary directory; both stop (and the directory goes) when the
//! [`TlsServers`] is dropped, also when the test panics.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use order_worker::RedisTls;
use order_worker_dev::local_servers::{
    free_port, give_to_postgres, start_postgres, start_redis, PrivateServer,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::{TestEnv, DEADLINE};

/// A CA's certificate, and a certificate for `localhost` / `127.0.0.1` it signed, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a new CA named `ca_name` and a server certificate signed by it into `dir` (created).
pub fn make_pki(dir: &Path, ca_name: &str) -> Pki {
    std::fs::create_dir_all(dir).expect("certificate directory");
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&pki.cert, server_cert.pem()).expect("write certificate");
    std::fs::write(&pki.key, server_key.serialize_pem()).expect("write key");
    // PostgreSQL refuses a key others can read.
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    pki
}

/// Redis and PostgreSQL on free ports of 127.0.0.1, TLS only: Redis has no plain port, and
/// PostgreSQL's pg_hba accepts TCP connections only over TLS (`hostssl`).
pub struct TlsServers {
    pub redis_port: u16,
    pub postgres_port: u16,
    pub pki: Pki,
    // Declared before the directory so the servers stop before their files go.
    _redis: PrivateServer,
    _postgres: PrivateServer,
    dir: tempfile::TempDir,
}

impl TlsServers {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("order-worker-tls-")
            .tempdir()
            .expect("temporary directory");
        let tls_dir = dir.path().join("tls");
        let pki = make_pki(&tls_dir, "order-worker test CA");
        let redis_port = free_port().expect("free port");
        let redis = start_redis(
            dir.path(),
            redis_port,
            &[
                "--tls-cert-file",
                path(&pki.cert),
                "--tls-key-file",
                path(&pki.key),
                "--tls-ca-cert-file",
                path(&pki.ca),
                "--tls-auth-clients",
                "no",
            ],
        )
        .expect("redis-server with TLS starts");

        let hba = dir.path().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        // Redis (this process's user) reads the files before they change hands.
        give_to_postgres(&tls_dir).expect("certificates to postgres");
        give_to_postgres(&hba).expect("pg_hba.conf to postgres");
        let postgres_port = free_port().expect("free port");
        let postgres = start_postgres(
            dir.path(),
            postgres_port,
            &[
                ("ssl", "on"),
                ("ssl_cert_file", path(&pki.cert)),
                ("ssl_key_file", path(&pki.key)),
                ("hba_file", path(&hba)),
            ],
        )
        .expect("postgres with TLS starts");
        let servers = Self {
            redis_port,
            postgres_port,
            pki,
            _redis: redis,
            _postgres: postgres,
            dir,
        };
        servers.wait_for_postgres().await;
        servers
    }

    /// A directory for the test's own files, removed with the servers.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `rediss://[user:password@]127.0.0.1:<port>`.
    pub fn redis_url(&self, credentials: Option<(&str, &str)>) -> String {
        let credentials = credentials
            .map(|(user, password)| format!("{user}:{password}@"))
            .unwrap_or_default();
        format!("rediss://{credentials}127.0.0.1:{}", self.redis_port)
    }

    /// Checks Redis's certificate against the test CA.
    pub fn redis_tls(&self) -> RedisTls {
        RedisTls {
            redis_ca_cert: Some(self.pki.ca.clone()),
            ..RedisTls::default()
        }
    }

    /// A URL for `role` on `database` that verifies the server fully against the test CA.
    pub fn postgres_url(&self, role: &str, database: &str) -> String {
        format!(
            "postgres://{role}@127.0.0.1:{}/{database}?sslmode=verify-full&sslrootcert={}",
            self.postgres_port,
            self.pki.ca.display()
        )
    }

    /// A test environment on these servers, as the superuser; `database` as in [`TestEnv::on`].
    pub async fn env(&self, database: Option<&str>) -> TestEnv {
        TestEnv::on(
            self.redis_url(None),
            self.redis_tls(),
            self.postgres_url("postgres", "postgres"),
            database,
        )
        .await
    }

    async fn wait_for_postgres(&self) {
        let deadline = Instant::now() + DEADLINE;
        let url = self.postgres_url("postgres", "postgres");
        loop {
            match order_worker::connect_postgres(url.clone()).await {
                Ok(_) => return,
                Err(error) if Instant::now() > deadline => {
                    panic!("the TLS PostgreSQL did not accept connections within {DEADLINE:?}: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
