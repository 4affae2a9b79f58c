//! Replay's text output: the range and what was read, the count per outcome, then the
//! transitions written (or that would be) and the entries that did not apply, with why.

use std::fmt::Write;

use super::{ReplayReport, RequeueReport};
use crate::ops::output::rfc3339_ms;
use crate::ops::table::{shorten, Table};
use crate::stream::id::StreamId;

/// `replay --from … --to …` for people.
pub fn render_range(report: &ReplayReport) -> String {
    let mut out = heading(report);
    let mut counts = Table::new(&["outcome", "events"]);
    for (name, count) in report.counts.rows() {
        counts.row(vec![name.to_owned(), count.to_string()]);
    }
    out.push_str(&counts.render(2));
    transitions(&mut out, report);
    // The outbox rows: the workers' relay publishes them once this commits.
    let publish = if report.dry_run {
        "would publish"
    } else {
        "to publish (the workers' relay sends them)"
    };
    let _ = writeln!(
        out,
        "status changes {publish} on orders.order.status_changed: {}",
        report.published
    );
    not_applied(&mut out, report);
    if report.dry_run {
        out.push_str("dry run: the transaction was rolled back; nothing was written\n");
    }
    out
}

/// The range, what was read of it and how many events were replayed: the first line.
fn heading(report: &ReplayReport) -> String {
    let to = if report.to == StreamId::MAX {
        "the end".to_owned()
    } else {
        format!("{} ({})", report.to, rfc3339_ms(report.to.ms))
    };
    let mut out = format!(
        "{}{} from {} ({}) to {to}: {} entries read",
        if report.dry_run { "dry run of " } else { "" },
        report.stream,
        report.from,
        rfc3339_ms(report.from.ms),
        report.read,
    );
    match &report.order_id {
        Some(order) => {
            let _ = writeln!(
                out,
                ", {} events of order {order:?} replayed",
                report.replayed
            );
        }
        None => {
            let _ = writeln!(out, ", {} events replayed", report.replayed);
        }
    }
    out
}

/// The order transitions written (or that would be), listed.
fn transitions(out: &mut String, report: &ReplayReport) {
    let verb = if report.dry_run {
        "would write"
    } else {
        "written"
    };
    if report.transitions.is_empty() {
        let _ = writeln!(out, "order transitions {verb}: none");
        return;
    }
    let total = report.transitions.len() as u64 + report.transitions_not_listed;
    let _ = writeln!(out, "order transitions {verb}: {total}");
    let mut table = Table::new(&["entry", "order", "from", "to"]);
    for line in &report.transitions {
        table.row(vec![
            line.entry_id.clone(),
            line.order_id.clone(),
            line.from.clone(),
            line.to.clone(),
        ]);
    }
    out.push_str(&table.render(2));
    more(out, report.transitions_not_listed);
}

/// The entries that did not apply, with why; nothing if all did.
fn not_applied(out: &mut String, report: &ReplayReport) {
    if report.problems.is_empty() {
        return;
    }
    let total = report.problems.len() as u64 + report.problems_not_listed;
    let _ = writeln!(out, "not applied: {total}");
    let mut table = Table::new(&["entry", "outcome", "order", "reason"]);
    for problem in &report.problems {
        table.row(vec![
            problem.entry_id.clone(),
            problem.outcome.to_owned(),
            problem.order_id.clone().unwrap_or_else(|| "-".to_owned()),
            shorten(&problem.reason, 100),
        ]);
    }
    out.push_str(&table.render(2));
    more(out, report.problems_not_listed);
}

/// The line saying how many rows a listing left out, if it left any.
fn more(out: &mut String, not_listed: u64) {
    if not_listed > 0 {
        let _ = writeln!(out, "  … and {not_listed} more");
    }
}

/// `replay --dead-letter` for people: what moved where.
pub fn render_requeue(report: &RequeueReport) -> String {
    let mut out = String::new();
    if report.moved.is_empty() {
        let _ = writeln!(
            out,
            "moved no dead letters from {}",
            report.dead_letter_stream
        );
    } else {
        let _ = writeln!(
            out,
            "moved {} dead letters from {} back to {}",
            report.moved.len(),
            report.dead_letter_stream,
            report.stream
        );
        let mut table = Table::new(&["dead letter", "new id", "was", "error"]);
        let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        for moved in &report.moved {
            table.row(vec![
                moved.dead_letter_id.clone(),
                moved.new_id.clone(),
                or_dash(&moved.source_id),
                or_dash(&moved.error.as_deref().map(|error| shorten(error, 100))),
            ]);
        }
        out.push_str(&table.render(2));
    }
    if !report.empty.is_empty() {
        let _ = writeln!(
            out,
            "left in place (no original fields to put back): {}",
            report.empty.join(", ")
        );
    }
    out
}
