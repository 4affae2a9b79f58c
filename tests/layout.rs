//! The product crate's layout stays livable: its top-level modules import one another without a
//! circle (each can be read knowing only what it imports), unit tests sit where Rust looks for
//! them, with no `#[path]` pointing elsewhere, and a topic is spelt only in its own module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file of `src/` belongs to (`stream` for `src/stream/read.rs`).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src()).expect("under src/");
    let first = relative.components().next().expect("a file");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// The top-level modules `text` names as `crate::<module>`.
fn imports(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, found)| &text[at + found.len()..])
        .map(|rest| {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .filter(|module| !module.is_empty())
        .collect()
}

/// A circle through `start`, if its imports lead back to it: the modules on the way.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("never empty");
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

#[test]
fn the_top_level_modules_import_each_other_without_a_circle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(&src()) {
        let module = module_of(&file);
        let text = std::fs::read_to_string(&file).expect("a source file");
        let mut imported = imports(&text);
        imported.remove(&module);
        graph.entry(module).or_default().extend(imported);
    }
    assert!(
        graph.len() > 10,
        "the modules of src/ were found: {graph:?}"
    );
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|module| circle_through(&graph, module))
        .map(|circle| circle.join(" → "))
        .collect();
    assert!(
        circles.is_empty(),
        "modules of src/ import each other in a circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_finder_finds_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("topics", &["envelope", "telemetry"][..]),
        ("telemetry", &["instruments"]),
        ("instruments", &["topics"]),
        ("envelope", &[]),
    ]
    .into_iter()
    .map(|(module, imports)| {
        let imports = imports.iter().map(|m| m.to_string()).collect();
        (module.to_owned(), imports)
    })
    .collect();
    assert_eq!(
        circle_through(&graph, "topics").map(|c| c.join(" → ")),
        Some("topics → telemetry → instruments → topics".to_owned())
    );
    assert_eq!(circle_through(&graph, "envelope"), None);
    assert_eq!(
        imports("use crate::stream::id::StreamId; crate::topics::ALL; x::crate"),
        BTreeSet::from(["stream".to_owned(), "topics".to_owned()])
    );
}

#[test]
fn unit_tests_sit_where_rust_looks_for_them() {
    let pointed: Vec<String> = sources(&src())
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("a source file");
            text.lines()
                .any(|line| line.trim_start().starts_with("#[path"))
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        pointed.is_empty(),
        "#[path] in src/ (put a module's tests in `<module>/tests.rs`): {pointed:?}"
    );
}

#[test]
fn no_topic_is_named_outside_src_topics() {
    let names: Vec<&str> = order_worker::Catalogue::default()
        .iter()
        .map(|topic| topic.name())
        .collect();
    assert!(names.len() >= 3, "the crate's topics were found: {names:?}");
    let topics = src().join("topics");
    let mut named = Vec::new();
    for file in sources(&src())
        .into_iter()
        .filter(|f| !f.starts_with(&topics))
    {
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (number, line) in text.lines().enumerate() {
            for name in names.iter().filter(|n| line.contains(&format!("\"{n}\""))) {
                named.push(format!("{}:{}: {name}", file.display(), number + 1));
            }
        }
    }
    assert!(
        named.is_empty(),
        "topics named outside src/topics/ (use the topic's name() or a constant of topics):\n{}",
        named.join("\n")
    );
}

/// The product's functions (not its tests) longer than `limit` lines: `file:line name (n lines)`.
/// rustfmt's layout makes this exact enough: a function ends at the first `}` at its indent.
fn long_functions(text: &str, limit: usize) -> Vec<(usize, String, usize)> {
    // Unit tests sit in `mod tests` at the end of a file, or in `tests.rs` (skipped by callers).
    let product = text.split("\n#[cfg(test)]\nmod ").next().unwrap_or(text);
    let lines: Vec<&str> = product.lines().collect();
    let mut long = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        let signature = code
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("async ")
            .trim_start_matches("const ");
        let Some(name) = signature.strip_prefix("fn ") else {
            at += 1;
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A declaration without a body (a trait's) ends with `;` before any `{`.
        let opened =
            (at..lines.len()).find(|&i| lines[i].ends_with('{') || lines[i].ends_with(';'));
        let Some(opened) = opened else { break };
        if lines[opened].ends_with(';') {
            at = opened + 1;
            continue;
        }
        let close = format!("{indent}}}");
        let Some(end) = (opened..lines.len()).find(|&i| lines[i] == close) else {
            break;
        };
        let length = end - at + 1;
        if length > limit {
            long.push((at + 1, name, length));
        }
        at = end + 1;
    }
    long
}

#[test]
fn no_function_in_src_is_longer_than_60_lines() {
    let mut long = Vec::new();
    for file in sources(&src()) {
        let is_tests = file.components().any(|c| {
            let c = c.as_os_str().to_string_lossy();
            c == "tests.rs" || c.ends_with("_tests") || c.ends_with("_tests.rs")
        });
        if is_tests {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (line, name, length) in long_functions(&text, 60) {
            long.push(format!("{}:{line} {name} ({length} lines)", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "functions in src/ over 60 lines (split them, each named for what it does):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_finds_a_long_function_and_skips_tests() {
    let body = "    let x = 1;\n".repeat(61);
    let text = format!(
        "trait T {{\n    fn declared(&self)\n        -> u8;\n}}\n\n/// Short.\nfn short() {{\n    1\n}}\n\n\
         pub(super) async fn long() {{\n{body}}}\n\n\
         #[cfg(test)]\nmod tests {{\n    fn also_long() {{\n{body}    }}\n}}\n"
    );
    assert_eq!(long_functions(&text, 60), vec![(11, "long".to_owned(), 63)]);
}
