//! Where an entry stands among every subscribed stream's entries: the one order in which a single
//! worker applying them one by one would see them, and against which a late event is recognised.
//!
//! Entry ids order one stream; across streams, ids of the same millisecond (their resolution) say
//! nothing of which came first, so the topic's stage decides (a payment before the fulfillment).

use super::id::StreamId;

/// Bits of the stored key: milliseconds (until the year 2109), stage, sequence within the
/// millisecond (Redis cannot append half a million entries to one stream in a millisecond).
const MS_BITS: u32 = 42;
const STAGE_BITS: u32 = 2;
const SEQ_BITS: u32 = 19;

/// An entry's place: (milliseconds, topic stage, sequence), compared in that order. Parts beyond
/// what the key holds are capped when read, so a position and its key always agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    ms: u64,
    stage: u8,
    seq: u64,
}

impl Position {
    /// The place of entry `entry_id` (`<ms>-<seq>`, as Redis writes it) of a topic at `stage`.
    pub fn new(entry_id: &str, stage: u8) -> Self {
        // Redis gives every entry a well-formed id; anything else would stand last.
        let id = entry_id.parse::<StreamId>().unwrap_or(StreamId::MAX);
        let cap = |value: u64, bits: u32| value.min((1 << bits) - 1);
        Self {
            ms: cap(id.ms, MS_BITS),
            stage: stage.min((1 << STAGE_BITS) - 1),
            seq: cap(id.seq, SEQ_BITS),
        }
    }

    /// As stored (`processed_events.position`): a BIGINT that sorts as the position does, so
    /// PostgreSQL finds an order's newest event in its index.
    pub fn key(self) -> i64 {
        let key =
            (self.ms << (STAGE_BITS + SEQ_BITS)) | (u64::from(self.stage) << SEQ_BITS) | self.seq;
        key as i64
    }

    /// The position a stored key holds.
    pub fn from_key(key: i64) -> Self {
        let key = key as u64;
        let mask = |bits: u32| (1u64 << bits) - 1;
        Self {
            ms: key >> (STAGE_BITS + SEQ_BITS),
            stage: ((key >> SEQ_BITS) & mask(STAGE_BITS)) as u8,
            seq: key & mask(SEQ_BITS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn positions_order_by_time_then_stage_then_sequence_and_so_do_their_keys() {
        let ordered = [
            Position::new("0-1", 0),
            Position::new("9-5", 2),
            Position::new("10-0", 0),
            Position::new("10-7", 0),
            Position::new("10-1", 1),
            Position::new("10-0", 2),
            Position::new("10-12", 2),
            Position::new("1732950000000-0", 0),
            Position::new("1732950000000-524286", 2),
            Position::new("4398046511103-0", 0),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
            assert!(
                pair[0].key() < pair[1].key(),
                "{:?} < {:?}",
                pair[0],
                pair[1]
            );
        }
        for position in ordered {
            assert!(position.key() >= 0);
            assert_eq!(Position::from_key(position.key()), position);
        }
    }

    #[test]
    fn parts_beyond_the_key_are_capped_consistently() {
        let huge = Position::new("18446744073709551615-18446744073709551615", 7);
        assert_eq!(Position::from_key(huge.key()), huge);
        assert_eq!(huge.key(), i64::MAX);
        assert!(Position::new("1732950000000-1", 2) < huge);
    }

    #[test]
    fn every_topic_stage_fits_the_key() {
        for topic in crate::topics::ALL {
            assert!(topic.stage() < 4, "{topic:?}");
        }
    }
}
