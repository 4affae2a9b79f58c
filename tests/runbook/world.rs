//! What the runbook's commands may name: the objects Argo CD and kubectl deploy from k8s/ (the
//! kustomizations' resources, followed as kustomize does; components only change images), the
//! Argo CD Applications, the tables the migrations create, and `order-worker`'s subcommands with
//! their flags, from its `--help`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

/// The kustomizations deployed: what Argo CD syncs per environment, and `kubectl apply -k k8s/`.
const KUSTOMIZATIONS: [&str; 3] = ["k8s/argocd/staging", "k8s/argocd/production", "k8s"];

/// A Deployment's or Job's pods.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub pod_labels: BTreeMap<String, String>,
    pub containers: Vec<String>,
    pub container_ports: Vec<i64>,
}

#[derive(Debug, Default)]
pub struct World {
    pub root: PathBuf,
    /// (kind, namespace, name) of every object deployed.
    pub objects: BTreeSet<(String, String, String)>,
    pub workloads: Vec<Workload>,
    /// Service name → its ports.
    pub service_ports: BTreeMap<String, Vec<i64>>,
    /// Application name → the namespace it lives in.
    pub applications: BTreeMap<String, String>,
    /// Subcommand → the flags its `--help` lists (the global ones included).
    pub subcommands: BTreeMap<String, BTreeSet<String>>,
    pub tables: BTreeSet<String>,
    /// The ConfigMap's TOPICS and CONSUMER_GROUP.
    pub topics: Vec<String>,
    pub group: String,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl World {
    /// The repository as it is.
    pub fn load() -> Self {
        Self::load_with(&|_, text| text)
    }

    /// The repository with `edit` applied to each file read (path relative to the root), so a
    /// test can make a manifest drift.
    pub fn load_with(edit: &dyn Fn(&str, String) -> String) -> Self {
        let root = root();
        let read = |relative: &str| {
            let text = std::fs::read_to_string(root.join(relative))
                .unwrap_or_else(|e| panic!("{relative}: {e}"));
            edit(relative, text)
        };
        let mut world = World {
            root: root.clone(),
            ..World::default()
        };
        let mut docs = Vec::new();
        for dir in KUSTOMIZATIONS {
            kustomize(&root, dir, None, &read, &mut docs);
        }
        world.add_objects(&docs);
        for env in ["staging", "production"] {
            let path = format!("argocd/applications/order-worker/{env}/application.yaml");
            for app in parse(&read(&path), &path) {
                world.applications.insert(
                    text(&app["metadata"]["name"]).to_owned(),
                    text(&app["metadata"]["namespace"]).to_owned(),
                );
            }
        }
        world.tables = tables(&root);
        world.subcommands = subcommands();
        world
    }

    /// Takes in rendered objects (from the loader above or `kubectl kustomize`).
    pub fn add_objects(&mut self, docs: &[Yaml]) {
        for doc in docs {
            let kind = text(&doc["kind"]).to_owned();
            let name = text(&doc["metadata"]["name"]).to_owned();
            let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            // The same object rendered by several kustomizations is one object.
            if !self
                .objects
                .insert((kind.clone(), namespace.to_owned(), name.clone()))
            {
                continue;
            }
            match kind.as_str() {
                "Deployment" | "Job" => {
                    let template = &doc["spec"]["template"];
                    let containers = template["spec"]["containers"].as_vec().expect("containers");
                    let workload = Workload {
                        kind,
                        name,
                        namespace: namespace.to_owned(),
                        pod_labels: string_map(&template["metadata"]["labels"]),
                        containers: containers
                            .iter()
                            .map(|c| text(&c["name"]).to_owned())
                            .collect(),
                        container_ports: containers
                            .iter()
                            .flat_map(|c| c["ports"].as_vec().cloned().unwrap_or_default())
                            .filter_map(|p| p["containerPort"].as_i64())
                            .collect(),
                    };
                    self.workloads.push(workload);
                }
                "Service" => {
                    let ports = doc["spec"]["ports"].as_vec().expect("Service ports");
                    let ports = ports.iter().filter_map(|p| p["port"].as_i64()).collect();
                    self.service_ports.insert(name, ports);
                }
                "ConfigMap" => {
                    if let Some(topics) = doc["data"]["TOPICS"].as_str() {
                        self.topics = topics.split(',').map(str::to_owned).collect();
                    }
                    if let Some(group) = doc["data"]["CONSUMER_GROUP"].as_str() {
                        group.clone_into(&mut self.group);
                    }
                }
                _ => {}
            }
        }
    }
}

pub fn parse(text: &str, what: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub fn text(yaml: &Yaml) -> &str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("a string expected, got {yaml:?}"))
}

fn string_map(yaml: &Yaml) -> BTreeMap<String, String> {
    let hash = yaml.as_hash().expect("a mapping");
    hash.iter()
        .map(|(k, v)| (text(k).to_owned(), text(v).to_owned()))
        .collect()
}

/// The objects `dir`'s kustomization renders: its resources (files, or directories followed
/// recursively), with its `namespace` set on each, as kustomize does.
fn kustomize(
    root: &Path,
    dir: &str,
    namespace: Option<&str>,
    read: &dyn Fn(&str) -> String,
    out: &mut Vec<Yaml>,
) {
    let path = format!("{dir}/kustomization.yaml");
    let kustomization = parse(&read(&path), &path).remove(0);
    let namespace = kustomization["namespace"].as_str().or(namespace);
    for resource in kustomization["resources"]
        .as_vec()
        .cloned()
        .unwrap_or_default()
    {
        let relative = normalize(&format!("{dir}/{}", text(&resource)));
        let start = out.len();
        if root.join(&relative).is_dir() {
            kustomize(root, &relative, namespace, read, out);
        } else {
            out.extend(parse(&read(&relative), &relative));
        }
        if let Some(namespace) = namespace {
            for doc in &mut out[start..] {
                if let Yaml::Hash(object) = doc {
                    let metadata = object
                        .get_mut(&Yaml::String("metadata".into()))
                        .expect("metadata");
                    if let Yaml::Hash(metadata) = metadata {
                        metadata.insert(
                            Yaml::String("namespace".into()),
                            Yaml::String(namespace.into()),
                        );
                    }
                }
            }
        }
    }
}

/// `a/b/../c` → `a/c`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// Every `CREATE TABLE name` of the migrations.
fn tables(root: &Path) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("migrations")).expect("migrations/") {
        let up = entry.expect("migration").path().join("up.sql");
        let Ok(sql) = std::fs::read_to_string(up) else {
            continue;
        };
        for rest in sql.split("CREATE TABLE ").skip(1) {
            let name = rest.trim_start_matches("IF NOT EXISTS ");
            tables.insert(name.split_whitespace().next().unwrap_or("").to_owned());
        }
    }
    tables
}

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_order-worker"))
        .args(args)
        .output()
        .expect("order-worker runs");
    assert!(output.status.success(), "order-worker {args:?}");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// `order-worker --help`'s commands, each with the flags of its own `--help`.
fn subcommands() -> BTreeMap<String, BTreeSet<String>> {
    let top = help(&["--help"]);
    let commands = top
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help");
    commands
        .map(|name| {
            let flags = help(&[name, "--help"])
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
                .filter(|word| word.starts_with('-') && word.len() > 1)
                .map(str::to_owned)
                .collect();
            (name.to_owned(), flags)
        })
        .collect()
}
