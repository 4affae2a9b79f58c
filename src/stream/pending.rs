//! The pending entries list: claiming entries other consumers abandoned, keeping our own fresh
//! while we work on them, and reading how often each was delivered.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Value;

use super::reply::{parse_entries, unexpected};
use super::{group_info, is_no_group, ReadBatch};
use crate::config::StreamConfig;
use crate::instruments::Backlog;

/// Where XAUTOCLAIM starts, and what it answers once it walked the whole pending list.
pub const AUTOCLAIM_START: &str = "0-0";

/// One `XAUTOCLAIM` page: entries idle for at least `min_idle`, whoever holds them (a dead
/// replica, Dapr's consumer named as the group, or ourselves for an entry that failed), become
/// ours. Returns the next cursor (`0-0` once the whole pending list was walked) and the
/// entries; ids Redis reports deleted from the stream are in `deleted`.
pub async fn autoclaim<C: ConnectionLike + Send>(
    conn: &mut C,
    (source, config): (usize, &StreamConfig),
    consumer: &str,
    min_idle: Duration,
    cursor: &str,
    count: usize,
) -> redis::RedisResult<(String, ReadBatch)> {
    let reply: redis::RedisResult<Value> = redis::cmd("XAUTOCLAIM")
        .arg(&config.stream)
        .arg(&config.group)
        .arg(consumer)
        .arg(min_idle.as_millis() as u64)
        .arg(cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await;
    let reply = match reply {
        // The group is gone (Redis lost its data): nothing is pending in it. The reader
        // creates it again; waiting here for that would keep the reader from running.
        Err(error) if is_no_group(&error) => {
            return Ok((AUTOCLAIM_START.to_owned(), ReadBatch::default()))
        }
        reply => reply?,
    };
    let Value::Array(mut parts) = reply else {
        return Err(unexpected("XAUTOCLAIM reply", &reply));
    };
    if !(2..=3).contains(&parts.len()) {
        return Err(unexpected("XAUTOCLAIM reply", &Value::Array(parts)));
    }
    let mut batch = ReadBatch::default();
    // Redis ≥ 7 lists the ids it found deleted (and dropped from the pending list) third.
    if parts.len() == 3 {
        let deleted: Vec<String> = redis::from_redis_value(parts.pop().unwrap_or(Value::Nil))?;
        batch
            .deleted
            .extend(deleted.into_iter().map(|id| (source, id)));
    }
    parse_entries(parts.pop().unwrap_or(Value::Nil), source, &mut batch)?;
    let next: String = redis::from_redis_value(parts.pop().unwrap_or(Value::Nil))?;
    Ok((next, batch))
}

/// Up to `count` entries `holder` has held idle for at least `min_idle`, claimed for
/// `consumer` (`XPENDING … IDLE`, then `XCLAIM` with the same floor, so an entry refreshed
/// meanwhile stays where it is), fewer when they keep coming back (see [`claim_size`]). Ids
/// gone from the stream are dropped from the pending list by `XCLAIM` itself.
pub async fn claim_held<C: ConnectionLike + Send>(
    conn: &mut C,
    (source, config): (usize, &StreamConfig),
    holder: &str,
    consumer: &str,
    min_idle: Duration,
    count: usize,
) -> redis::RedisResult<ReadBatch> {
    let min_idle = min_idle.as_millis() as u64;
    let held: redis::RedisResult<redis::streams::StreamPendingCountReply> = redis::cmd("XPENDING")
        .arg(&config.stream)
        .arg(&config.group)
        .arg("IDLE")
        .arg(min_idle)
        .arg("-")
        .arg("+")
        .arg(count)
        .arg(holder)
        .query_async(conn)
        .await;
    let mut batch = ReadBatch::default();
    let held = match held {
        // Gone with the group, as in [`autoclaim`]; a retry after a later failure lands here.
        Err(error) if is_no_group(&error) => return Ok(batch),
        held => held?,
    };
    if held.ids.is_empty() {
        return Ok(batch);
    }
    let deliveries = held.ids.iter().map(|p| p.times_delivered).max();
    let take = claim_size(count, deliveries.unwrap_or(1));
    let ids: Vec<&str> = held.ids.iter().take(take).map(|p| p.id.as_str()).collect();
    let claimed: Value = redis::cmd("XCLAIM")
        .arg(&config.stream)
        .arg(&config.group)
        .arg(consumer)
        .arg(min_idle)
        .arg(&ids)
        .query_async(conn)
        .await?;
    parse_entries(claimed, source, &mut batch)?;
    Ok(batch)
}

/// How many of a dead consumer's entries to claim at once, when the most delivered of them has
/// been delivered `deliveries` times: a batch each time half the size of the last, from
/// `count`, down to one entry. Entries come back when the consumers that took them die before
/// they settle: a batch too big to finish between two crashes (a replica killed every few
/// seconds, or an entry that crashes it) shrinks until it goes through, instead of coming back
/// until MAX_DELIVERIES dead-letters good entries.
pub fn claim_size(count: usize, deliveries: usize) -> usize {
    let halvings = deliveries.saturating_sub(1).min(usize::BITS as usize - 1);
    (count >> halvings).max(1)
}

/// Resets the idle time of entries we are still working on (`XCLAIM … 0 … JUSTID` to
/// ourselves, which does not count as a delivery), so no other replica claims them meanwhile
/// (Dapr issue #4599: buffered entries aged in the pending list and were processed twice).
pub async fn keep_alive<C: ConnectionLike + Send>(
    conn: &mut C,
    config: &StreamConfig,
    consumer: &str,
    ids: &[&str],
) -> redis::RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    redis::cmd("XCLAIM")
        .arg(&config.stream)
        .arg(&config.group)
        .arg(consumer)
        .arg(0)
        .arg(ids)
        .arg("JUSTID")
        .query_async::<Value>(conn)
        .await?;
    Ok(())
}

/// How many times each of `ids` was delivered, from `XPENDING` (one command per id, in one
/// round trip). Ids no longer pending are absent.
pub async fn delivery_counts<C: ConnectionLike + Send>(
    conn: &mut C,
    config: &StreamConfig,
    ids: &[&str],
) -> redis::RedisResult<HashMap<String, u64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("XPENDING")
            .arg(&config.stream)
            .arg(&config.group)
            .arg(id)
            .arg(id)
            .arg(1);
    }
    let replies: Vec<redis::streams::StreamPendingCountReply> = pipe.query_async(conn).await?;
    Ok(replies
        .into_iter()
        .flat_map(|reply| reply.ids)
        .map(|pending| (pending.id, pending.times_delivered as u64))
        .collect())
}

/// The stream's [`Backlog`], from XINFO GROUPS, XINFO STREAM, XLEN and XPENDING's extended form.
pub async fn backlog<C: ConnectionLike + Send>(
    conn: &mut C,
    config: &StreamConfig,
) -> redis::RedisResult<Backlog> {
    let group = group_info(conn, &config.stream, &config.group).await?;
    let extent = super::extent(conn, &config.stream).await?;
    let dead_letters: u64 = redis::cmd("XLEN")
        .arg(config.dead_letter_stream())
        .query_async(conn)
        .await?;
    let pending = group.as_ref().map_or(0, |group| group.pending as u64);
    let oldest_idle = if pending == 0 {
        Duration::ZERO
    } else {
        let oldest: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&config.stream)
            .arg(&config.group)
            .arg(&["-", "+", "1"])
            .query_async(conn)
            .await?;
        oldest.ids.first().map_or(Duration::ZERO, |entry| {
            Duration::from_millis(entry.last_delivered_ms as u64)
        })
    };
    Ok(Backlog {
        lag: group.and_then(|group| group.lag).map(|lag| lag as u64),
        pending,
        oldest_idle,
        dead_letters,
        length: extent.length,
        oldest_entry_age: extent.oldest_age(unix_now_ms()),
    })
}

/// This machine's clock in milliseconds since the epoch (Redis's gives entry ids theirs; the
/// difference is noise next to a retention window).
fn unix_now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Removes `consumer` from the group only if it holds nothing, checked and done in one Lua
/// script: a consumer that read an entry between a check and a DELCONSUMER would otherwise
/// lose it (Watermill issue #24). Returns whether it was removed.
pub async fn remove_consumer_if_empty<C: ConnectionLike + Send>(
    conn: &mut C,
    config: &StreamConfig,
    consumer: &str,
) -> redis::RedisResult<bool> {
    let script = redis::Script::new(
        r"
        local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
        if #held > 0 then return 0 end
        return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) + 1
        ",
    );
    let result: i64 = script
        .key(&config.stream)
        .arg(&config.group)
        .arg(consumer)
        .invoke_async(conn)
        .await?;
    Ok(result > 0)
}

/// The group's consumers as (name, pending, idle).
pub async fn consumers<C: ConnectionLike + Send>(
    conn: &mut C,
    config: &StreamConfig,
) -> redis::RedisResult<Vec<(String, u64, Duration)>> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&config.stream)
        .arg(&config.group)
        .query_async(conn)
        .await?;
    Ok(reply
        .consumers
        .into_iter()
        .map(|c| {
            (
                c.name,
                c.pending as u64,
                Duration::from_millis(c.idle as u64),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::claim_size;

    #[test]
    fn a_batch_that_keeps_coming_back_is_claimed_in_halves_down_to_one_entry() {
        let cases = [
            (500, 0, 500),
            (500, 1, 500),
            (500, 2, 250),
            (500, 3, 125),
            (500, 4, 62),
            (500, 9, 1),
            (500, 10_000, 1),
            (1, 5, 1),
        ];
        for (count, deliveries, want) in cases {
            assert_eq!(claim_size(count, deliveries), want, "{count}, {deliveries}");
        }
    }
}
