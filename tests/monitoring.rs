//! The alerts and the dashboard of k8s/monitoring/, checked with promtool (rule syntax, the
//! unit tests that make each alert fire and resolve, the lint of the live `/metrics`) and
//! against what a real worker process exports: every metric they name must exist, every
//! runbook URL must lead to a heading of docs/alerts.md.

#[path = "docs/anchors.rs"]
mod anchors;
#[path = "monitoring/names.rs"]
mod names;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anchors::anchors;
use names::{exported, metric_names};
use order_worker::FulfillmentStatus::Planning;
use order_worker_dev::publisher::Format;
use support::http::{get, http_port, Metrics};
use support::payments::{publish_payment, stream_key, ALL_TOPICS, CONFIRMED, FAILED, FULFILLMENT};
use support::process::terminate;
use support::{eventually, TestEnv};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

fn monitoring(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("k8s/monitoring")
        .join(file)
}

/// `promtool <args>` in `dir`, with `stdin` fed to it.
fn promtool(args: &[&str], dir: &Path, stdin: &str) -> Output {
    use std::io::Write;
    let spawned = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: install Debian's `prometheus` package \
             (apt-get install prometheus; .ci/run does)"
        ),
        spawned => spawned.expect("promtool runs"),
    };
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("promtool reads");
    drop(input);
    child.wait_with_output().expect("promtool runs")
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The PrometheusRule's `.spec`: the rule groups, as promtool reads them.
fn rule_spec() -> Yaml {
    let path = monitoring("prometheus-rule.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(docs.len(), 1, "one PrometheusRule");
    assert_eq!(docs[0]["kind"].as_str(), Some("PrometheusRule"));
    docs[0]["spec"].clone()
}

fn rules(spec: &Yaml) -> Vec<&Yaml> {
    let groups = spec["groups"].as_vec().expect("groups");
    groups
        .iter()
        .flat_map(|group| group["rules"].as_vec().expect("rules"))
        .collect()
}

fn write_yaml(path: &Path, yaml: &Yaml) {
    let mut text = String::new();
    YamlEmitter::new(&mut text).dump(yaml).expect("YAML");
    std::fs::write(path, text + "\n").expect("rule file written");
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = rule_spec();
    write_yaml(&dir.path().join("all.rules.yaml"), &spec);
    let checked = promtool(&["check", "rules", "all.rules.yaml"], dir.path(), "");
    assert!(checked.status.success(), "{}", printed(&checked));
    assert!(
        printed(&checked).contains(&format!("{} rules found", rules(&spec).len())),
        "{}",
        printed(&checked)
    );

    // The unit tests compare every annotation: they get the summaries alone (see rules-test.yaml).
    let mut tested = spec.clone();
    for group in tested["groups"].as_mut_vec().expect("groups") {
        for rule in group["rules"].as_mut_vec().expect("rules") {
            let annotations = rule["annotations"].as_mut_hash().expect("annotations");
            annotations.retain(|key, _| key.as_str() == Some("summary"));
        }
    }
    write_yaml(&dir.path().join("order-worker.rules.yaml"), &tested);
    std::fs::copy(
        monitoring("rules-test.yaml"),
        dir.path().join("rules-test.yaml"),
    )
    .expect("copy");
    let tests = promtool(&["test", "rules", "rules-test.yaml"], dir.path(), "");
    assert!(tests.status.success(), "{}", printed(&tests));

    // Each alert has a unit test, which promtool does not require.
    let unit_tests = std::fs::read_to_string(monitoring("rules-test.yaml")).expect("tests");
    for rule in rules(&spec) {
        let alert = rule["alert"].as_str().expect("alerting rules only");
        assert!(
            unit_tests.contains(&format!("alertname: {alert}\n")),
            "no unit test of {alert}"
        );
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{alert}: severity {severity:?}"
        );
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][annotation].as_str().is_some(),
                "{alert}: no {annotation}"
            );
        }
    }
}

#[test]
fn every_runbook_url_leads_to_a_heading_of_the_alerts_doc_under_one_base() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.md");
    let anchors = anchors(&std::fs::read_to_string(path).expect("docs/alerts.md"));
    let spec = rule_spec();
    let mut bases = BTreeSet::new();
    for rule in rules(&spec) {
        let alert = rule["alert"].as_str().expect("alert");
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .expect("runbook_url");
        let (base, anchor) = url.split_once('#').expect("an anchor");
        bases.insert(base.to_owned());
        assert_eq!(anchor, format!("alert-{}", alert.to_lowercase()), "{url}");
        assert!(
            anchors.contains(anchor),
            "docs/alerts.md has no heading for #{anchor}"
        );
    }
    assert_eq!(bases.len(), 1, "one docs/alerts.md URL for all: {bases:?}");
    assert!(
        bases.iter().all(|base| base.ends_with("/docs/alerts.md")),
        "{bases:?}"
    );
}

/// Every expression of the dashboard's panels, and its datasource references.
fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(monitoring("dashboard.json")).expect("dashboard.json");
    serde_json::from_str(&text).expect("dashboard.json is JSON")
}

fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    // A row only titles the panels below it: no query, no datasource.
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    exprs
}

#[test]
fn the_dashboard_takes_its_datasource_from_a_variable() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(variables.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    assert!(dashboard_exprs(&dashboard).len() >= 10);
    assert_eq!(
        metric_names(
            r#"sum by (le) (increase(a_bucket{n=~"$ns",x="}"}[$__rate_interval] offset 5m)) > on (i) group_left () 3 * b"#
        ),
        BTreeSet::from(["a_bucket".to_owned(), "b".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_metrics_lint_clean_and_hold_every_name_the_alerts_and_dashboard_use() {
    let env = TestEnv::new().await;
    env.seed_orders(&["o1"], "confirmed").await;
    env.seed_orders(&["o2", "o4", "o5"], "pending").await;
    env.seed_orders(&["o3"], "cancelled").await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    env.xadd(&[("data".to_owned(), "{not json".to_owned())])
        .await;
    // Applied on each payment topic, and a conflict: a payment for a cancelled order.
    for (topic, order) in [(CONFIRMED, "o2"), (CONFIRMED, "o3"), (FAILED, "o4")] {
        publish_payment(&env, topic, order, order, Some("9.90"), None, Format::Raw).await;
    }
    // A round of the inbox's retention soon, so its gauges are there too.
    let settings = [("TOPICS", ALL_TOPICS), ("INBOX_PRUNE_INTERVAL", "200ms")];
    let mut worker =
        env.spawn_process("monitoring-1", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "monitoring-1").await;
    let mut metrics = String::new();
    eventually(
        "all five settled, a claim round's gauges on every topic, a retention round's, the \
         relay's lead and its first events published",
        async || {
            metrics = get(port, "/metrics").await.1;
            let settled = [
                "fulfillment_event_outcomes_total{",
                "fulfillment_entries_dead_lettered_total{",
            ];
            let count: f64 = metrics
                .lines()
                .filter(|l| settled.iter().any(|prefix| l.starts_with(prefix)))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum();
            let gauges = [FULFILLMENT, CONFIRMED, FAILED].iter().all(|topic| {
                metrics.contains(&format!(
                    "fulfillment_stream_oldest_pending_idle_seconds{{topic=\"{topic}\"}}"
                ))
            });
            // A retention round sets the prune time, then the inbox's extent: wait for both.
            let pruned = metrics.contains("order_inbox_last_prune_timestamp_seconds ")
                && metrics.contains("order_inbox_rows ");
            let relayed = metrics
                .contains("order_events_relay_leader{outbox=\"order_events_outbox\"} 1")
                && metrics.contains("order_events_published_total{");
            count == 5.0 && gauges && pruned && relayed
        },
    )
    .await;
    // The relay's error counter appears with its first failed round: the fence moved on behind
    // its back (as another relay taking over does), the next round is refused. It takes the
    // stream over again and publishes that round after all.
    let _: u64 = redis::cmd("INCR")
        .arg(env.order_events().fence_key())
        .query_async(&mut env.redis.clone())
        .await
        .expect("INCR the relay's fence");
    publish_payment(&env, CONFIRMED, "o5", "o5", Some("9.90"), None, Format::Raw).await;
    eventually(
        "a publishing round refused, then o5's published",
        async || {
            metrics = get(port, "/metrics").await.1;
            metrics.contains("order_events_publish_errors_total{") && env.outbox_rows().await == 0
        },
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let linted = promtool(&["check", "metrics"], dir.path(), &metrics);
    assert!(
        linted.status.success(),
        "promtool check metrics: {}\n{metrics}",
        printed(&linted)
    );

    let names = exported(&metrics);
    let spec = rule_spec();
    let rule_exprs = rules(&spec)
        .into_iter()
        .map(|rule| rule["expr"].as_str().expect("expr").to_owned());
    for expr in rule_exprs.chain(dashboard_exprs(&dashboard())) {
        let used = metric_names(&expr);
        assert!(!used.is_empty(), "no metric in {expr}");
        let missing: Vec<_> = used.difference(&names).collect();
        assert!(
            missing.is_empty(),
            "{missing:?} (in {expr}) not exported:\n{metrics}"
        );
    }

    terminate(&mut worker).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oldest_pending_idle_gauge_follows_an_entry_no_replica_claims() {
    let env = TestEnv::new().await;
    env.publish_lifecycle("o1", "f1", &[Planning]).await;
    let stream = stream_key(&env, FULFILLMENT);
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", &stream, &env.stream.group, "0"])
        .query_async(&mut env.redis.clone())
        .await
        .expect("XGROUP CREATE");
    let held_at = std::time::Instant::now();
    let held = env.read_as(&env.stream.group, "gone", 10).await;
    assert_eq!(held.len(), 1);
    // Neither claimed as idle nor taken over as a gone consumer's for ten minutes.
    let settings = [
        ("CLAIM_MIN_IDLE_MS", "600000"),
        ("CONSUMER_GONE_MS", "600000"),
    ];
    let mut worker =
        env.spawn_process("monitoring-2", &env.redis_url, &env.database_url, &settings);
    let port = http_port(&env, "monitoring-2").await;
    let idle = "fulfillment_stream_oldest_pending_idle_seconds";
    let topic = [("topic", "fulfillment.status_changed")];
    let mut seconds = 0.0;
    eventually("the entry idle for a second", async || {
        let metrics = Metrics::scrape(port).await;
        seconds = metrics.value(idle, &topic).unwrap_or(0.0);
        seconds >= 1.0
    })
    .await;
    assert!(seconds <= held_at.elapsed().as_secs_f64(), "{seconds} s");
    let metrics = Metrics::scrape(port).await;
    assert_eq!(
        metrics.value("fulfillment_claim_min_idle_seconds", &[]),
        Some(600.0)
    );
    assert_eq!(
        metrics.value("fulfillment_stream_pending", &topic),
        Some(1.0)
    );

    let _: () = redis::cmd("XACK")
        .arg(&stream)
        .arg(&env.stream.group)
        .arg(&held)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XACK");
    eventually("nothing pending, nothing idle", async || {
        Metrics::scrape(port).await.value(idle, &topic) == Some(0.0)
    })
    .await;

    terminate(&mut worker).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_length_and_oldest_entry_age_gauges_follow_a_trim() {
    let env = TestEnv::new().await;
    let stream = stream_key(&env, FULFILLMENT);
    const TWO_DAYS: f64 = 2.0 * 86_400.0;
    let written = env.redis_now_ms().await - 2 * 86_400_000;
    env.fill_at(&stream, &[written]).await;
    env.fill(2).await;
    let mut worker = env.spawn_process("monitoring-3", &env.redis_url, &env.database_url, &[]);
    let port = http_port(&env, "monitoring-3").await;
    let (length, age) = (
        "fulfillment_stream_length",
        "fulfillment_stream_oldest_entry_age_seconds",
    );
    let topic = [("topic", "fulfillment.status_changed")];
    let mut metrics = Metrics::scrape(port).await;
    eventually("the length and age of the three entries", async || {
        metrics = Metrics::scrape(port).await;
        metrics.value(length, &topic) == Some(3.0)
    })
    .await;
    let seconds = metrics.value(age, &topic).expect("the age");
    assert!(
        (TWO_DAYS..TWO_DAYS + 60.0).contains(&seconds),
        "{seconds} s"
    );

    // The two-day-old entry trimmed: the next claim round sees two recent ones.
    let _: u64 = redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MINID")
        .arg(written + 1)
        .query_async(&mut env.redis.clone())
        .await
        .expect("XTRIM");
    eventually("the gauges after the trim", async || {
        let metrics = Metrics::scrape(port).await;
        metrics.value(length, &topic) == Some(2.0)
            && metrics.value(age, &topic).is_some_and(|s| s < 60.0)
    })
    .await;

    terminate(&mut worker).await;
    env.cleanup().await;
}
