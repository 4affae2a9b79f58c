//! When a soak run does what: its outages and rolling restarts, laid out from its length alone
//! (pure, so the schedule is the same every run and table-tested), and which windows an outage
//! excuses.

use std::time::Duration;

/// How long after an outage ends its effects are excused: a sixth of the run, from 10 s (the
/// workers' reconnect backoff is capped at 5 s, and the backlog that built up drains after) to
/// 15 s. A short run gets short spans, so that most of its windows are still judged.
pub fn recovery(run: Duration) -> Duration {
    (run / 6).clamp(Duration::from_secs(10), Duration::from_secs(15))
}

/// How long a replica runs before its resources are judged (start-up allocations are not a
/// trend): a tenth of the run, from 20 s (a minute's run judged past 6 s saw a replica's memory
/// still growing by 4 MiB) to 60 s.
pub fn warm_up(run: Duration) -> Duration {
    (run / 10).clamp(Duration::from_secs(20), Duration::from_secs(60))
}

/// Each outage's length unless one is asked for: a twentieth of the run, from 2 s to 5 s.
pub fn outage(run: Duration) -> Duration {
    (run / 20).clamp(Duration::from_secs(2), Duration::from_secs(5))
}

/// A fault the soak injects, or a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Every replica's PostgreSQL connections cut, new ones refused, for the outage's length.
    PostgresOutage,
    /// The same for Redis.
    RedisOutage,
    /// Every replica replaced, one at a time, as `kubectl rollout restart` does.
    RollingRestart,
}

/// One step of the schedule: what, when (from the start) and, for an outage, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub action: Action,
    #[serde(with = "seconds")]
    pub at: Duration,
    #[serde(with = "seconds")]
    pub length: Duration,
    /// After an outage, how long its effects are excused ([`recovery`]); zero for a restart.
    #[serde(with = "seconds")]
    pub recovery: Duration,
}

impl Step {
    /// The span whose latency and ERROR lines the step excuses: an outage and its recovery.
    /// A rolling restart excuses nothing: replicas must hand over without a hiccup.
    pub fn excused(&self) -> Option<(Duration, Duration)> {
        match self.action {
            Action::RollingRestart => None,
            _ => Some((self.at, self.at + self.length + self.recovery)),
        }
    }
}

/// The run's steps in time order: a PostgreSQL outage at 30 % of the run and a Redis one at
/// 60 %, each `outage` long; a rolling restart every `restart_every` (none with zero), but
/// none that would overlap an outage or its recovery (a restart waits for its replicas to
/// subscribe, which an outage holds up); and, where that leaves none, one at 15 %.
pub fn schedule(run: Duration, restart_every: Duration, outage: Duration) -> Vec<Step> {
    let outage_at = |share: u32| Step {
        action: Action::PostgresOutage,
        at: run * share / 100,
        length: outage,
        recovery: recovery(run),
    };
    let outages = [
        outage_at(30),
        Step {
            action: Action::RedisOutage,
            ..outage_at(60)
        },
    ];
    // A rolling restart of a few replicas takes some seconds: keep it this far from an outage.
    let margin = Duration::from_secs(20);
    let clear = |at: Duration| {
        outages.iter().all(|step| {
            let (from, to) = step.excused().unwrap_or_default();
            at + margin <= from || at >= to
        })
    };
    let restart = |at| Step {
        action: Action::RollingRestart,
        at,
        length: Duration::ZERO,
        recovery: Duration::ZERO,
    };
    let mut steps: Vec<Step> = outages.to_vec();
    if !restart_every.is_zero() {
        let mut at = restart_every;
        while at + margin < run {
            if clear(at) {
                steps.push(restart(at));
            }
            at += restart_every;
        }
        if !steps.iter().any(|s| s.action == Action::RollingRestart) {
            steps.push(restart(run * 15 / 100));
        }
    }
    steps.sort_by_key(|step| step.at);
    steps
}

/// Whether the window [`from`, `to`) overlaps a span some step excuses.
pub fn excused(steps: &[Step], from: Duration, to: Duration) -> bool {
    steps
        .iter()
        .filter_map(Step::excused)
        .any(|(start, end)| from < end && start < to)
}

/// Durations as seconds in the JSON report.
mod seconds {
    pub fn serialize<S: serde::Serializer>(
        value: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const OUTAGE: Duration = Duration::from_secs(5);

    fn laid_out(run: Duration, every: Duration) -> Vec<(Action, u64)> {
        schedule(run, every, OUTAGE)
            .iter()
            .map(|step| (step.action, step.at.as_secs()))
            .collect()
    }

    #[test]
    fn outages_at_30_and_60_percent_and_restarts_clear_of_them() {
        use Action::*;
        let table = [
            // One minute: no restart every 3 min fits, so one at 15 %.
            (
                MIN,
                3 * MIN,
                vec![(RollingRestart, 9), (PostgresOutage, 18), (RedisOutage, 36)],
            ),
            // Ten minutes, every 3: the one at 180 s would collide with the outage at 180 s.
            (
                10 * MIN,
                3 * MIN,
                vec![
                    (PostgresOutage, 180),
                    (RedisOutage, 360),
                    (RollingRestart, 540),
                ],
            ),
            // Thirty minutes, every 5.
            (
                30 * MIN,
                5 * MIN,
                vec![
                    (RollingRestart, 300),
                    (PostgresOutage, 540),
                    (RollingRestart, 600),
                    (RollingRestart, 900),
                    (RedisOutage, 1080),
                    (RollingRestart, 1200),
                    (RollingRestart, 1500),
                ],
            ),
            // No restarts asked for.
            (
                10 * MIN,
                Duration::ZERO,
                vec![(PostgresOutage, 180), (RedisOutage, 360)],
            ),
        ];
        for (run, every, expected) in table {
            assert_eq!(laid_out(run, every), expected, "{run:?} every {every:?}");
        }
    }

    #[test]
    fn short_runs_get_short_spans() {
        // Run, then outage, recovery and warm-up, in seconds.
        for (run, spans) in [
            (60, [3, 10, 20]),
            (120, [5, 15, 20]),
            (600, [5, 15, 60]),
            (86_400, [5, 15, 60]),
        ] {
            let run = Duration::from_secs(run);
            let got = [outage(run), recovery(run), warm_up(run)].map(|d| d.as_secs());
            assert_eq!(got, spans, "{run:?}");
        }
    }

    #[test]
    fn a_two_minute_run_sampled_every_two_seconds_judges_most_windows() {
        let run = 2 * MIN;
        let steps = schedule(run, 5 * MIN, outage(run));
        let judged = (0..60)
            .filter(|i| {
                let from = Duration::from_secs(2 * i);
                !excused(&steps, from, from + Duration::from_secs(2))
            })
            .count();
        assert_eq!(judged, 40, "{steps:?}");
    }

    #[test]
    fn a_window_is_excused_when_it_overlaps_an_outage_or_its_recovery() {
        let steps = schedule(10 * MIN, Duration::ZERO, OUTAGE);
        let window = |from: u64| {
            excused(
                &steps,
                Duration::from_secs(from),
                Duration::from_secs(from + 10),
            )
        };
        // The PostgreSQL outage: 180 s to 185 s, excused until 200 s.
        assert!(!window(170));
        assert!(window(175));
        assert!(window(190));
        assert!(!window(200));
    }
}
