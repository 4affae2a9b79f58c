//! TLS to Redis and PostgreSQL with rustls, so the image needs no OpenSSL: the crypto provider,
//! the certificates a connection trusts, and the verifiers libpq's weaker `sslmode`s need.

mod verify;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

pub use verify::{AnyHostname, EncryptOnly};

/// The crypto provider every TLS connection uses (ring). It is also installed as the process
/// default, because the redis crate builds its configuration with `ClientConfig::builder()`,
/// which needs one; a default someone else installed first is kept and used.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    // Fails only when another thread installed one meanwhile, which is then the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The certificates of a PEM file (a private CA, say). A file without any is an error, so a
/// wrong path or a key file given by mistake is reported at start, not as a failed handshake.
pub fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    if certificates.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certificates)
}

/// The roots to verify a server against: the CA file given, else the system's (which
/// rustls-native-certs reads from the usual places, or `SSL_CERT_FILE` / `SSL_CERT_DIR`).
pub fn roots(ca_file: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for certificate in read_certificates(path)? {
                store
                    .add(certificate)
                    .with_context(|| format!("a certificate in {}", path.display()))?;
            }
        }
        None => {
            let system = rustls_native_certs::load_native_certs();
            // Unreadable files among the system's are skipped, as OpenSSL does.
            store.add_parsable_certificates(system.certs);
            if store.is_empty() {
                bail!(
                    "no system root certificates found ({} errors); give the CA file explicitly",
                    system.errors.len()
                );
            }
        }
    }
    Ok(store)
}
