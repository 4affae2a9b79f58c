//! Parsing the stream replies redis-rs has no type for: entries whose fields are nil (deleted
//! while pending) must not fail a whole read.

use redis::Value;

use super::{ReadBatch, StreamEntry};

/// Parses an XREADGROUP reply (RESP2 array or RESP3 map; nil on timeout); `source` maps each
/// stream key to its index.
pub(super) fn parse_read_reply(
    reply: Value,
    source: impl Fn(&str) -> Option<usize>,
) -> redis::RedisResult<ReadBatch> {
    let mut batch = ReadBatch::default();
    let streams: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(batch),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop()?;
                    Some((pair.pop()?, entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams,
        other => return Err(unexpected("XREADGROUP reply", &other)),
    };
    for (key, entries) in streams {
        let key: String = redis::from_redis_value(key)?;
        let Some(index) = source(&key) else {
            return Err(unexpected(
                "XREADGROUP reply for a stream not asked for",
                &entries,
            ));
        };
        parse_entries(entries, index, &mut batch)?;
    }
    Ok(batch)
}

/// Parses an array of `[id, [field, value, …]]` entries into `batch`; an entry whose fields are
/// nil was deleted from the stream while pending.
pub(crate) fn parse_entries(
    entries: Value,
    source: usize,
    batch: &mut ReadBatch,
) -> redis::RedisResult<()> {
    let Value::Array(entries) = entries else {
        return Err(unexpected("stream entries", &entries));
    };
    for entry in entries {
        let Value::Array(mut parts) = entry else {
            return Err(unexpected("stream entry", &entry));
        };
        if parts.len() != 2 {
            return Err(unexpected("stream entry", &Value::Array(parts)));
        }
        let fields = parts.pop().unwrap_or(Value::Nil);
        let id: String = redis::from_redis_value(parts.pop().unwrap_or(Value::Nil))?;
        match fields {
            Value::Nil => batch.deleted.push((source, id)),
            fields => {
                let fields: Vec<(String, Vec<u8>)> = redis::from_redis_value(fields)?;
                batch.entries.push(StreamEntry { source, id, fields });
            }
        }
    }
    Ok(())
}

pub(super) fn unexpected(what: &str, value: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply shape",
        format!("{what}: {value:?}"),
    ))
}
