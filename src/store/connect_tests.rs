//! `sslmode` and `sslrootcert` are read as libpq reads them, and everything else in the URL
//! reaches tokio-postgres untouched.

use super::connect::{SslMode, Target};

#[test]
fn sslmode_defaults_to_prefer_and_verify_modes_ask_tokio_postgres_for_tls() {
    let target = Target::parse("postgres://u:p@db:5433/orders").expect("parses");
    assert_eq!(target.ssl_mode, SslMode::Prefer);
    assert_eq!(target.root_cert, None);

    let target = Target::parse(
        "postgres://u@db/orders?application_name=w&sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3",
    )
    .expect("parses");
    assert_eq!(target.ssl_mode, SslMode::VerifyFull);
    assert_eq!(
        target.root_cert.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert_eq!(
        target.config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    );
    assert_eq!(target.config.get_application_name(), Some("w"));
    assert_eq!(
        target.config.get_connect_timeout(),
        Some(&std::time::Duration::from_secs(3))
    );
    assert_eq!(target.config.get_dbname(), Some("orders"));
}

#[test]
fn unknown_sslmodes_and_parameters_are_refused_with_their_name() {
    let error = Target::parse("postgres://db/orders?sslmode=allow")
        .err()
        .expect("refused");
    assert!(error.contains("sslmode=allow is not supported"), "{error}");
    let error = Target::parse("postgres://db/orders?sslcert=/c.pem")
        .err()
        .expect("refused");
    assert!(error.contains("sslcert"), "{error}");
}

#[test]
fn disable_needs_no_tls_configuration_and_require_without_a_root_encrypts_only() {
    let disabled = Target::parse("postgres://db/o?sslmode=disable").expect("parses");
    assert!(disabled.tls().expect("config").is_none());
    let require = Target::parse("postgres://db/o?sslmode=require").expect("parses");
    assert!(require.tls().expect("config").is_some());
    let missing = Target::parse("postgres://db/o?sslmode=verify-ca&sslrootcert=/nonexistent.pem")
        .expect("parses");
    let error = missing.tls().expect_err("a missing CA file is an error");
    assert!(
        format!("{error:#}").contains("/nonexistent.pem"),
        "{error:#}"
    );
}
