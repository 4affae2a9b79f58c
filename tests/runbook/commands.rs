//! The runbook's commands, read from its `sh` blocks, and what each names checked against the
//! [`World`]: every problem found, as a sentence (none when the runbook is true).

use std::collections::{BTreeMap, BTreeSet};

use super::world::{Workload, World};

/// The section of a Markdown document from `heading` to the next heading of its level or above.
pub fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the document has no section {heading:?}"));
    let body = &doc[start + heading.len() + 2..];
    let end = body
        .match_indices("\n#")
        .find(|(at, _)| {
            let hashes = body[at + 1..].chars().take_while(|c| *c == '#').count();
            hashes <= level && body[at + 1 + hashes..].starts_with(' ')
        })
        .map_or(body.len(), |(at, _)| at);
    &body[..end]
}

/// The code blocks of a section: (info string, lines).
pub fn blocks(section: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in section.lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(_), Some(block)) => blocks.push(block),
            (Some(info), None) => open = Some((info.trim().to_owned(), Vec::new())),
            (None, Some(mut block)) => {
                block.1.push(line.to_owned());
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The commands of the `sh` blocks, as words (quotes removed), split at pipes, `&&`, `;` and `&`.
pub fn commands(section: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for (_, lines) in blocks(section).into_iter().filter(|(info, _)| info == "sh") {
        for line in lines.join("\n").replace("\\\n", " ").lines() {
            let mut words = Vec::new();
            for word in shell_words(line) {
                if ["|", "&&", ";", "&"].contains(&word.as_str()) {
                    commands.push(std::mem::take(&mut words));
                } else {
                    words.push(word);
                }
            }
            commands.push(words);
        }
    }
    commands.retain(|words| !words.is_empty());
    commands
}

/// Words as a shell splits them (quotes, comments), enough for a runbook.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => break,
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Every way the section disagrees with the world.
pub fn problems(section: &str, world: &World) -> Vec<String> {
    let mut problems = Vec::new();
    let mut forwarded = BTreeSet::new();
    for words in commands(section) {
        let line = words.join(" ");
        let mut found = Vec::new();
        match words[0].as_str() {
            "kubectl" => kubectl(&words[1..], world, &mut forwarded, &mut found),
            "argocd" => {
                let name = words.get(3).map_or("", String::as_str);
                if words.get(1).map(String::as_str) == Some("app")
                    && !world.applications.contains_key(name)
                {
                    found.push(format!("no Argo CD Application {name:?}"));
                }
            }
            "order-worker" => subcommand(&words[1..], world, &mut found),
            ".ci/bump-tag" => {
                let env = words.get(1).map_or("", String::as_str);
                let file = format!("k8s/overlays/{env}/image/kustomization.yaml");
                if !world.root.join(&file).is_file() {
                    found.push(format!("no tag file {file}"));
                }
            }
            "psql" => {
                for table in words.iter().flat_map(|w| w.split(" FROM ").skip(1)) {
                    let table = table.split_whitespace().next().unwrap_or("");
                    if !world.tables.contains(table) {
                        found.push(format!("the migrations create no table {table:?}"));
                    }
                }
            }
            "curl" => {
                for word in &words {
                    let Some(rest) = word.split("localhost:").nth(1) else {
                        continue;
                    };
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if !forwarded.contains(&port) {
                        found.push(format!(
                            "port {port} is not one a port-forward above opened"
                        ));
                    }
                }
            }
            _ => {}
        }
        problems.extend(found.into_iter().map(|p| format!("`{line}`: {p}")));
    }
    for path in repository_paths(section) {
        if !world.root.join(&path).exists() {
            problems.push(format!("no file {path}"));
        }
    }
    problems.extend(expected_output(section, world));
    problems
}

/// Words in backquotes or commands that name a file of the repository.
fn repository_paths(section: &str) -> BTreeSet<String> {
    let words = section.split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')');
    words
        .filter(|w| {
            ["k8s/", "argocd/", ".ci/", ".gitlab-ci.yml"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(|w| w.trim_end_matches(['.', ',', ':', ';']))
        .filter(|w| !w.contains(['<', '{', '*']))
        .map(str::to_owned)
        .collect()
}

/// The example output: one `Subscribing to stream` line per topic of TOPICS in that order, and
/// the `subscriptions` table's rows: each topic with the group.
fn expected_output(section: &str, world: &World) -> Vec<String> {
    let mut problems = Vec::new();
    let prefix = format!("{}: ", order_worker::SUBSCRIBING);
    let output: Vec<String> = blocks(section)
        .into_iter()
        .filter(|(info, _)| info != "sh")
        .flat_map(|(_, lines)| lines)
        .collect();
    let logged: Vec<String> = output
        .iter()
        .filter_map(|line| line.split(&prefix).nth(1))
        .filter_map(|rest| rest.split(',').next())
        .map(str::to_owned)
        .collect();
    if logged != world.topics {
        problems.push(format!(
            "the log lines subscribe to {logged:?}, TOPICS is {:?}",
            world.topics
        ));
    }
    let tables: Vec<_> = blocks(section)
        .into_iter()
        .filter(|(_, lines)| lines.first().is_some_and(|l| l.starts_with("topic ")))
        .collect();
    if tables.is_empty() {
        problems.push("no example of `order-worker subscriptions`' table".to_owned());
    }
    for (_, lines) in tables {
        let rows: Vec<Vec<&str>> = lines[1..]
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let topics: Vec<&str> = rows.iter().map(|row| row[0]).collect();
        if topics != world.topics {
            problems.push(format!(
                "the subscriptions table lists {topics:?}, TOPICS is {:?}",
                world.topics
            ));
        }
        if rows
            .iter()
            .any(|row| row.get(2) != Some(&world.group.as_str()))
        {
            problems.push(format!(
                "the subscriptions table's group is not {}",
                world.group
            ));
        }
    }
    problems
}

fn subcommand(words: &[String], world: &World, found: &mut Vec<String>) {
    let name = words.first().map_or("", String::as_str);
    let Some(flags) = world.subcommands.get(name) else {
        found.push(format!(
            "`order-worker --help` lists no subcommand {name:?}"
        ));
        return;
    };
    for flag in words[1..].iter().filter(|w| w.starts_with('-')) {
        let flag = flag.split('=').next().unwrap_or(flag);
        if !flags.contains(flag) {
            found.push(format!("`order-worker {name} --help` lists no {flag}"));
        }
    }
}

/// Flags of the kubectl verbs the runbook uses that take a value (`-f` is a file for `apply`,
/// but "follow" for `logs`).
fn takes_value(verb: &str, flag: &str) -> bool {
    match flag {
        "-n" | "--namespace" | "-c" | "--container" | "-l" | "--selector" | "-k" => true,
        "-f" | "--filename" => verb != "logs",
        "--for" | "--timeout" | "--since" | "--tail" | "-o" => true,
        _ => false,
    }
}

fn kubectl(
    words: &[String],
    world: &World,
    forwarded: &mut BTreeSet<String>,
    found: &mut Vec<String>,
) {
    let (words, exec) = match words.iter().position(|w| w == "--") {
        Some(at) => (&words[..at], &words[at + 1..]),
        None => (words, &[][..]),
    };
    let verb = words
        .iter()
        .find(|w| !w.starts_with('-'))
        .map_or("", String::as_str);
    let mut flags: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut positional = Vec::new();
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        if let Some((flag, value)) = word.split_once('=').filter(|_| word.starts_with('-')) {
            flags.entry(flag).or_default().push(value.to_owned());
        } else if word.starts_with('-') && takes_value(verb, word) {
            let value = iter.next().cloned().unwrap_or_default();
            flags.entry(word.as_str()).or_default().push(value);
        } else if !word.starts_with('-') {
            positional.push(word.as_str());
        }
    }
    let one = |short: &str, long: &str| {
        flags
            .get(short)
            .or(flags.get(long))
            .and_then(|v| v.first())
            .cloned()
    };
    let namespaces: BTreeSet<&str> = world
        .objects
        .iter()
        .map(|(_, ns, _)| ns.as_str())
        .chain(world.applications.values().map(String::as_str))
        .collect();
    let Some(namespace) = one("-n", "--namespace") else {
        found.push("names no namespace (-n)".to_owned());
        return;
    };
    if !namespaces.contains(namespace.as_str()) {
        found.push(format!("nothing is deployed in namespace {namespace}"));
    }
    for path in flags.get("-f").into_iter().chain(flags.get("-k")).flatten() {
        if !world.root.join(path).exists() {
            found.push(format!("no file {path}"));
        }
    }
    // The pods the command reaches: a workload named TYPE/NAME, or those a selector matches.
    let mut pods: Vec<&Workload> = Vec::new();
    let mut target = None;
    for reference in positional.iter().filter(|p| p.contains('/')) {
        let (kind, name) = reference.split_once('/').expect("TYPE/NAME");
        let kind = match kind {
            "deployment" | "deploy" | "deployments" => "Deployment",
            "job" | "jobs" => "Job",
            "svc" | "service" => "Service",
            "configmap" | "cm" => "ConfigMap",
            "pdb" => "PodDisruptionBudget",
            other => other,
        };
        let key = (kind.to_owned(), namespace.clone(), name.to_owned());
        if !world.objects.contains(&key) {
            found.push(format!("no {kind} {name} in namespace {namespace}"));
        }
        pods.extend(
            world
                .workloads
                .iter()
                .filter(|w| w.kind == kind && w.name == name),
        );
        target = Some((kind, name));
    }
    if let Some(selector) = one("-l", "--selector") {
        let wanted: BTreeMap<&str, &str> = selector
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let matching: Vec<&Workload> = world
            .workloads
            .iter()
            .filter(|w| w.namespace == namespace)
            .filter(|w| {
                wanted
                    .iter()
                    .all(|(k, v)| w.pod_labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        if matching.is_empty() {
            found.push(format!("no pods in {namespace} have the labels {selector}"));
        }
        pods.extend(matching);
    }
    let container = one("-c", "--container");
    if ["logs", "exec"].contains(&verb) && container.is_none() {
        found.push("names no container (-c)".to_owned());
    }
    if let Some(container) = container {
        for pod in pods.iter().filter(|w| !w.containers.contains(&container)) {
            found.push(format!(
                "{} {} has no container {container} (it has {:?})",
                pod.kind, pod.name, pod.containers
            ));
        }
    }
    if verb == "port-forward" {
        for mapping in positional.iter().skip(2) {
            let (local, remote) = mapping.split_once(':').unwrap_or((mapping, mapping));
            let remote: i64 = remote.parse().unwrap_or(-1);
            let known = match target {
                Some(("Service", name)) => {
                    world.service_ports.get(name).cloned().unwrap_or_default()
                }
                _ => pods
                    .iter()
                    .flat_map(|w| w.container_ports.clone())
                    .collect(),
            };
            if !known.contains(&remote) {
                found.push(format!("port {remote} is not one of {known:?}"));
            }
            forwarded.insert(local.to_owned());
        }
    }
    if exec.first().map(String::as_str) == Some("order-worker") {
        subcommand(&exec[1..], world, found);
    }
}
