//! `outbox`'s text output: the counts and who relays as `name:  value` lines, then one aligned
//! line per row, oldest first, with the held columns only when a listed row is held or waits
//! behind one (the held reason last: it is the long column).

use std::fmt::Write;

use super::{Outbox, OutboxRow, RelayHolder};
use crate::ops::table::{human_ms, shorten, Table};

/// What the summary says when no session holds the relay's lock.
pub const NOBODY_RELAYS: &str = "no replica relays now: status changes wait in the outbox";

/// The snapshot as people read it.
pub fn render(outbox: &Outbox) -> String {
    let mut out = summary(outbox).render(0);
    let listing = if outbox.held_only {
        "held rows"
    } else {
        "oldest rows"
    };
    let _ = writeln!(
        out,
        "\n{listing} ({} shown of {}):",
        outbox.rows.len(),
        outbox.listed_of()
    );
    if outbox.rows.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&rows_table(&outbox.rows).render(2));
    }
    out
}

fn summary(outbox: &Outbox) -> Table {
    let behind = match outbox.behind_held {
        0 => String::new(),
        n => format!("; {n} behind a held row"),
    };
    let held = match outbox.held {
        0 => "0".to_owned(),
        n => format!("{n} (Redis refused them for good; each stops its order's later rows)"),
    };
    let mut table = Table::plain();
    for (name, value) in [
        (
            "waiting",
            format!("{} (not published yet{behind})", outbox.waiting),
        ),
        ("held", held),
        (
            "oldest waiting",
            outbox
                .oldest_waiting_ms
                .map_or_else(|| "-".to_owned(), human_ms),
        ),
        (
            "relay",
            outbox
                .relay
                .as_ref()
                .map_or_else(|| NOBODY_RELAYS.to_owned(), holder),
        ),
    ] {
        table.row(vec![format!("{name}:"), value]);
    }
    table
}

/// The relaying session in one line: what names the replica first (its application name, its
/// address), then how long its session has lasted (a relay that keeps restarting shows here).
pub(super) fn holder(holder: &RelayHolder) -> String {
    let mut text = format!("pid {}", holder.pid);
    if let Some(name) = &holder.application_name {
        let _ = write!(text, " ({name})");
    }
    if let Some(role) = &holder.role {
        let _ = write!(text, ", role {role}");
    }
    match &holder.backend_start {
        Some(start) => {
            let from = holder.client_addr.as_deref().unwrap_or("a local socket");
            let _ = write!(text, ", from {from}, session started {start}");
            if let Some(age) = holder.session_age_ms {
                let _ = write!(text, " ({} ago)", human_ms(age.max(0) as u64));
            }
        }
        None => text.push_str(
            ", its address and start hidden from this role (pg_read_all_stats shows them)",
        ),
    }
    text
}

fn rows_table(rows: &[OutboxRow]) -> Table {
    let with_held = rows
        .iter()
        .any(|row| row.held_since.is_some() || row.waits_behind.is_some());
    let mut header = vec!["id", "order_id", "change", "reason", "age", "cause"];
    if with_held {
        header.extend(["held since", "held reason"]);
    }
    let mut table = Table::new(&header);
    let or_dash = |value: Option<&str>| value.unwrap_or("-").to_owned();
    for row in rows {
        let mut cells = vec![
            row.id.to_string(),
            row.order_id.clone(),
            format!(
                "{} → {}",
                row.old_status.as_deref().unwrap_or("?"),
                row.new_status.as_deref().unwrap_or("?")
            ),
            or_dash(row.reason.as_deref()),
            human_ms(row.age_ms),
            format!("{}/{}", row.cause_topic, row.cause_entry_id),
        ];
        if with_held {
            cells.push(or_dash(row.held_since.as_deref()));
            cells.push(match (&row.held_reason, row.waits_behind) {
                (Some(reason), _) => shorten(reason, 100),
                (None, Some(id)) => format!("(behind held row {id})"),
                (None, None) => "-".to_owned(),
            });
        }
        table.row(cells);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::names::CONFIRMED;

    fn row(id: i64, order_id: &str, held: Option<&str>, waits_behind: Option<i64>) -> OutboxRow {
        OutboxRow {
            id,
            event_id: "00000000-0000-0000-0000-000000000000".to_owned(),
            order_id: order_id.to_owned(),
            old_status: Some("pending".to_owned()),
            new_status: Some("confirmed".to_owned()),
            reason: Some("PaymentConfirmed".to_owned()),
            created_at: "2026-12-07T10:54:00.000Z".to_owned(),
            age_ms: 252_000,
            cause_topic: CONFIRMED.to_owned(),
            cause_entry_id: "1795744451613-0".to_owned(),
            held_since: held.map(|_| "2026-12-07T10:55:00.000Z".to_owned()),
            held_reason: held.map(str::to_owned),
            waits_behind,
        }
    }

    fn outbox(rows: Vec<OutboxRow>, relay: Option<RelayHolder>) -> Outbox {
        Outbox {
            waiting: 2,
            behind_held: 1,
            held: 1,
            oldest_waiting_ms: Some(252_000),
            relay,
            held_only: false,
            rows,
        }
    }

    #[test]
    fn nobody_relaying_is_said_and_held_columns_appear_only_with_a_held_row() {
        let text = render(&outbox(vec![row(1, "o-1", None, None)], None));
        assert!(
            text.contains(&format!("relay:           {NOBODY_RELAYS}\n")),
            "{text}"
        );
        assert!(
            text.contains("waiting:         2 (not published yet; 1 behind a held row)\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "oldest rows (1 shown of 3):\n\
                 \x20 id  order_id  change               reason            age    cause\n\
                 \x20 1   o-1       pending → confirmed  PaymentConfirmed  4m12s  payment.confirmed/1795744451613-0\n"
            ),
            "{text}"
        );

        let text = render(&outbox(
            vec![
                row(1, "o-1", Some("ERR max bulk length"), None),
                row(2, "o-1", None, Some(1)),
                row(3, "o-2", None, None),
            ],
            None,
        ));
        assert!(
            text.contains("held since                held reason\n"),
            "{text}"
        );
        assert!(
            text.contains("  2026-12-07T10:55:00.000Z  ERR max bulk length\n"),
            "{text}"
        );
        assert!(
            text.contains("  -                         (behind held row 1)\n"),
            "{text}"
        );
        assert!(text.ends_with("  -                         -\n"), "{text}");
    }

    #[test]
    fn the_relay_is_named_by_what_this_role_may_see_of_it() {
        let mut relay = RelayHolder {
            pid: 4242,
            application_name: Some("order-worker-7d9c".to_owned()),
            role: Some("order_worker".to_owned()),
            client_addr: Some("10.42.0.17".to_owned()),
            backend_start: Some("2026-12-07T07:49:00.000Z".to_owned()),
            session_age_ms: Some(11_100_000),
        };
        assert_eq!(
            holder(&relay),
            "pid 4242 (order-worker-7d9c), role order_worker, from 10.42.0.17, \
             session started 2026-12-07T07:49:00.000Z (3h05m ago)"
        );
        relay.client_addr = None;
        assert!(holder(&relay).contains(", from a local socket,"));
        relay.backend_start = None;
        relay.application_name = None;
        assert_eq!(
            holder(&relay),
            "pid 4242, role order_worker, its address and start hidden from this role \
             (pg_read_all_stats shows them)"
        );
        let empty = Outbox {
            waiting: 0,
            behind_held: 0,
            held: 0,
            oldest_waiting_ms: None,
            relay: Some(relay),
            held_only: true,
            rows: Vec::new(),
        };
        let text = render(&empty);
        assert!(text.contains("oldest waiting:  -\n"), "{text}");
        assert!(
            text.ends_with("held rows (0 shown of 0):\n  none\n"),
            "{text}"
        );
    }
}
