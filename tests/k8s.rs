//! What the Kubernetes manifests (k8s/) must agree on with the binary, which schema validation
//! (kubernetes-validate in .ci/run) cannot see: every environment variable they set is one the
//! binary reads, each replica gets its own consumer name, the grace period outlasts
//! SHUTDOWN_TIMEOUT, the probes hit paths the binary serves on the port it binds, the
//! migrations' owner role comes from a Secret the workers never read, and the trim CronJob runs
//! flags the binary has, with the workers' image and a Redis user of its own, under the keep
//! window the retention alert allows for.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::process::order_worker_output;
use yaml_rust2::{Yaml, YamlLoader};

/// The one document of a manifest under k8s/.
fn manifest(relative: &str) -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("k8s")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(docs.len(), 1, "{relative}: one document expected");
    docs.remove(0)
}

fn str_of<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what}: a string expected, got {yaml:?}"))
}

fn list<'a>(yaml: &'a Yaml, what: &str) -> &'a [Yaml] {
    yaml.as_vec()
        .unwrap_or_else(|| panic!("{what}: a list expected, got {yaml:?}"))
}

/// Keys of a mapping (ConfigMap `data`, Secret `stringData`).
fn keys(yaml: &Yaml, what: &str) -> BTreeSet<String> {
    let hash = yaml
        .as_hash()
        .unwrap_or_else(|| panic!("{what}: a mapping expected"));
    hash.keys().map(|k| str_of(k, what).to_owned()).collect()
}

fn config_map() -> Yaml {
    manifest("base/configmap.yaml")
}

fn config_value(key: &str) -> String {
    str_of(&config_map()["data"][key], key).to_owned()
}

fn worker_container() -> Yaml {
    let deployment = manifest("base/deployment.yaml");
    let containers = list(
        &deployment["spec"]["template"]["spec"]["containers"],
        "containers",
    );
    assert_eq!(containers.len(), 1, "one container: the worker");
    containers[0].clone()
}

/// The environment variable names `order-worker <command> --help` shows as `[env: NAME…]`:
/// exactly what the binary reads.
fn env_names_read_by(command: &str) -> BTreeSet<String> {
    let output = order_worker_output(&[command, "--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    assert!(names.contains("LOG_FORMAT"), "{help}");
    names
}

/// Names a container's `env` list sets.
fn env_entries(container: &Yaml) -> Vec<(String, Yaml)> {
    list(&container["env"], "env")
        .iter()
        .map(|entry| (str_of(&entry["name"], "env name").to_owned(), entry.clone()))
        .collect()
}

#[test]
fn every_variable_the_manifests_set_is_one_the_binary_reads() {
    let run = env_names_read_by("run");
    let mut set = keys(&config_map()["data"], "ConfigMap data");
    set.extend(env_entries(&worker_container()).into_iter().map(|(n, _)| n));
    let secret = manifest("order-worker-example-secret.yaml");
    set.extend(keys(&secret["stringData"], "Secret stringData"));
    // A variable set only to be expanded into another, as `$(NAME)`, need not be read itself.
    let expanded: BTreeSet<String> = env_entries(&worker_container())
        .iter()
        .filter_map(|(_, entry)| entry["value"].as_str().map(str::to_owned))
        .flat_map(|value| {
            let names = value.split("$(").skip(1);
            names
                .filter_map(|rest| rest.split_once(')').map(|(name, _)| name.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let unknown: Vec<_> = set
        .difference(&run)
        .filter(|n| !expanded.contains(*n))
        .collect();
    assert!(unknown.is_empty(), "`run` does not read {unknown:?}");

    let job = manifest("migrate/job.yaml");
    let migrate = env_names_read_by("migrate");
    let containers = list(&job["spec"]["template"]["spec"]["containers"], "Job");
    for (name, _) in env_entries(&containers[0]) {
        assert!(migrate.contains(&name), "`migrate` does not read {name}");
    }
}

#[test]
fn secrets_and_settings_come_from_the_objects_the_manifests_define() {
    let container = worker_container();
    let config = config_map();
    let config_name = str_of(&config["metadata"]["name"], "ConfigMap name");
    let env_from = list(&container["envFrom"], "envFrom");
    assert_eq!(
        str_of(&env_from[0]["configMapRef"]["name"], "configMapRef"),
        config_name
    );
    let secret = manifest("order-worker-example-secret.yaml");
    let secret_name = str_of(&secret["metadata"]["name"], "Secret name");
    let secret_keys = keys(&secret["stringData"], "Secret stringData");
    for (name, entry) in env_entries(&container) {
        let reference = &entry["valueFrom"]["secretKeyRef"];
        if reference.is_badvalue() {
            continue;
        }
        assert_eq!(str_of(&reference["name"], &name), secret_name);
        assert!(secret_keys.contains(str_of(&reference["key"], &name)));
    }
}

#[test]
fn each_replica_is_its_own_consumer_named_after_its_pod() {
    let entries = env_entries(&worker_container());
    let (_, consumer) = entries
        .iter()
        .find(|(name, _)| name == "CONSUMER_NAME")
        .expect("CONSUMER_NAME is set");
    let field = &consumer["valueFrom"]["fieldRef"]["fieldPath"];
    assert_eq!(str_of(field, "CONSUMER_NAME fieldPath"), "metadata.name");
    // The ConfigMap applies to every replica: a name there would make them one consumer.
    assert!(config_map()["data"]["CONSUMER_NAME"].is_badvalue());
}

#[test]
fn the_grace_period_outlasts_the_shutdown_timeout() {
    let deployment = manifest("base/deployment.yaml");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds is set");
    let timeout = humantime::parse_duration(&config_value("SHUTDOWN_TIMEOUT"))
        .expect("SHUTDOWN_TIMEOUT parses");
    // A few seconds beyond it: the process needs time to exit after the timeout fires.
    assert!(
        Duration::from_secs(grace as u64) >= timeout + Duration::from_secs(5),
        "terminationGracePeriodSeconds {grace} must exceed SHUTDOWN_TIMEOUT {timeout:?} by 5 s"
    );
}

#[test]
fn probes_and_the_metrics_service_hit_what_the_binary_serves_on_http_addr() {
    let container = worker_container();
    let http_addr: std::net::SocketAddr = config_value("HTTP_ADDR").parse().expect("HTTP_ADDR");
    let ports = list(&container["ports"], "ports");
    let http = ports
        .iter()
        .find(|port| port["name"].as_str() == Some("http"))
        .expect("a port named http");
    assert_eq!(
        http["containerPort"].as_i64(),
        Some(i64::from(http_addr.port()))
    );
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(str_of(&get["path"], probe), path, "{probe}");
        assert_eq!(str_of(&get["port"], probe), "http", "{probe}");
    }
    let service = manifest("base/service.yaml");
    let service_port = &list(&service["spec"]["ports"], "Service ports")[0];
    assert_eq!(str_of(&service_port["targetPort"], "targetPort"), "http");
    let annotation = str_of(
        &service["metadata"]["annotations"]["prometheus.io/port"],
        "scrape port",
    );
    assert_eq!(annotation, http_addr.port().to_string());
}

#[test]
fn the_service_and_the_disruption_budget_select_the_worker_pods() {
    let deployment = manifest("base/deployment.yaml");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        &deployment["spec"]["selector"]["matchLabels"], pod_labels,
        "Deployment selector"
    );
    assert_eq!(
        &manifest("base/pdb.yaml")["spec"]["selector"]["matchLabels"],
        pod_labels
    );
    assert_eq!(
        &manifest("base/service.yaml")["spec"]["selector"],
        pod_labels
    );
}

#[test]
fn migrations_run_as_the_owner_role_from_a_secret_the_workers_never_read() {
    let job = manifest("migrate/job.yaml");
    let containers = list(&job["spec"]["template"]["spec"]["containers"], "Job");
    let (_, database_url) = env_entries(&containers[0])
        .into_iter()
        .find(|(name, _)| name == "DATABASE_URL")
        .expect("the Job sets DATABASE_URL");
    let reference = &database_url["valueFrom"]["secretKeyRef"];
    let (_, orders_table) = env_entries(&containers[0])
        .into_iter()
        .find(|(name, _)| name == "ORDERS_TABLE")
        .expect("the Job sets ORDERS_TABLE");
    assert_eq!(
        str_of(&orders_table["value"], "Job ORDERS_TABLE"),
        config_value("ORDERS_TABLE"),
        "migrate adopts the table the workers write"
    );
    let migrate_secret = manifest("order-worker-migrate-example-secret.yaml");
    assert_eq!(
        str_of(&reference["name"], "Job secret"),
        str_of(&migrate_secret["metadata"]["name"], "migrate Secret name")
    );
    assert!(keys(&migrate_secret["stringData"], "migrate Secret")
        .contains(str_of(&reference["key"], "Job secret key")));

    let worker_secret = manifest("order-worker-example-secret.yaml");
    assert_ne!(
        str_of(&worker_secret["metadata"]["name"], "Secret name"),
        str_of(&migrate_secret["metadata"]["name"], "migrate Secret name"),
        "the workers' Secret must not hold the owner role"
    );
    for (name, entry) in env_entries(&worker_container()) {
        let secret = &entry["valueFrom"]["secretKeyRef"]["name"];
        assert!(
            secret.is_badvalue() || secret != &migrate_secret["metadata"]["name"],
            "the worker reads {name} from the migrate Secret"
        );
    }
}

/// The trim CronJob and its one container.
fn trim_cronjob() -> (Yaml, Yaml) {
    let cronjob = manifest("base/trim-cronjob.yaml");
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let containers = list(&pod["containers"], "CronJob containers");
    assert_eq!(containers.len(), 1, "one container: trim");
    let container = containers[0].clone();
    (cronjob, container)
}

#[test]
fn the_trim_cronjob_runs_hourly_alone_with_arguments_the_binary_accepts() {
    let (cronjob, container) = trim_cronjob();
    let spec = &cronjob["spec"];
    assert_eq!(str_of(&spec["schedule"], "schedule"), "17 * * * *");
    assert_eq!(
        str_of(&spec["concurrencyPolicy"], "concurrencyPolicy"),
        "Forbid"
    );
    let args: Vec<&str> = list(&container["args"], "args")
        .iter()
        .map(|arg| str_of(arg, "arg"))
        .collect();
    assert_eq!(args[..2], ["trim", "--all-topics"], "{args:?}");
    // clap parses every flag and value before it prints help: a flag the binary lacks, or a
    // --keep it cannot read, fails here.
    let parsed = order_worker_output(&[&args[..], &["--help"]].concat(), &[]);
    assert!(
        parsed.status.success(),
        "order-worker {args:?}: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let kustomization = manifest("base/kustomization.yaml");
    assert!(
        list(&kustomization["resources"], "resources")
            .iter()
            .any(|resource| resource.as_str() == Some("trim-cronjob.yaml")),
        "k8s/base/kustomization.yaml lists trim-cronjob.yaml"
    );
}

#[test]
fn the_trim_cronjob_runs_the_workers_image_and_settings_with_a_redis_user_of_its_own() {
    let (cronjob, container) = trim_cronjob();
    let worker = worker_container();
    assert_eq!(container["image"], worker["image"]);
    assert_eq!(
        container["envFrom"], worker["envFrom"],
        "the workers' ConfigMap"
    );
    assert_eq!(container["securityContext"], worker["securityContext"]);
    let deployment = manifest("base/deployment.yaml");
    assert_eq!(
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"],
        deployment["spec"]["template"]["spec"]["securityContext"]
    );

    let trim = env_names_read_by("trim");
    let trim_secret = manifest("order-worker-trim-example-secret.yaml");
    let worker_secret = manifest("order-worker-example-secret.yaml");
    for (name, entry) in env_entries(&container) {
        assert!(trim.contains(&name), "`trim` does not read {name}");
        let reference = &entry["valueFrom"]["secretKeyRef"];
        if reference.is_badvalue() {
            continue;
        }
        assert_eq!(reference["name"], trim_secret["metadata"]["name"], "{name}");
        assert_ne!(
            reference["name"], worker_secret["metadata"]["name"],
            "{name}"
        );
        assert!(keys(&trim_secret["stringData"], "trim Secret")
            .contains(str_of(&reference["key"], &name)));
    }
    assert!(keys(&trim_secret["stringData"], "trim Secret").contains("REDIS_URL"));
}

#[test]
fn the_retention_alert_and_the_inbox_allow_the_cronjobs_keep_window() {
    let (_, container) = trim_cronjob();
    let args = list(&container["args"], "args");
    let keep = args
        .iter()
        .position(|arg| arg.as_str() == Some("--keep"))
        .map(|at| str_of(&args[at + 1], "--keep value"))
        .expect("the CronJob sets --keep");
    let keep_for = humantime::parse_duration(keep).expect("--keep parses");
    let inbox = humantime::parse_duration(&config_value("INBOX_RETENTION")).expect("parses");
    assert!(
        inbox >= keep_for,
        "the inbox forgets events ({inbox:?}) a replay of the stream ({keep}) can bring back"
    );
    let hours = keep_for.as_secs() / 3_600;
    let rule = manifest("monitoring/prometheus-rule.yaml");
    let rules = list(&rule["spec"]["groups"][0]["rules"], "rules");
    let alert = rules
        .iter()
        .find(|rule| rule["alert"].as_str() == Some("OrderWorkerRetentionNotRunning"))
        .expect("the retention alert");
    let expr = str_of(&alert["expr"], "expr");
    assert!(
        expr.ends_with(&format!("> ({hours} + 2) * 3600")),
        "{expr} against --keep {keep}"
    );
}
