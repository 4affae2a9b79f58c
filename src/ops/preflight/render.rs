//! Preflight as people read it: each stream (its extent, groups, what `run` does with
//! CONSUMER_GROUP, the rehearsal), the database, then the verdict and every red line.

use std::fmt::Write;

use super::{Database, Joining, Preflight, Rehearsal, StreamCheck};
use crate::ops::table::{human_ms, Table};

pub fn render(preflight: &Preflight) -> String {
    let mut out = String::new();
    for check in &preflight.streams {
        stream(&mut out, check);
        out.push('\n');
    }
    database(&mut out, &preflight.database);
    out.push('\n');
    if preflight.is_ready() {
        out.push_str(
            "ready: `order-worker run` with these settings will understand these streams\n",
        );
    } else {
        let _ = writeln!(out, "NOT READY: {} problem(s)", preflight.problems.len());
        for problem in &preflight.problems {
            let _ = writeln!(out, "{}", console::style(format!("✗ {problem}")).red());
        }
    }
    out
}

fn stream(out: &mut String, check: &StreamCheck) {
    let facts = &check.facts;
    let _ = writeln!(
        out,
        "stream {} (topic {}, {})",
        facts.stream, facts.topic, check.setting
    );
    if !facts.exists {
        let instead = match facts.found_instead.as_slice() {
            [] => "nothing was published to it yet, or the name is wrong".to_owned(),
            found => format!("but {} does", found.join(", ")),
        };
        let _ = writeln!(out, "  does not exist: {instead}");
        return;
    }
    let age = |entry: &Option<super::EntryAge>| {
        entry.as_ref().map_or("none".to_owned(), |entry| {
            format!("{} ({} old)", entry.id, human_ms(entry.age_ms))
        })
    };
    let mut summary = Table::plain();
    summary.row(vec!["length".into(), format!("{} entries", facts.length)]);
    summary.row(vec!["first entry".into(), age(&facts.first)]);
    summary.row(vec!["last entry".into(), age(&facts.last)]);
    summary.row(vec![
        "CONSUMER_GROUP".into(),
        format!("{}: {}", facts.consumer_group, joining(&facts.joining)),
    ]);
    out.push_str(&summary.render(2));
    if facts.groups.is_empty() {
        out.push_str("  no consumer group\n");
    } else {
        let mut groups = Table::new(&[
            "group",
            "dapr",
            "consumers (pending, idle)",
            "pending",
            "lag",
            "last delivered",
        ]);
        for group in &facts.groups {
            let consumers: Vec<String> = (group.consumers.iter())
                .map(|c| format!("{} ({}, {})", c.name, c.pending, human_ms(c.idle_ms)))
                .collect();
            groups.row(vec![
                group.name.clone(),
                if group.dapr_signature { "yes" } else { "" }.to_owned(),
                consumers.join(", "),
                group.pending.to_string(),
                group.lag.map_or("?".to_owned(), |lag| lag.to_string()),
                group.last_delivered_id.clone(),
            ]);
        }
        out.push_str(&groups.render(2));
    }
    if let Some(rehearsal) = &check.rehearsal {
        rehearsed(out, rehearsal);
    }
}

fn joining(joining: &Joining) -> String {
    match joining {
        Joining::JoinsDapr => "Dapr's group: the worker takes over its position and pending \
                               entries"
            .to_owned(),
        Joining::JoinsOwn => "an existing group (no Dapr group on this stream)".to_owned(),
        Joining::Creates { replayed } => format!(
            "does not exist yet: `run` creates it at GROUP_START_ID ({replayed} entries to read)"
        ),
        Joining::Wrong { fix, .. } => match fix {
            Some(fix) => format!("WRONG (see below): {fix}"),
            None => "WRONG (see below)".to_owned(),
        },
    }
}

fn rehearsed(out: &mut String, rehearsal: &Rehearsal) {
    let _ = writeln!(
        out,
        "  rehearsal: {} entries ({} newest, {} pending under Dapr's consumer{})",
        rehearsal.entries,
        rehearsal.sampled,
        rehearsal.dapr_pending,
        match rehearsal.dapr_pending_deleted {
            0 => String::new(),
            gone => format!(", {gone} of them trimmed from the stream"),
        }
    );
    if let Some(why) = &rehearsal.skipped {
        let _ = writeln!(out, "    decoded only, not applied: {why}");
    }
    let counts: Vec<String> = (rehearsal.outcomes.rows().iter())
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let _ = writeln!(out, "    {}", counts.join("  "));
    if rehearsal.dead_letters.is_empty() {
        out.push_str("    dead-lettered: none\n");
    } else {
        let mut reasons = Table::new(&["dead-lettered", "entries", "e.g.", "reason"]);
        for reason in &rehearsal.dead_letters {
            reasons.row(vec![
                reason.outcome.to_owned(),
                reason.entries.to_string(),
                reason.example_entry_id.clone(),
                reason.reason.clone(),
            ]);
        }
        out.push_str(&reasons.render(4));
    }
    if !rehearsal.unknown_orders.is_empty() {
        let more = match rehearsal.unknown_orders_not_listed {
            0 => String::new(),
            more => format!(" and {more} more"),
        };
        let _ = writeln!(
            out,
            "    orders unknown to the database: {}{more}",
            rehearsal.unknown_orders.join(", ")
        );
    }
    let ignored: Vec<String> = (rehearsal.ignored_fields.iter())
        .map(|(field, entries)| format!("{field} ({entries})"))
        .collect();
    let ignored = match ignored.is_empty() {
        true => "none".to_owned(),
        false => ignored.join(", "),
    };
    let _ = writeln!(out, "    payload fields the worker ignores: {ignored}");
}

fn database(out: &mut String, database: &Database) {
    let _ = writeln!(
        out,
        "database {} (orders table {})",
        database.url, database.orders_table
    );
    match &database.not_ready {
        None => out.push_str("  schema: current (`run` would start)\n"),
        Some(why) => {
            let _ = writeln!(out, "  schema: NOT READY: {why}");
        }
    }
    if let Some(outbox) = &database.outbox {
        let relay = outbox
            .relay
            .as_ref()
            .map_or("nobody relays".to_owned(), |holder| {
                let name = holder.application_name.as_deref().unwrap_or("a session");
                format!("{name} (pid {}) relays", holder.pid)
            });
        let _ = writeln!(
            out,
            "  outbox: {} row(s) waiting, {} held; {relay}",
            outbox.waiting, outbox.held
        );
    }
}
