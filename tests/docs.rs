//! The documentation holds together: every relative link and `#anchor` of README.md and
//! docs/*.md resolves, and so does every link into the repository from the alerts'
//! `runbook_url`s and the dashboard; docs/configuration.md lists exactly the environment
//! variables the binary reads; the README stays an overview.

#[path = "docs/anchors.rs"]
mod anchors;
#[path = "docs/links.rs"]
mod links;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anchors::{anchors, headings, slug};
use links::{relative_links, repository_links, Link};

/// Where the alerts' runbook URLs and the dashboard's links point: this repository on GitLab.
const REPOSITORY: &str = "https://gitlab.com/core-business/order-worker/-/blob/main/";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// README.md and every docs/*.md, as paths relative to the repository.
fn documents() -> Vec<String> {
    let mut documents = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let name = entry.expect("docs/ entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            documents.push(format!("docs/{name}"));
        }
    }
    documents.sort();
    documents
}

/// `relative` joined to the directory of `from`, `.` and `..` resolved (`None` above the root).
fn join<'a>(from: &'a str, relative: &'a str) -> Option<String> {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop(); // the file itself
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// What is wrong with a link of `from` to `file` (a path relative to the repository), if anything.
fn problem(from: &str, link: &Link, file: Option<String>) -> Option<String> {
    let at = format!("{from}:{}: link `{}`", link.line, link.target);
    let Some(file) = file else {
        return Some(format!("{at}: leads out of the repository"));
    };
    if !root().join(&file).exists() {
        return Some(format!("{at}: {file} does not exist"));
    }
    let anchor = link.anchor.as_ref()?;
    if !file.ends_with(".md") {
        return Some(format!("{at}: #{anchor} in {file}, which is not Markdown"));
    }
    if anchors(&read(&file)).contains(anchor) {
        return None;
    }
    Some(format!(
        "{at}: {file} has no heading whose anchor is #{anchor}"
    ))
}

#[test]
fn the_slug_follows_github_and_gitlab() {
    for (heading, anchor) in [
        (
            "Alert: OrderWorkerLagGrowing",
            "alert-orderworkerlaggrowing",
        ),
        ("Status rules (`src/topics/`)", "status-rules-srctopics"),
        (
            "Publishing status changes: `orders.order.status_changed`",
            "publishing-status-changes-ordersorderstatus_changed",
        ),
        ("Which group is Dapr's", "which-group-is-daprs"),
        (
            "What is pending, and who holds it",
            "what-is-pending-and-who-holds-it",
        ),
        ("The inbox", "the-inbox"),
        ("  Trailing space  ", "trailing-space"),
        ("Größe – in bytes", "größe--in-bytes"),
    ] {
        assert_eq!(slug(heading), anchor, "{heading:?}");
    }
    let doc = "# A\n```sh\n# not a heading\n```\n## A\n#Nope\n### A b\n#### A\n";
    let expected = ["a", "a-1", "a-b", "a-2"].map(str::to_owned);
    assert_eq!(anchors(doc), BTreeSet::from(expected));
}

#[test]
fn every_relative_link_and_anchor_of_the_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for document in documents() {
        for heading in headings(&read(&document)) {
            if slug(&heading).contains("--") {
                problems.push(format!(
                    "{document}: heading {heading:?}: its anchor has `--`, which GitLab makes `-`"
                ));
            }
        }
        for link in relative_links(&read(&document)) {
            let file = match link.path.as_str() {
                "" => Some(document.clone()),
                path => join(&document, path),
            };
            problems.extend(problem(&document, &link, file));
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser right?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_runbook_url_and_dashboard_link_into_the_repository_resolves() {
    let mut problems = Vec::new();
    for file in [
        "k8s/monitoring/prometheus-rule.yaml",
        "k8s/monitoring/dashboard.json",
    ] {
        let links = repository_links(&read(file), REPOSITORY);
        assert!(!links.is_empty(), "{file}: no link to {REPOSITORY}");
        for link in links {
            problems.extend(problem(file, &link, join("", &link.path)));
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_is_an_overview() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines, more than 300: move text to docs/"
    );
}

/// The `NAME`s of every `[env: NAME=…]` (or `[env: NAME]`, a hidden value) in clap's help.
fn env_markers(help: &str) -> Vec<String> {
    help.match_indices("[env: ")
        .map(|(at, marker)| {
            help[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

/// The subcommands a help page lists under `Commands:`, `help` aside.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// `order-worker help <command…>`, and the same for each of its subcommands, recursively:
/// every variable named by an `[env: …]`, with the first command that reads it.
fn clap_variables(command: &[String], variables: &mut BTreeMap<String, String>) {
    let output = Command::new(env!("CARGO_BIN_EXE_order-worker"))
        .arg("help")
        .args(command)
        .output()
        .expect("order-worker help");
    assert!(output.status.success(), "order-worker help {command:?}");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let name = format!("order-worker help {}", command.join(" "));
    for variable in env_markers(&help) {
        variables.entry(variable).or_insert_with(|| name.clone());
    }
    for subcommand in subcommands(&help) {
        let mut path = command.to_vec();
        path.push(subcommand);
        clap_variables(&path, variables);
    }
}

fn is_variable(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The `"NAME"` literals right after a `(` in a source file that calls `env::var`: its
/// `env::var("NAME")`s, and the calls of a helper that passes its argument on (`set("NAME")`
/// where `set` calls `env::var(name)`).
fn called_with_literals(source: &str) -> Vec<String> {
    source
        .split("(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| is_variable(name))
        .map(str::to_owned)
        .collect()
}

/// What src/ reads past clap: `std::env::var` (see [`called_with_literals`]), and what the
/// libraries it calls read on its behalf, when it calls them.
fn source_variables(dir: &Path, variables: &mut BTreeMap<String, String>) {
    const THROUGH_LIBRARIES: [(&str, &[&str]); 2] = [
        ("EnvFilter::try_from_default_env", &["RUST_LOG"]),
        (
            "rustls_native_certs::load_native_certs",
            &["SSL_CERT_FILE", "SSL_CERT_DIR"],
        ),
    ];
    for entry in std::fs::read_dir(dir).expect("src/") {
        let path = entry.expect("src/ entry").path();
        if path.is_dir() {
            source_variables(&path, variables);
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        let file = path.strip_prefix(root()).unwrap_or(&path).display();
        let mut read = Vec::new();
        if source.contains("env::var(") {
            read.extend(called_with_literals(&source));
        }
        for (call, names) in THROUGH_LIBRARIES {
            if source.contains(call) {
                read.extend(names.iter().map(|name| name.to_string()));
            }
        }
        for name in read {
            variables.entry(name).or_insert_with(|| file.to_string());
        }
    }
}

/// The variables docs/configuration.md lists: the first cell of a table row, `` `NAME` ``.
fn documented_variables() -> BTreeSet<String> {
    read("docs/configuration.md")
        .lines()
        .filter_map(|line| line.strip_prefix('|')?.split('|').next())
        .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`'))
        .filter(|name| is_variable(name))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_doc_lists_exactly_the_variables_the_binary_reads() {
    let mut read = BTreeMap::new();
    clap_variables(&[], &mut read);
    assert!(read.contains_key("REDIS_URL") && read.contains_key("MIGRATE_CONTRACT"));
    source_variables(&root().join("src"), &mut read);
    assert!(read.contains_key("POD_NAME") && read.contains_key("OTEL_BSP_MAX_QUEUE_SIZE"));
    let documented = documented_variables();
    let mut problems = Vec::new();
    for (variable, source) in &read {
        if !documented.contains(variable) {
            problems.push(format!(
                "docs/configuration.md lacks `{variable}`, which the binary reads ({source})"
            ));
        }
    }
    for variable in documented.iter().filter(|v| !read.contains_key(*v)) {
        problems.push(format!(
            "docs/configuration.md lists `{variable}`, which the binary does not read \
             (no `[env: {variable}]` in any `order-worker help`, nor in src/)"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
