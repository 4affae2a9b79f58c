//! The dead-letter commands' text output: one aligned line per dead letter (the error last, it
//! is the long column), and `field  value` lines for one.

use std::fmt::Write;

use super::{DeadLetterDetail, DeadLetterSummary, PurgeReport};
use crate::ops::output::rfc3339_ms;
use crate::ops::table::{human_ms, shorten, Table};

fn letters_table(letters: &[DeadLetterSummary]) -> Table {
    let mut table = Table::new(&["id", "source id", "deliveries", "age", "error"]);
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    for letter in letters {
        table.row(vec![
            letter.id.clone(),
            or_dash(letter.source_id.clone()),
            or_dash(letter.delivery_count.map(|n| n.to_string())),
            human_ms(letter.age_ms),
            or_dash(letter.error.as_deref().map(|error| shorten(error, 100))),
        ]);
    }
    table
}

/// `list` for people: one line per dead letter, the error last (it is the long column).
pub fn render_list(stream: &str, total: u64, letters: &[DeadLetterSummary]) -> String {
    if letters.is_empty() {
        return format!("no dead letters in {stream}\n");
    }
    let mut out = format!(
        "{stream}: {} shown of {total}, oldest first\n",
        letters.len()
    );
    out.push_str(&letters_table(letters).render(0));
    out
}

/// `show` for people: `field  value` lines in stored order; multi-line values (a pretty JSON
/// `data`) continue indented.
pub fn render_detail(detail: &DeadLetterDetail) -> String {
    let mut out = format!(
        "dead letter {} (dead-lettered {}, {} ago)\n",
        detail.id,
        detail.dead_lettered_at,
        human_ms(detail.age_ms)
    );
    let width = detail
        .ordered
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    for (name, value) in &detail.ordered {
        let continued = format!("\n  {:width$}  ", "");
        let value = value.replace('\n', &continued);
        let _ = writeln!(out, "  {name:<width$}  {value}");
    }
    out
}

/// `purge` for people: what is (or was) below the boundary, then what happened.
pub fn render_purge(report: &PurgeReport) -> String {
    let mut out = format!(
        "{}: {} of {} dead letters are older than {} ({})\n",
        report.dead_letter_stream,
        report.matched,
        report.total,
        report.before,
        rfc3339_ms(report.before.ms)
    );
    if !report.oldest.is_empty() {
        out.push_str(&letters_table(&report.oldest).render(2));
        let more = report.matched.saturating_sub(report.oldest.len() as u64);
        if more > 0 {
            let _ = writeln!(out, "  … and {more} more");
        }
    }
    let _ = match report.deleted {
        None => writeln!(
            out,
            "dry run: would delete {}, {} would stay; nothing was deleted",
            report.matched,
            report.total.saturating_sub(report.matched)
        ),
        Some(deleted) => writeln!(
            out,
            "deleted {deleted}; {} stay",
            report.total.saturating_sub(deleted)
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::id::StreamId;

    fn letter(id: &str, error: Option<&str>) -> DeadLetterSummary {
        DeadLetterSummary {
            id: id.to_owned(),
            source_id: Some("1-0".to_owned()),
            error: error.map(str::to_owned),
            delivery_count: None,
            age_ms: 90_000,
            dead_lettered_at: rfc3339_ms(1_700_000_000_000),
        }
    }

    #[test]
    fn a_list_says_when_there_is_nothing_and_marks_missing_fields() {
        assert_eq!(
            render_list("s.deadletter", 0, &[]),
            "no dead letters in s.deadletter\n"
        );
        assert_eq!(
            render_list("s.deadletter", 7, &[letter("5-0", None)]),
            "s.deadletter: 1 shown of 7, oldest first\n\
             id   source id  deliveries  age    error\n\
             5-0  1-0        -           1m30s  -\n"
        );
    }

    #[test]
    fn a_purge_lists_at_most_what_it_read_and_counts_the_rest() {
        let report = |deleted| PurgeReport {
            dead_letter_stream: "s.deadletter".to_owned(),
            before: StreamId::at_millis(1_700_000_000_000),
            total: 30,
            matched: 25,
            oldest: vec![letter("5-0", Some("boom"))],
            deleted,
            dry_run: deleted.is_none(),
        };
        let dry = render_purge(&report(None));
        assert!(dry.starts_with(
            "s.deadletter: 25 of 30 dead letters are older than 1700000000000-0 (2023-11-14T22:13:20.000Z)\n"
        ), "{dry}");
        assert!(dry.contains("  … and 24 more\n"), "{dry}");
        assert!(
            dry.ends_with("dry run: would delete 25, 5 would stay; nothing was deleted\n"),
            "{dry}"
        );
        assert!(render_purge(&report(Some(25))).ends_with("deleted 25; 5 stay\n"));
    }
}
