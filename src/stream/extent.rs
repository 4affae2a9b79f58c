//! How much of a stream Redis still holds: its length, its oldest entry, and how many entries
//! were deleted from it, from one `XINFO STREAM` (so they agree). The retention gauges show it, and `replay` tells a range
//! that was trimmed away from one in which nothing was written.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Value;

use super::reply::unexpected;
use crate::stream::id::StreamId;

/// A stream's length and oldest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub length: u64,
    /// The oldest entry's id; `None` when the stream is empty.
    pub oldest: Option<StreamId>,
    /// The newest entry's id; `None` when the stream is empty.
    pub newest: Option<StreamId>,
    /// Entries ever deleted: `entries-added` less the length (Redis 7; `None` before, which
    /// cannot tell). `XTRIM` deletes from the start, so these were older than `oldest`
    /// (Redis 7.0's `max-deleted-entry-id` counts only `XDEL`s, so it cannot say this).
    pub deleted: Option<u64>,
    /// The newest id the stream ever gave (`last-generated-id`), deleted or not.
    pub last_generated: StreamId,
}

impl Extent {
    /// How long before `now_ms` the oldest entry was written (its id's milliseconds); zero
    /// for an empty stream, which holds nothing old.
    pub fn oldest_age(&self, now_ms: u64) -> Duration {
        self.oldest.map_or(Duration::ZERO, |oldest| {
            Duration::from_millis(now_ms.saturating_sub(oldest.ms))
        })
    }
}

/// `stream`'s [`Extent`]; an error when it does not exist.
pub async fn extent<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
) -> redis::RedisResult<Extent> {
    let reply: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await?;
    parse(&reply).ok_or_else(|| unexpected("XINFO STREAM reply", &reply))
}

/// The `length` and `first-entry` of an `XINFO STREAM` reply (RESP2 pairs or a RESP3 map).
fn parse(reply: &Value) -> Option<Extent> {
    let (mut length, mut added, mut last_generated) = (None, None, None);
    let (mut oldest, mut newest) = (None, None);
    for (key, value) in reply.as_map_iter()? {
        match redis::from_redis_value_ref::<String>(key).ok()?.as_str() {
            "length" => length = Some(redis::from_redis_value_ref::<u64>(value).ok()?),
            "entries-added" => added = Some(redis::from_redis_value_ref::<u64>(value).ok()?),
            "last-generated-id" => {
                let id: String = redis::from_redis_value_ref(value).ok()?;
                last_generated = Some(id.parse().ok()?);
            }
            "first-entry" => oldest = entry_id(value)?,
            "last-entry" => newest = entry_id(value)?,
            _ => {}
        }
    }
    let length = length?;
    Some(Extent {
        length,
        oldest,
        newest,
        deleted: added.map(|added: u64| added.saturating_sub(length)),
        last_generated: last_generated?,
    })
}

/// The id of `first-entry` / `last-entry`: `Some(None)` for an empty stream's nil, `None` for
/// a reply that is neither.
fn entry_id(value: &Value) -> Option<Option<StreamId>> {
    match value {
        Value::Nil => Some(None),
        Value::Array(entry) => {
            let id: String = redis::from_redis_value_ref(entry.first()?).ok()?;
            Some(Some(id.parse().ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_the_length_and_first_and_last_entries_of_either_protocol() {
        let entry = Value::Array(vec![
            bulk("1700000000000-3"),
            Value::Array(vec![bulk("data"), bulk("{}")]),
        ]);
        let pairs = vec![
            (bulk("length"), Value::Int(7)),
            (bulk("last-generated-id"), bulk("1700000000009-0")),
            (bulk("entries-added"), Value::Int(10)),
            (bulk("groups"), Value::Int(1)),
            (bulk("first-entry"), entry),
            (
                bulk("last-entry"),
                Value::Array(vec![bulk("1700000000008-0"), Value::Array(vec![])]),
            ),
        ];
        let oldest = Some(StreamId {
            ms: 1_700_000_000_000,
            seq: 3,
        });
        let last_generated = StreamId::at_millis(1_700_000_000_009);
        let resp2 = Value::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
        );
        let resp3 = Value::Map(pairs);
        for reply in [resp2, resp3] {
            let expected = Extent {
                length: 7,
                oldest,
                newest: Some(StreamId::at_millis(1_700_000_000_008)),
                deleted: Some(3),
                last_generated,
            };
            assert_eq!(parse(&reply), Some(expected), "{reply:?}");
        }
        // A new stream, and the same before Redis 7 (no entries-added: cannot tell).
        let empty = Value::Array(vec![
            bulk("length"),
            Value::Int(0),
            bulk("last-generated-id"),
            bulk("0-0"),
            bulk("entries-added"),
            Value::Int(0),
            bulk("first-entry"),
            Value::Nil,
            bulk("last-entry"),
            Value::Nil,
        ]);
        let nothing = Extent {
            length: 0,
            oldest: None,
            newest: None,
            deleted: Some(0),
            last_generated: StreamId::MIN,
        };
        assert_eq!(parse(&empty), Some(nothing));
        let redis_6 = Value::Array(vec![
            bulk("length"),
            Value::Int(0),
            bulk("last-generated-id"),
            bulk("0-0"),
        ]);
        let unknown = Extent {
            deleted: None,
            ..nothing
        };
        assert_eq!(parse(&redis_6), Some(unknown));
        assert_eq!(
            parse(&Value::Array(vec![bulk("groups"), Value::Int(0)])),
            None
        );
    }

    #[test]
    fn the_oldest_entrys_age_is_zero_for_an_empty_stream_and_never_negative() {
        let at = |ms| Extent {
            length: 1,
            oldest: Some(StreamId::at_millis(ms)),
            newest: Some(StreamId::at_millis(ms)),
            deleted: Some(0),
            last_generated: StreamId::at_millis(ms),
        };
        assert_eq!(at(1_000).oldest_age(61_000), Duration::from_secs(60));
        assert_eq!(
            at(5_000).oldest_age(1_000),
            Duration::ZERO,
            "a clock behind Redis's"
        );
        let empty = Extent {
            length: 0,
            oldest: None,
            newest: None,
            deleted: Some(0),
            last_generated: StreamId::MIN,
        };
        assert_eq!(empty.oldest_age(61_000), Duration::ZERO);
    }
}
