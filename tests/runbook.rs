//! The runbook (docs/deployment.md, "Rolling out: GitLab CI, Argo CD, the runbook") stays true: every
//! deployment, container, namespace, label selector, port, file, Argo CD Application and
//! `order-worker` subcommand its commands name exists in k8s/, argocd/ and `order-worker --help`,
//! and its example output matches the ConfigMap's topics. The tests below also make the doc
//! or a manifest drift and expect the check to say so.

#[path = "runbook/commands.rs"]
mod commands;
#[path = "runbook/world.rs"]
mod world;

use std::sync::OnceLock;

use commands::{commands, problems, section};
use world::World;

const HEADING: &str = "## Rolling out: GitLab CI, Argo CD, the runbook";

fn deployment_doc() -> String {
    let path = world::root().join("docs/deployment.md");
    std::fs::read_to_string(path).expect("docs/deployment.md")
}

/// The repository's world, loaded once (it runs `order-worker --help` for every subcommand).
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::load)
}

fn runbook() -> String {
    section(&deployment_doc(), HEADING).to_owned()
}

#[test]
fn every_name_the_runbook_uses_exists() {
    let problems = problems(&runbook(), world());
    assert!(
        problems.is_empty(),
        "the runbook drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_deployment_notes_commands_work_unchanged() {
    // The team's notes say these, word for word; the runbook must say them too.
    let runbook = runbook();
    for command in [
        "kubectl logs -f deployment/order-worker -c worker -n core-business",
        "kubectl exec deployment/order-worker -c worker -n core-business -- order-worker subscriptions",
        "kubectl rollout status deployment/order-worker -n core-business",
    ] {
        assert!(runbook.contains(command), "the runbook lost `{command}`");
    }
    let checked = commands(&runbook);
    for verb in ["logs", "exec", "rollout", "port-forward"] {
        assert!(
            checked
                .iter()
                .any(|w| w[0] == "kubectl" && w.contains(&verb.to_owned())),
            "no kubectl {verb} command was read from the runbook"
        );
    }
}

/// The runbook with `from` replaced by `to` (which must occur) has a problem that mentions `about`.
fn drifted_runbook_is_caught(from: &str, to: &str, about: &str) {
    let runbook = runbook();
    assert!(runbook.contains(from), "the runbook does not say {from:?}");
    let problems = problems(&runbook.replace(from, to), world());
    assert!(
        problems.iter().any(|p| p.contains(about)),
        "{from:?} -> {to:?} went unnoticed: {problems:?}"
    );
}

#[test]
fn a_name_drifting_in_the_runbook_fails_the_check() {
    drifted_runbook_is_caught("-c worker", "-c order-worker", "no container order-worker");
    drifted_runbook_is_caught(
        "deployment/order-worker ",
        "deployment/order-service ",
        "no Deployment",
    );
    drifted_runbook_is_caught("-n core-business", "-n orders", "namespace orders");
    drifted_runbook_is_caught(
        "-- order-worker subscriptions",
        "-- order-worker subscribe",
        "subcommand",
    );
    drifted_runbook_is_caught("component=worker", "component=consumer", "have the labels");
    drifted_runbook_is_caught("9090:9090", "9090:3500", "port 3500");
    drifted_runbook_is_caught("localhost:9090", "localhost:3500", "port 3500");
    drifted_runbook_is_caught(
        "app sync order-worker-staging",
        "app sync order-service-staging",
        "Application",
    );
    drifted_runbook_is_caught(
        "FROM order_status_history",
        "FROM status_history",
        "no table",
    );
    drifted_runbook_is_caught("bump-tag production", "bump-tag prod", "no tag file");
    drifted_runbook_is_caught(
        "job/order-worker-migrate -c migrate",
        "job/order-worker-migrate -c worker",
        "container worker",
    );
    drifted_runbook_is_caught(
        "k8s/argocd/<env>",
        "k8s/argo/staging",
        "no file k8s/argo/staging",
    );
    drifted_runbook_is_caught("payment.failed, group", "payment.refunded, group", "TOPICS");
}

#[test]
fn a_name_drifting_in_the_manifests_fails_the_check() {
    let drifted = |file: &'static str, from: &'static str, to: &'static str, about: &str| {
        let world = World::load_with(&move |path, text| {
            if path != file {
                return text;
            }
            assert!(text.contains(from), "{file} does not say {from:?}");
            text.replace(from, to)
        });
        let problems = problems(&runbook(), &world);
        assert!(
            problems.iter().any(|p| p.contains(about)),
            "{file}: {from:?} -> {to:?} went unnoticed: {problems:?}"
        );
    };
    drifted(
        "k8s/base/deployment.yaml",
        "- name: worker",
        "- name: order-worker",
        "no container worker",
    );
    drifted(
        "k8s/base/kustomization.yaml",
        "namespace: core-business",
        "namespace: orders",
        "namespace core-business",
    );
    drifted(
        "k8s/base/service.yaml",
        "port: 9090",
        "port: 8080",
        "port 9090",
    );
    drifted(
        "k8s/base/deployment.yaml",
        "component: worker\n    spec:",
        "component: consumer\n    spec:",
        "have the labels",
    );
    drifted(
        "k8s/base/configmap.yaml",
        "payment.confirmed,payment.failed",
        "payment.confirmed",
        "TOPICS",
    );
    drifted(
        "argocd/applications/order-worker/staging/application.yaml",
        "name: order-worker-staging",
        "name: order-service-staging",
        "no Argo CD Application",
    );
}

#[test]
fn kubectl_renders_the_same_workloads_the_check_reads() {
    // The objects kustomize really renders give the same answers as the check's own reading of
    // the kustomizations (which needs no kubectl).
    let output = std::process::Command::new("kubectl")
        .args(["kustomize", "k8s/argocd/staging"])
        .current_dir(world::root())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "kubectl: {error}. Install it (`apt-get install kubectl`, from Debian or \
                 pkgs.k8s.io, as .ci/run does)"
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = String::from_utf8(output.stdout).expect("UTF-8");
    let mut from_kubectl = World::load();
    from_kubectl.objects.clear();
    from_kubectl.workloads.clear();
    from_kubectl.service_ports.clear();
    from_kubectl.add_objects(&world::parse(&rendered, "kubectl kustomize"));
    let problems = problems(&runbook(), &from_kubectl);
    assert!(
        problems.is_empty(),
        "against kubectl's rendering:\n{}",
        problems.join("\n")
    );
    let worker = from_kubectl
        .workloads
        .iter()
        .find(|w| w.kind == "Deployment")
        .expect("Deployment");
    assert_eq!(worker.containers, ["worker"]);
}
