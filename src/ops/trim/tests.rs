//! The trim point from group positions, without Redis: the lowest id any group still needs,
//! whether pending or not yet delivered, lowered to the keep window's start when that is
//! older, and refusals when nothing says what is safe.

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
            set_by: SetBy::Group(set_by.to_owned()),
        };
        assert_eq!(cut(&groups, "order-service", None), Ok(expected), "{what}");
    }
}

#[test]
fn the_keep_window_starts_keep_before_now_at_sequence_0_and_zero_means_none() {
    const DAY_MS: u64 = 86_400_000;
    let now = 1_700_000_000_000;
    let cases = [
        (Duration::ZERO, None),
        (Duration::from_secs(7 * 86_400), Some(now - 7 * DAY_MS)),
        (Duration::from_secs(36 * 3_600), Some(now - 36 * 3_600_000)),
        (Duration::from_millis(1), Some(now - 1)),
        // Longer than the epoch: the window holds every entry there can be.
        (Duration::from_secs(100 * 365 * 86_400), Some(0)),
        (Duration::MAX, Some(0)),
    ];
    for (keep, expected) in cases {
        assert_eq!(
            keep_from(now, keep),
            expected.map(StreamId::at_millis),
            "{keep:?}"
        );
    }
}

#[test]
fn the_cut_is_the_lower_of_what_the_groups_need_and_the_keep_windows_start() {
    let groups = vec![
        group("order-service", "200-0", Some("150-3")),
        group("analytics", "180-0", None),
    ];
    let by_group = |min_id| Cut {
        min_id: id(min_id),
        set_by: SetBy::Group("order-service".to_owned()),
    };
    let by_keep = |min_id| Cut {
        min_id: id(min_id),
        set_by: SetBy::Keep {
            groups_need_from: id("150-3"),
        },
    };
    let cases = [
        ("no window (--keep 0)", None, by_group("150-3")),
        (
            "the window starts before the pending entry",
            Some("100-0"),
            by_keep("100-0"),
        ),
        (
            "the window starts after it: the group holds the cut",
            Some("170-0"),
            by_group("150-3"),
        ),
        (
            "both at the same id: the group's",
            Some("150-3"),
            by_group("150-3"),
        ),
        ("one sequence lower", Some("150-2"), by_keep("150-2")),
        (
            "a window that keeps everything",
            Some("0-0"),
            by_keep("0-0"),
        ),
    ];
    for (what, window, expected) in cases {
        assert_eq!(
            cut(&groups, "order-service", window.map(id)),
            Ok(expected),
            "{what}"
        );
    }
}

#[test]
fn no_cut_without_groups_or_without_the_workers_group() {
    assert_eq!(cut(&[], "order-service", None), Err(Refusal::NoGroups));
    assert_eq!(
        cut(
            &[group("analytics", "200-0", None)],
            "order-service",
            Some(id("1-0"))
        ),
        Err(Refusal::MissingGroup("order-service".to_owned()))
    );
}

#[test]
fn the_report_says_what_went_what_would_go_or_that_nothing_is_below_the_cut() {
    let report = |below_cut, deleted, dry_run| TrimReport {
        stream: "s".to_owned(),
        length: 10,
        groups: vec![group("order-service", "7-0", Some("5-0"))],
        keep_seconds: 0,
        keep_from: None,
        cut: Cut {
            min_id: id("5-0"),
            set_by: SetBy::Group("order-service".to_owned()),
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
    assert!(dry.contains("keep: no window (--keep 0), only what a group still needs\n"));
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

#[test]
fn the_report_shows_the_keep_window_and_when_it_set_the_cut() {
    let report = TrimReport {
        stream: "s".to_owned(),
        length: 10,
        groups: vec![group("order-service", "1700000000500-0", None)],
        keep_seconds: 36 * 3_600,
        keep_from: Some(id("1700000000000-0")),
        cut: Cut {
            min_id: id("1700000000000-0"),
            set_by: SetBy::Keep {
                groups_need_from: id("1700000000500-1"),
            },
        },
        below_cut: 2,
        deleted: None,
        dry_run: true,
    };
    let text = render(&report);
    assert!(
        text.contains("keep: 1day 12h of history, every entry from 1700000000000-0 (2023-11-14T22:13:20.000Z) on\n"),
        "{text}"
    );
    assert!(
        text.contains("cut: XTRIM s MINID 1700000000000-0 (the keep window's start; the groups need only from 1700000000500-1 on)"),
        "{text}"
    );
    let json = serde_json::to_value(&report).expect("JSON");
    assert_eq!(json["keep_seconds"], 129_600);
    assert_eq!(json["keep_from"], "1700000000000-0");
    assert_eq!(
        json["cut"]["set_by"],
        serde_json::json!({"keep": {"groups_need_from": "1700000000500-1"}})
    );
}
