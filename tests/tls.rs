//! TLS to Redis (`rediss://`, `REDIS_CA_CERT`) and PostgreSQL (`sslmode`, `sslrootcert`) against
//! real servers that speak nothing else, with a CA made for the test: the worker drains over
//! TLS, a certificate from another CA is refused and named, plain connections fail clearly.

mod support;

use order_worker::RedisTls;
use order_worker::Worker;
use support::ops::stderr;
use support::order_events::chains;
use support::tls::{make_pki, TlsServers};

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_drains_over_tls_with_both_servers_fully_verified() {
    let servers = TlsServers::start().await;
    let env = servers.env(None).await;
    order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
        .await
        .expect("migrations apply over TLS");
    let (orders, published) = env.seed_lifecycles(5).await;

    let mut worker = env.spawn_worker("tls-worker").await;
    worker.wait_consumed(published).await;
    // Status changes are published over the same TLS connections.
    let changes = env.wait_published(3 * orders.len()).await;
    worker.stop().await;

    env.assert_all_delivered(&orders).await;
    assert_eq!(chains(&changes, "confirmed").len(), orders.len());
    // The binary itself, with the CA given as operators do (REDIS_CA_CERT, sslrootcert).
    let output = env.order_worker(&["pending"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("pending:         0"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sslmodes_verify_against_sslrootcert_and_name_a_wrong_ca() {
    let servers = TlsServers::start().await;
    let wrong_ca = make_pki(&servers.dir().join("other"), "another CA").ca;
    let url = |query: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            servers.postgres_port
        )
    };
    let ca = servers.pki.ca.display().to_string();
    for good in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        "sslmode=require".to_owned(),
        "sslmode=prefer".to_owned(),
    ] {
        if let Err(error) = order_worker::connect_postgres(url(&good)).await {
            panic!("{good}: {error}");
        }
    }

    let error = |query: String| async move {
        match order_worker::connect_postgres(url(&query)).await {
            Ok(_) => panic!("{query} connected"),
            Err(error) => error.to_string(),
        }
    };
    let wrong = error(format!(
        "sslmode=verify-full&sslrootcert={}",
        wrong_ca.display()
    ))
    .await;
    assert!(
        wrong.contains("sslmode=verify-full")
            && wrong.contains("invalid peer certificate: UnknownIssuer"),
        "{wrong}"
    );
    // libpq: `require` with a root certificate verifies the chain like `verify-ca`.
    let wrong = error(format!(
        "sslmode=require&sslrootcert={}",
        wrong_ca.display()
    ))
    .await;
    assert!(wrong.contains("UnknownIssuer"), "{wrong}");
    let plain = error("sslmode=disable".to_owned()).await;
    assert!(plain.contains("no encryption"), "{plain}");
    let unknown = error("sslmode=allow".to_owned()).await;
    assert!(
        unknown.contains("sslmode=allow is not supported"),
        "{unknown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_without_tls_or_without_the_ca_fails_clearly() {
    let servers = TlsServers::start().await;
    let env = servers.env(None).await;

    let plain = format!("redis://127.0.0.1:{}", servers.redis_port);
    let output = env
        .order_worker_with(
            &["pending"],
            &[("REDIS_URL", &plain), ("REDIS_CA_CERT", "")],
        )
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("if it accepts only TLS, use a rediss:// URL"),
        "{}",
        stderr(&output)
    );
    order_worker::run_migrations(&env.database_url, &order_worker::TableName::default())
        .await
        .expect("migrations apply");
    let mut config = env.config("plain");
    config.connections.redis_url = plain.clone();
    config.connections.redis_tls = RedisTls::default();
    match Worker::start(config).await {
        Ok(_) => panic!("a plain connection to the TLS port worked"),
        Err(error) => assert!(
            format!("{error:#}").contains("use a rediss:// URL"),
            "{error:#}"
        ),
    }

    let output = env
        .order_worker_with(&["pending"], &[("REDIS_CA_CERT", "")])
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("UnknownIssuer"),
        "{}",
        stderr(&output)
    );

    let output = env
        .order_worker_with(&["pending"], &[("REDIS_URL", &plain)])
        .await;
    assert!(
        stderr(&output).contains("REDIS_CA_CERT is set but REDIS_URL"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_cert_file_stands_in_for_the_system_roots_on_both_servers() {
    let servers = TlsServers::start().await;
    let env = servers.env(None).await;
    env.fill(1).await;
    env.create_group(&env.stream.group).await;
    // verify-full without sslrootcert, Redis without REDIS_CA_CERT: the system's roots.
    let mut database_url = url::Url::parse(&env.database_url).expect("URL");
    database_url.set_query(Some("sslmode=verify-full"));
    let database_url = database_url.to_string();
    let ca = servers.pki.ca.display().to_string();
    for (args, server) in [(&["pending"][..], "Redis"), (&["migrate"], "PostgreSQL")] {
        let without = [("REDIS_CA_CERT", ""), ("DATABASE_URL", &database_url)];
        let output = env.order_worker_with(args, &without).await;
        assert!(
            !output.status.success() && stderr(&output).contains("UnknownIssuer"),
            "{server}, the test CA not among the system's roots: {}",
            stderr(&output)
        );
        let with = [without[0], without[1], ("SSL_CERT_FILE", &ca)];
        let output = env.order_worker_with(args, &with).await;
        assert!(
            output.status.success(),
            "{server} with SSL_CERT_FILE: {}",
            stderr(&output)
        );
    }
}
