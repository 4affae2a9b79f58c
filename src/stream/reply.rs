//! Parsing the stream replies redis-rs has no type for: entries whose fields are nil (deleted
//! while pending) must not fail a whole read.

use redis::Value;

use super::{ReadBatch, StreamEntry};

/// Parses an XREADGROUP reply for one stream (RESP2 array or RESP3 map; nil on timeout).
pub(super) fn parse_read_reply(reply: Value) -> redis::RedisResult<ReadBatch> {
    let mut batch = ReadBatch::default();
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(batch),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(unexpected("XREADGROUP reply", &other)),
    };
    for entries in streams {
        parse_entries(entries, &mut batch)?;
    }
    Ok(batch)
}

/// Parses an array of `[id, [field, value, …]]` entries into `batch`; an entry whose fields are
/// nil was deleted from the stream while pending.
pub(crate) fn parse_entries(entries: Value, batch: &mut ReadBatch) -> redis::RedisResult<()> {
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
            Value::Nil => batch.deleted.push(id),
            fields => {
                let fields: Vec<(String, Vec<u8>)> = redis::from_redis_value(fields)?;
                batch.entries.push(StreamEntry { id, fields });
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
