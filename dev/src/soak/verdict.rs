//! What a soak run must show at its end, from its samples alone (pure: table-tested).
//!
//! Flat resources. Per replica, over its readings past its warm-up ([`plan::warm_up`]) and outside the
//! outages (a backlog and reconnections are not a trend): the least-squares slope of each
//! reading, times the span it was read over, is its growth; it must stay within 10 % of the
//! mean or 4 MiB, whichever is more (resident memory), or 2 (descriptors, sockets). A replica
//! needs [`MIN_READINGS`] such readings to be judged; the count judged is reported.
//!
//! Latency: p99 of XADD → COMMIT under [`P99_LIMIT_MS`] in every window no outage excuses.
//! Logs: no line at ERROR level outside the excused spans.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plan::{self, Step};
use super::sample::{Latency, Sample};

pub const MIN_READINGS: usize = 9;
pub const P99_LIMIT_MS: f64 = 500.0;

/// The latency of the events published in [`from_s`, `to_s`) of the run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
    #[serde(flatten)]
    pub latency: Latency,
    /// Whether an outage (or its recovery) overlaps it, so its p99 is not judged.
    pub excused: bool,
}

/// The resource readings that trend upward past `warm_up`, one line each; empty when all are
/// flat. Also returns how many replicas were judged.
pub fn resources(samples: &[Sample], steps: &[Step], warm_up: Duration) -> (Vec<String>, usize) {
    let warm_up = warm_up.as_secs_f64();
    // Per replica: (age, [rss, fds, sockets]) of each reading judged.
    let mut lives: BTreeMap<&str, Vec<(f64, [f64; 3])>> = BTreeMap::new();
    for sample in samples.iter().filter(|s| !excused(steps, s.at_s, s.at_s)) {
        for replica in sample.replicas.iter().filter(|r| r.age_s >= warm_up) {
            let readings = [replica.rss_kib, replica.fds, replica.sockets].map(|v| v as f64);
            lives
                .entry(&replica.name)
                .or_default()
                .push((replica.age_s, readings));
        }
    }
    let mut rising = Vec::new();
    let mut judged = 0;
    for (name, life) in lives.into_iter().filter(|(_, l)| l.len() >= MIN_READINGS) {
        judged += 1;
        let span = life.last().map_or(0.0, |r| r.0) - life[0].0;
        for (i, what) in ["resident memory (KiB)", "descriptors", "sockets"]
            .iter()
            .enumerate()
        {
            let points: Vec<(f64, f64)> = life.iter().map(|(age, r)| (*age, r[i])).collect();
            let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
            let allowed = if i == 0 {
                (mean / 10.0).max(4096.0)
            } else {
                2.0
            };
            let growth = slope(&points) * span;
            if growth > allowed {
                rising.push(format!(
                    "{name}: {what} grew by {growth:.0} over {span:.0} s past warm-up (a \
                     least-squares trend; allowed: {allowed:.0}), mean {mean:.0}"
                ));
            }
        }
    }
    (rising, judged)
}

/// The least-squares slope of `points` (x, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(xy, xx), p| {
        (xy + (p.0 - mx) * (p.1 - my), xx + (p.0 - mx).powi(2))
    });
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// The windows no outage excuses whose p99 is over [`P99_LIMIT_MS`], one line each.
pub fn slow_windows(windows: &[Window]) -> Vec<String> {
    windows
        .iter()
        .filter(|w| !w.excused && w.latency.p99_ms >= P99_LIMIT_MS)
        .map(|w| {
            format!(
                "{:.0}–{:.0} s: p99 {:.0} ms over {} events (max {:.0} ms)",
                w.from_s, w.to_s, w.latency.p99_ms, w.latency.events, w.latency.max_ms
            )
        })
        .collect()
}

/// What the run was too short (or sampled too rarely) to judge, one line each: a soak that
/// judged no replica's resources, or under half its latency windows, proves little.
pub fn too_little_judged(replicas_judged: usize, windows: &[Window]) -> Vec<String> {
    let judged = windows.iter().filter(|w| !w.excused).count();
    let mut problems = Vec::new();
    if replicas_judged == 0 {
        problems.push(format!(
            "no replica's resources were judged: none has {MIN_READINGS} samples past its \
             warm-up outside the outages (run longer, or sample more often)"
        ));
    }
    if judged * 2 < windows.len() {
        problems.push(format!(
            "only {judged} of {} latency windows were judged, the others excused by outages \
             (run longer, or sample more often)",
            windows.len()
        ));
    }
    problems
}

/// Whether the window [`from_s`, `to_s`) of the run is excused by one of `steps`.
pub fn excused(steps: &[Step], from_s: f64, to_s: f64) -> bool {
    plan::excused(
        steps,
        Duration::from_secs_f64(from_s),
        Duration::from_secs_f64(to_s),
    )
}

/// The ERROR lines of a text-format log (`<RFC 3339 time> <LEVEL> …`) that no step excuses;
/// `started` is the run's start, as Unix milliseconds.
pub fn unexcused_errors<'a>(log: &'a str, steps: &[Step], started: i64) -> Vec<&'a str> {
    log.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            let (Some(time), Some("ERROR")) = (words.next(), words.next()) else {
                return false;
            };
            let Ok(time) = chrono::DateTime::parse_from_rfc3339(time) else {
                // An ERROR line without a time cannot be placed: never excused.
                return true;
            };
            let at = (time.timestamp_millis() - started).max(0) as f64 / 1000.0;
            !excused(steps, at, at)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::plan::{Action, Step};
    use super::super::sample::ReplicaSample;
    use super::*;

    fn sample(at_s: f64, readings: &[(&str, f64, u64, u64)]) -> Sample {
        Sample {
            at_s,
            published: 0,
            replicas: readings
                .iter()
                .map(|&(name, age_s, rss_kib, fds)| ReplicaSample {
                    name: name.to_owned(),
                    age_s,
                    rss_kib,
                    fds,
                    sockets: 4,
                })
                .collect(),
            topics: Vec::new(),
            latency: None,
        }
    }

    /// A replica's life: `rss(i)` and `fds(i)` at reading `i`, one reading every 10 s.
    fn life(
        readings: usize,
        rss: impl Fn(usize) -> u64,
        fds: impl Fn(usize) -> u64,
    ) -> Vec<Sample> {
        (0..readings)
            .map(|i| {
                let age = 10.0 * i as f64;
                sample(age, &[("r1", age, rss(i), fds(i))])
            })
            .collect()
    }

    #[test]
    fn a_leak_trends_upward_a_settled_process_does_not() {
        let table: [(&str, Vec<Sample>, usize, usize); 6] = [
            ("flat", life(30, |_| 20_000, |_| 12), 1, 0),
            // Memory and a pool that grew during warm-up, then stayed.
            (
                "grew during warm-up",
                life(
                    30,
                    |i| 10_000 + 1_000 * i.min(6) as u64,
                    |i| 8 + i.min(6) as u64,
                ),
                1,
                0,
            ),
            // A step once, then level: within the allowance.
            (
                "one step",
                life(
                    30,
                    |i| if i < 15 { 40_000 } else { 42_000 },
                    |i| 12 + u64::from(i >= 15),
                ),
                1,
                0,
            ),
            (
                "memory leak",
                life(30, |i| 40_000 + 300 * i as u64, |_| 12),
                1,
                1,
            ),
            (
                "descriptor leak",
                life(30, |_| 20_000, |i| 12 + (i / 4) as u64),
                1,
                1,
            ),
            // Six readings past warm-up: too short a life to judge.
            (
                "short-lived",
                life(12, |i| 20_000 + 5_000 * i as u64, |_| 12),
                0,
                0,
            ),
        ];
        for (case, samples, judged, problems) in table {
            let (rising, counted) = resources(&samples, &[], Duration::from_secs(60));
            assert_eq!(
                (counted, rising.len()),
                (judged, problems),
                "{case}: {rising:?}"
            );
        }
    }

    #[test]
    fn only_windows_outside_outages_are_held_to_the_p99_limit() {
        let latency = |p99_ms| Latency {
            events: 100,
            p50_ms: 5.0,
            p99_ms,
            max_ms: p99_ms,
        };
        let window = |from_s, p99, excused| Window {
            from_s,
            to_s: from_s + 10.0,
            latency: latency(p99),
            excused,
        };
        let windows = [
            window(0.0, 20.0, false),
            window(10.0, 3_000.0, true),
            window(20.0, 499.0, false),
            window(30.0, 700.0, false),
        ];
        let slow = slow_windows(&windows);
        assert_eq!(slow.len(), 1, "{slow:?}");
        assert!(slow[0].starts_with("30–40 s: p99 700 ms"), "{slow:?}");
    }

    #[test]
    fn a_run_that_judges_too_little_fails() {
        let window = |from_s, excused| Window {
            from_s,
            to_s: from_s + 10.0,
            latency: Latency {
                events: 10,
                p50_ms: 1.0,
                p99_ms: 2.0,
                max_ms: 2.0,
            },
            excused,
        };
        let half = [window(0.0, false), window(10.0, true)];
        assert!(too_little_judged(1, &half).is_empty());
        let few = [window(0.0, false), window(10.0, true), window(20.0, true)];
        assert_eq!(too_little_judged(1, &few).len(), 1);
        let problems = too_little_judged(0, &half);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("no replica's resources"),
            "{problems:?}"
        );
    }

    #[test]
    fn error_lines_count_unless_an_outage_excuses_them() {
        let steps = [Step {
            action: Action::PostgresOutage,
            at: Duration::from_secs(100),
            length: Duration::from_secs(5),
            recovery: Duration::from_secs(15),
        }];
        // The run started at 2026-12-04T10:00:00Z; the outage is excused from 100 s to 120 s.
        let started = 1_796_378_400_000;
        let log = "\
2026-12-04T10:00:50.000000Z ERROR order_worker: early
2026-12-04T10:01:41.000000Z ERROR order_worker: during the outage
2026-12-04T10:01:59.000000Z  WARN order_worker: a warning
2026-12-04T10:02:30.000000Z ERROR order_worker: after the recovery
no time ERROR at all";
        let errors = unexcused_errors(log, &steps, started);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].ends_with("early") && errors[1].ends_with("after the recovery"));
    }
}
