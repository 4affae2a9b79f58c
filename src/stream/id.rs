//! Stream entry ids as numbers, so the operator commands can compare them, step to the id just
//! above or below one, and turn a time into the id Redis would have given an entry written then.
//! Comparing ids as strings is wrong (`9-0` sorts after `10-0`).

use std::fmt;
use std::str::FromStr;

/// A stream entry id, `<milliseconds>-<sequence>`, ordered as Redis orders entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `0-0`: below every entry (no entry can have it).
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id Redis accepts.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The first id of millisecond `ms`: every entry written at or after that time has an id at
    /// least this large (Redis takes the ms part of `*` ids from its clock).
    pub fn at_millis(ms: u64) -> Self {
        Self { ms, seq: 0 }
    }

    /// The smallest id above this one (`None` above [`StreamId::MAX`]).
    pub fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(Self::at_millis),
        }
    }

    /// The largest id below this one (`None` below `0-0`).
    pub fn prev(self) -> Option<Self> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_sub(1).map(|ms| Self { ms, seq: u64::MAX }),
        }
    }
}

/// Why a text is not a stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a stream id (<milliseconds>-<sequence>, e.g. 1700000000000-0)")]
pub struct InvalidStreamId(pub String);

impl FromStr for StreamId {
    type Err = InvalidStreamId;

    /// `<ms>-<seq>`, or `<ms>` alone (sequence 0), as `XRANGE` accepts them.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidStreamId(raw.to_owned());
        let digits = |part: &str| {
            // u64::from_str accepts a leading `+`, which Redis does not.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u64>().map_err(|_| invalid())
        };
        match raw.split_once('-') {
            Some((ms, seq)) => Ok(Self {
                ms: digits(ms)?,
                seq: digits(seq)?,
            }),
            None => Ok(Self::at_millis(digits(raw)?)),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl serde::Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A boundary as an operator writes it: a stream id, or an RFC 3339 time (the id Redis would
/// have given an entry written at that instant).
pub fn parse_boundary(raw: &str) -> Result<StreamId, String> {
    if let Ok(id) = raw.parse::<StreamId>() {
        return Ok(id);
    }
    let time = chrono::DateTime::parse_from_rfc3339(raw).map_err(|_| {
        format!("{raw:?} is neither a stream id (1700000000000-0) nor an RFC 3339 time (2025-12-22T10:54:00Z)")
    })?;
    let ms = u64::try_from(time.timestamp_millis())
        .map_err(|_| format!("{raw:?} is before 1970, when stream ids start"))?;
    Ok(StreamId::at_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    #[test]
    fn parses_what_redis_and_operators_write() {
        let cases: &[(&str, Option<StreamId>)] = &[
            ("1700000000000-5", Some(id(1_700_000_000_000, 5))),
            ("0-0", Some(StreamId::MIN)),
            ("1700000000000", Some(id(1_700_000_000_000, 0))),
            (
                "18446744073709551615-18446744073709551615",
                Some(StreamId::MAX),
            ),
            ("18446744073709551616-0", None),
            ("", None),
            ("-", None),
            ("1-", None),
            ("-1", None),
            ("+1-0", None),
            ("1-2-3", None),
            ("abc", None),
            (" 1-0", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(raw.parse::<StreamId>().ok(), *expected, "{raw:?}");
        }
    }

    #[test]
    fn orders_numerically_not_as_text() {
        assert!(id(9, 0) < id(10, 0));
        assert!(id(10, 9) < id(10, 10));
        assert!(id(10, u64::MAX) < id(11, 0));
        assert_eq!(id(1_700_000_000_000, 5).to_string(), "1700000000000-5");
    }

    #[test]
    fn next_and_prev_step_over_sequence_and_millisecond_edges() {
        let cases = [
            (id(5, 0), Some(id(5, 1)), Some(id(4, u64::MAX))),
            (id(5, u64::MAX), Some(id(6, 0)), Some(id(5, u64::MAX - 1))),
            (StreamId::MIN, Some(id(0, 1)), None),
            (StreamId::MAX, None, Some(id(u64::MAX, u64::MAX - 1))),
        ];
        for (at, next, prev) in cases {
            assert_eq!(at.next(), next, "next of {at}");
            assert_eq!(at.prev(), prev, "prev of {at}");
        }
    }

    #[test]
    fn a_boundary_is_an_id_or_an_rfc3339_time() {
        let cases: &[(&str, Result<StreamId, ()>)] = &[
            ("1700000000000-3", Ok(id(1_700_000_000_000, 3))),
            ("1700000000000", Ok(id(1_700_000_000_000, 0))),
            ("2023-11-14T22:13:20Z", Ok(id(1_700_000_000_000, 0))),
            (
                "2023-11-14T23:13:20.250+01:00",
                Ok(id(1_700_000_000_250, 0)),
            ),
            ("1969-12-31T23:59:59Z", Err(())),
            ("2023-11-14", Err(())),
            ("yesterday", Err(())),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_boundary(raw).map_err(|_| ()), *expected, "{raw:?}");
        }
    }
}
