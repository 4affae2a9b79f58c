//! The trim point from group positions, without Redis: the lowest id any group still needs,
//! whether pending or not yet delivered, and refusals when nothing says what is safe.

use super::*;

fn id(raw: &str) -> StreamId {
    raw.parse().expect("test id")
}

fn group(name: &str, last_delivered: &str, oldest_pending: Option<&str>) -> GroupPosition {
    GroupPosition {
        name: name.to_owned(),
        last_delivered: id(last_delivered),
        oldest_pending: oldest_pending.map(id),
    }
}

#[test]
fn a_group_needs_its_oldest_pending_entry_or_the_first_undelivered_one() {
    let cases = [
        // (last delivered, oldest pending, needs from)
        ("100-5", None, "100-6"),
        ("100-5", Some("90-0"), "90-0"),
        ("100-5", Some("100-5"), "100-5"),
        ("0-0", None, "0-1"),
        ("100-18446744073709551615", None, "101-0"),
        // A pending id above the last delivered cannot happen (XGROUP SETID back): still safe.
        ("50-0", Some("60-0"), "50-1"),
        (
            "18446744073709551615-18446744073709551615",
            None,
            "18446744073709551615-18446744073709551615",
        ),
    ];
    for (last_delivered, oldest_pending, expected) in cases {
        let position = group("g", last_delivered, oldest_pending);
        assert_eq!(position.needs_from(), id(expected), "{position:?}");
    }
}

#[test]
fn the_cut_is_the_lowest_id_any_group_still_needs() {
    let cases: Vec<(&str, Vec<GroupPosition>, &str, &str)> = vec![
        (
            "one group, all acked",
            vec![group("order-service", "200-0", None)],
            "200-1",
            "order-service",
        ),
        (
            "one group, a pending entry holds the cut",
            vec![group("order-service", "200-0", Some("150-3"))],
            "150-3",
            "order-service",
        ),
        (
            "a second group behind on delivery",
            vec![
                group("order-service", "200-0", None),
                group("analytics", "120-0", None),
            ],
            "120-1",
            "analytics",
        ),
        (
            "the second group's pending entry is older still",
            vec![
                group("order-service", "200-0", Some("180-0")),
                group("analytics", "120-0", Some("110-0")),
            ],
            "110-0",
            "analytics",
        ),
        (
            "a new group at 0 keeps everything",
            vec![
                group("order-service", "200-0", None),
                group("replay", "0-0", None),
            ],
            "0-1",
            "replay",
        ),
        (
            "numeric, not text, order of ids",
            vec![
                group("order-service", "10-0", None),
                group("analytics", "9-0", None),
            ],
            "9-1",
            "analytics",
        ),
    ];
    for (what, groups, min_id, set_by) in cases {
        let expected = Cut {
            min_id: id(min_id),
            set_by: set_by.to_owned(),
        };
        assert_eq!(cut(&groups, "order-service"), Ok(expected), "{what}");
    }
}

#[test]
fn no_cut_without_groups_or_without_the_workers_group() {
    assert_eq!(cut(&[], "order-service"), Err(Refusal::NoGroups));
    assert_eq!(
        cut(&[group("analytics", "200-0", None)], "order-service"),
        Err(Refusal::MissingGroup("order-service".to_owned()))
    );
}

#[test]
fn the_report_says_what_went_what_would_go_or_that_nothing_is_below_the_cut() {
    let report = |below_cut, deleted, dry_run| TrimReport {
        stream: "s".to_owned(),
        length: 10,
        groups: vec![group("order-service", "7-0", Some("5-0"))],
        cut: Cut {
            min_id: id("5-0"),
            set_by: "order-service".to_owned(),
        },
        below_cut,
        deleted,
        dry_run,
    };
    let dry = render(&report(4, None, true));
    assert!(dry.starts_with("group          last delivered  oldest pending  needs from\n"));
    assert!(
        dry.contains("order-service  7-0             5-0             5-0\n"),
        "{dry}"
    );
    assert!(
        dry.contains("cut: XTRIM s MINID 5-0 (the oldest entry group order-service still needs)")
    );
    assert!(dry.contains("dry run: would delete 4 of 10 entries (every one below 5-0), 6 would stay; nothing was deleted"), "{dry}");
    let done = render(&report(4, Some(4), false));
    assert!(
        done.contains("deleted 4 of 10 entries (every one below 5-0); 6 stay"),
        "{done}"
    );
    let nothing = render(&report(0, None, false));
    assert!(
        nothing.contains("nothing to trim: none of the 10 entries is below the cut"),
        "{nothing}"
    );
}
