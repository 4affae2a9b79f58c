//! The links of a Markdown document that point into the repository, and where they point.

use super::anchors::is_fence;

/// A link of a document: its line (1-based), the target as written, its path (empty: the
/// document itself) and its anchor, if any.
pub struct Link {
    pub line: usize,
    pub target: String,
    pub path: String,
    pub anchor: Option<String>,
}

impl Link {
    fn new(line: usize, target: &str) -> Link {
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor.to_owned())),
            None => (target, None),
        };
        Link {
            line,
            target: target.to_owned(),
            path: path.to_owned(),
            anchor,
        }
    }
}

/// Inline code spans blanked out: a `[x](y)` inside backticks is not a link.
fn without_code_spans(line: &str) -> String {
    let mut in_code = false;
    line.chars()
        .map(|c| {
            if c == '`' {
                in_code = !in_code;
            }
            if in_code || c == '`' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Every relative link `[text](target)` (or image) of a Markdown document, outside fenced code
/// blocks and code spans; `http(s):` and `mailto:` links are left out (never fetched). The text
/// may start on an earlier line; the target is on the line of its `](`.
pub fn relative_links(markdown: &str) -> Vec<Link> {
    let mut fenced = false;
    let mut links = Vec::new();
    for (number, line) in markdown.lines().enumerate() {
        if is_fence(line) {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let line = without_code_spans(line);
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].trim();
            let external = ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| target.starts_with(scheme));
            if !external {
                links.push(Link::new(number + 1, target));
            }
        }
    }
    links
}

/// Every link into this repository's `main` branch on GitLab in a file of any kind (an alert's
/// `runbook_url`, a dashboard's link): `<base><path>#<anchor>`, with its line.
pub fn repository_links(text: &str, base: &str) -> Vec<Link> {
    let mut links = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices(base) {
            let rest = &line[at + base.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ','))
                .unwrap_or(rest.len());
            links.push(Link::new(number + 1, &rest[..end]));
        }
    }
    links
}
