//! Names for tests/monitoring.rs to compare: the metric names a PromQL expression selects, and
//! those a `/metrics` page holds.

use std::collections::BTreeSet;

/// The metric names a PromQL expression selects: identifiers outside label matchers, strings,
/// ranges and the label lists of `by`/`on`/…, and not followed by `(` (functions).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 17] = [
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let skip_to = |from: usize, close: char| {
        let mut i = from + 1;
        while i < chars.len() && chars[i] != close {
            i += if chars[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let (mut names, mut i, mut label_list) = (BTreeSet::new(), 0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_to(i, c);
        } else if c == '{' {
            // Label values are strings, skipped whole so a `}` in one cannot end the matcher.
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                i = if chars[i] == '"' {
                    skip_to(i, '"')
                } else {
                    i + 1
                };
            }
            i += 1;
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '(' && label_list {
            i = skip_to(i, ')');
            label_list = false;
        } else if ident(c) || c == '$' {
            let start = i;
            i += 1;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if LABEL_LISTS.contains(&word.as_str()) {
                label_list = true;
            } else if !(c.is_ascii_digit()
                || c == '$'
                || KEYWORDS.contains(&word.as_str())
                || next == Some(&'('))
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every metric name in Prometheus text: samples' (`_bucket` and all) and families'.
pub fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(family) => family.split(' ').next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}
