//! Where an entry stands among every subscribed stream's entries: the one order in which a single
//! worker applying them one by one would see them, and against which a late event is recognised.
//!
//! Entry ids order one stream; across streams, ids of the same millisecond (their resolution) say
//! nothing of which came first, so the topic's stage decides (a payment before the fulfillment).

use std::fmt;

/// An entry's place: (milliseconds, topic stage, sequence), compared in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    ms: u64,
    stage: u8,
    seq: u64,
}

impl Position {
    /// The place of entry `entry_id` (`<ms>-<seq>`, as Redis writes it) of a topic at `stage`.
    pub fn new(entry_id: &str, stage: u8) -> Self {
        let (ms, seq) = entry_id.split_once('-').unwrap_or((entry_id, "0"));
        let number = |part: &str| part.parse().unwrap_or(u64::MAX);
        Self {
            ms: number(ms),
            stage,
            seq: number(seq),
        }
    }
}

/// Fixed-width text that sorts as the position does (`processed_events.position`), so
/// PostgreSQL finds an order's newest event with `max()`.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}-{}-{:020}", self.ms, self.stage, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn positions_order_by_time_then_stage_then_sequence_and_so_does_their_text() {
        let ordered = [
            Position::new("9-5", 2),
            Position::new("10-0", 0),
            Position::new("10-7", 0),
            Position::new("10-1", 1),
            Position::new("10-0", 2),
            Position::new("10-12", 2),
            Position::new("1732950000000-0", 0),
            Position::new("18446744073709551615-18446744073709551615", 2),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
            assert!(
                pair[0].to_string() < pair[1].to_string(),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(
            Position::new("1732950000000-3", 1).to_string(),
            "00000001732950000000-1-00000000000000000003"
        );
    }
}
