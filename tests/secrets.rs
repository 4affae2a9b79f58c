//! Passwords never appear in the logs: a worker whose `REDIS_URL` and `DATABASE_URL` both carry
//! one starts while both servers are cut, connects, works, loses both and gets them back, all
//! logged at debug level (its dependencies' lines too), and not one line holds either password.

mod support;

use order_worker::FulfillmentStatus::Planning;
use order_worker_dev::fault_proxy::FaultProxy;
use support::http::{get, http_port};
use support::process::terminate;
use support::{eventually, unique, TestEnv};

/// A Redis ACL user of this test's own, deleted when dropped: also when the test panics, so the
/// shared Redis keeps no user of a failed run.
struct AclUser {
    redis_url: String,
    name: String,
}

impl Drop for AclUser {
    fn drop(&mut self) {
        let deleted = redis::Client::open(self.redis_url.as_str())
            .and_then(|client| client.get_connection())
            .and_then(|mut conn| {
                redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&self.name)
                    .query::<i64>(&mut conn)
            });
        // Panicking here while the test unwinds would abort every test of the binary.
        if let Err(error) = deleted {
            eprintln!("ACL user {} not deleted: {error}", self.name);
        }
    }
}

/// `url` through `proxy`, logging in as `user` with `password`.
fn with_password(proxy: &FaultProxy, url: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(&proxy.url_for(url).expect("proxied URL")).expect("URL");
    url.set_username(user).expect("username");
    url.set_password(Some(password)).expect("password");
    url.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_log_line_holds_a_password_from_either_url() {
    let env = TestEnv::new().await;
    let (user, password) = (unique("ow_user"), unique("pw-secret"));
    // A Redis user of this test's own, with a password (PostgreSQL's trust auth ignores its).
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            &user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ])
        .query_async(&mut env.redis.clone())
        .await
        .expect("ACL SETUSER");
    let acl_user = AclUser {
        redis_url: env.redis_url.clone(),
        name: user.clone(),
    };
    let redis = FaultProxy::start(&env.redis_addr())
        .await
        .expect("proxy starts");
    let postgres = FaultProxy::start(&env.postgres_addr())
        .await
        .expect("proxy starts");
    let redis_url = with_password(&redis, &env.redis_url, &user, &password);
    let database_url = with_password(&postgres, &env.database_url, "postgres", &password);
    let cut = || {
        redis.cut();
        postgres.cut();
    };
    let restore = || {
        redis.restore();
        postgres.restore();
    };

    cut();
    let settings = [("RUST_LOG", "debug")];
    let mut worker = env.spawn_process("secrets", &redis_url, &database_url, &settings);
    let port = http_port(&env, "secrets").await;
    eventually("waiting to start", async || {
        get(port, "/readyz").await.0 == 503 && env.process_log("secrets").contains("unavailable")
    })
    .await;
    env.seed_orders(&["o1", "o2"], "confirmed").await;
    for order in ["o1", "o2"] {
        restore();
        env.publish_lifecycle(order, &format!("f-{order}"), &[Planning])
            .await;
        eventually("applied", async || {
            env.order_status(order).await == "processing"
        })
        .await;
        // Both lost while running, then back for the next order.
        cut();
        eventually("not ready", async || get(port, "/readyz").await.0 == 503).await;
    }
    restore();
    eventually("ready again", async || get(port, "/readyz").await.0 == 200).await;
    assert_eq!(terminate(&mut worker).await.code(), Some(0));
    drop(acl_user);

    let log = env.process_log("secrets");
    for logged in [
        "Redis unavailable",
        "PostgreSQL unavailable",
        "is back after",
    ] {
        assert!(log.contains(logged), "nothing logged {logged:?}: {log}");
    }
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(&password)).collect();
    assert!(leaks.is_empty(), "the password is logged: {leaks:#?}");
    env.cleanup().await;
}
