//! Markdown headings and the anchors GitHub and GitLab make of them, for tests/docs.rs (links)
//! and tests/monitoring.rs (the alerts' runbook URLs).

use std::collections::BTreeSet;

/// The anchor of a heading: lowercase, every character but letters, digits, `-`, `_` and spaces
/// dropped (backticks, `:`, `,`, `(`, `'`, `.` …), each space a `-`. That is GitHub's rule;
/// GitLab's also collapses a run of `-` into one, so a heading whose slug has `--` is refused
/// (tests/docs.rs) and the two sites agree on every anchor.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Whether a line opens or closes a fenced code block (also indented, inside a list item).
pub fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// The text of every ATX heading (`# …` to `###### …`) outside fenced code blocks.
pub fn headings(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut headings = Vec::new();
    for line in markdown.lines() {
        if is_fence(line) {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !fenced && (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            headings.push(line[hashes..].trim().to_owned());
        }
    }
    headings
}

/// Every anchor of a document: its headings' slugs, a repeated one numbered `-1`, `-2`, … in
/// order of appearance, as both sites number them.
pub fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for heading in headings(markdown) {
        let base = slug(&heading);
        let anchor = (0..)
            .map(|n| match n {
                0 => base.clone(),
                n => format!("{base}-{n}"),
            })
            .find(|anchor| !anchors.contains(anchor))
            .expect("a free number");
        anchors.insert(anchor);
    }
    anchors
}
