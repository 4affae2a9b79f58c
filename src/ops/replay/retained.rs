//! Whether the range a replay asks for is still in the stream. `trim` deletes the oldest
//! entries, so a range that starts before the oldest one left may have lost its beginning, or
//! all of it; an `XRANGE` over it would quietly return less, which reads like "nothing happened
//! then". `XINFO STREAM` ([`Extent`]) says whether entries were deleted and which is the oldest
//! left: a trim deletes from the start, so every deleted entry was older than that one. It
//! cannot say since when, so a range starting before the first entry ever written is said to
//! have lost what it held there, if anything (before Redis 7 nothing is said).
//!
//! The whole range gone is an error (exit 1): nothing of what was asked can be replayed. Part of
//! it gone is a warning naming the part, and the rest is replayed: it is what can still be
//! done, and an operator replaying "since the incident" wants at least that.

use crate::ops::output::rfc3339_ms;
use crate::stream::extent::Extent;
use crate::stream::id::StreamId;
use crate::stream::RedisConnection;

/// How much of a range is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Nothing of the range was deleted.
    Whole,
    /// The range's entries up to `gone_to` were deleted; the stream keeps `oldest` on.
    Partly { gone_to: StreamId, oldest: StreamId },
    /// Every entry the range could hold was deleted; `oldest` is the first left, if any.
    Gone { oldest: Option<StreamId> },
}

/// What is left of `[from, to]` in a stream of `extent`: entries were deleted from it when the
/// stream lost any and the range starts below its oldest entry.
pub fn retained(from: StreamId, to: StreamId, extent: &Extent) -> Retained {
    if extent.deleted.is_none_or(|deleted| deleted == 0) {
        return Retained::Whole;
    }
    match extent.oldest {
        Some(oldest) if from >= oldest => Retained::Whole,
        Some(oldest) if oldest <= to => Retained::Partly {
            gone_to: oldest.prev().unwrap_or(StreamId::MIN),
            oldest,
        },
        // Everything trimmed: a range after the last id ever given held nothing yet.
        None if from > extent.last_generated => Retained::Whole,
        oldest => Retained::Gone { oldest },
    }
}

/// How to keep more, for the messages below.
const KEEP_MORE: &str = "`order-worker trim --keep` (default 7d; the CronJob's in \
k8s/base/trim-cronjob.yaml) sets how much history stays for replay";

/// Fails when nothing of `[from, to]` is left in `stream`, and warns, naming the lost part,
/// when only its start is gone.
pub async fn check(
    conn: &mut RedisConnection,
    stream: &str,
    from: StreamId,
    to: StreamId,
) -> anyhow::Result<()> {
    let extent = crate::stream::extent(conn, stream).await?;
    let at = |id: StreamId| format!("{id} ({})", rfc3339_ms(id.ms));
    match retained(from, to, &extent) {
        Retained::Whole => Ok(()),
        Retained::Partly { gone_to, oldest } => {
            tracing::warn!(
                "{stream} was trimmed: whatever it held from {} to {} cannot be replayed; \
                 replaying the rest, from the oldest entry retained, {} ({KEEP_MORE})",
                at(from),
                at(gone_to),
                at(oldest)
            );
            Ok(())
        }
        Retained::Gone { oldest } => {
            let left = match oldest {
                Some(oldest) => format!("its oldest entry retained is {}", at(oldest)),
                None => "it holds no entries".to_owned(),
            };
            anyhow::bail!(
                "nothing to replay: {stream} was trimmed and no longer holds the range from {} \
                 ({left}; {KEEP_MORE})",
                at(from)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> StreamId {
        raw.parse().expect("test id")
    }

    #[test]
    fn a_range_is_whole_partly_or_wholly_gone_by_the_oldest_entry_left_once_any_was_deleted() {
        let trimmed = |oldest: Option<&str>, last: &str| Extent {
            length: 1,
            oldest: oldest.map(id),
            newest: Some(id(last)),
            deleted: Some(2),
            last_generated: id(last),
        };
        let partly = |gone_to, oldest| Retained::Partly {
            gone_to: id(gone_to),
            oldest: id(oldest),
        };
        let cases = [
            // (what, from, to, extent, expected)
            (
                "never trimmed: a range starting before the first entry lost nothing",
                "10-0",
                "90-0",
                Extent {
                    deleted: Some(0),
                    ..trimmed(Some("50-0"), "60-0")
                },
                Retained::Whole,
            ),
            (
                "before Redis 7: nothing is known",
                "10-0",
                "90-0",
                Extent {
                    deleted: None,
                    ..trimmed(Some("50-0"), "60-0")
                },
                Retained::Whole,
            ),
            (
                "from the oldest entry on",
                "50-0",
                "90-0",
                trimmed(Some("50-0"), "60-0"),
                Retained::Whole,
            ),
            (
                "its start trimmed",
                "10-0",
                "90-0",
                trimmed(Some("50-0"), "60-0"),
                partly("49-18446744073709551615", "50-0"),
            ),
            (
                "ending at the oldest entry: that one is left",
                "10-0",
                "50-0",
                trimmed(Some("50-0"), "60-0"),
                partly("49-18446744073709551615", "50-0"),
            ),
            (
                "ending before the oldest entry",
                "10-0",
                "49-9",
                trimmed(Some("50-0"), "60-0"),
                Retained::Gone {
                    oldest: Some(id("50-0")),
                },
            ),
            (
                "everything trimmed",
                "10-0",
                "90-0",
                trimmed(None, "80-0"),
                Retained::Gone { oldest: None },
            ),
            (
                "everything trimmed, the range after the last id given",
                "80-1",
                "90-0",
                trimmed(None, "80-0"),
                Retained::Whole,
            ),
        ];
        for (what, from, to, extent, expected) in cases {
            assert_eq!(retained(id(from), id(to), &extent), expected, "{what}");
        }
    }
}
