//! What reached the stream, checked row by row and measured.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context};
use redis::streams::StreamId;
use serde_json::Value;

use super::super::latency::{percentiles, rate_of};
use super::writers::Row;
use super::Relayed;

/// Each row's COMMIT → arrival, once every row is checked to have arrived exactly once (the
/// warm-up row besides), each order's in the order they were written.
pub(super) fn measure(
    arrivals: &[(StreamId, Instant)],
    rows: &[Row],
    warm_up: &Row,
    committed: &[Instant],
) -> anyhow::Result<Relayed> {
    let by_id: HashMap<&str, &Row> = (rows.iter())
        .map(|row| (row.event_id.as_str(), row))
        .collect();
    let mut arrived_at: Vec<Option<Instant>> = vec![None; rows.len()];
    let mut last_of_order: HashMap<&str, usize> = HashMap::new();
    for (entry, at) in arrivals {
        let (id, order, seq) = read(entry)?;
        if id == warm_up.event_id {
            continue;
        }
        let row = by_id.get(id.as_str()).with_context(|| {
            format!(
                "entry {}: event {id}, which no row of the phase has",
                entry.id
            )
        })?;
        if row.seq != seq || row.order != order {
            bail!("entry {}: event {id} is not its row's payload", entry.id);
        }
        if arrived_at[seq].replace(*at).is_some() {
            bail!("row {seq} (event {id}) published twice");
        }
        if let Some(before) = last_of_order.insert(&row.order, seq).filter(|&b| b > seq) {
            bail!("{order}: row {seq} published after its later row {before}");
        }
    }
    let mut millis = Vec::with_capacity(rows.len());
    for (seq, at) in arrived_at.iter().enumerate() {
        let at = at.with_context(|| format!("row {seq} never reached the stream"))?;
        millis.push(at.saturating_duration_since(committed[seq]).as_secs_f64() * 1_000.0);
    }
    let (p50_ms, p99_ms, max_ms) = percentiles(&mut millis);
    Ok(Relayed {
        rows: rows.len() as u64,
        rows_per_second: rate_of(committed),
        p50_ms,
        p99_ms,
        max_ms,
    })
}

/// An entry as a Dapr subscriber reads it: the CloudEvent's id, and its data's order and place.
fn read(entry: &StreamId) -> anyhow::Result<(String, String, usize)> {
    let data: String = entry
        .get("data")
        .with_context(|| format!("entry {} has no data field", entry.id))?;
    let cloud_event: Value = serde_json::from_str(&data)
        .with_context(|| format!("entry {}: data is not a CloudEvent", entry.id))?;
    let id = cloud_event["id"].as_str();
    let order = cloud_event["data"]["order_id"].as_str();
    let seq = cloud_event["data"]["seq"].as_u64();
    match (id, order, seq) {
        (Some(id), Some(order), Some(seq)) => Ok((id.to_owned(), order.to_owned(), seq as usize)),
        _ => bail!("entry {}: no id, order_id or seq in {data}", entry.id),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn row(seq: usize, order: &str) -> Row {
        Row {
            event_id: format!("event-{seq}"),
            order: order.to_owned(),
            seq,
        }
    }

    /// `row` as the relay publishes it, arrived `ms` after `start`.
    fn arrival(row: &Row, start: Instant, ms: u64) -> (StreamId, Instant) {
        let data = serde_json::json!({
            "id": row.event_id,
            "data": { "order_id": row.order, "seq": row.seq },
        });
        let data = redis::Value::BulkString(data.to_string().into_bytes());
        let entry = StreamId {
            id: format!("{}-0", row.seq + 1),
            map: [("data".to_owned(), data)].into(),
            ..StreamId::default()
        };
        (entry, start + Duration::from_millis(ms))
    }

    #[test]
    fn every_row_must_arrive_once_each_order_s_in_order() {
        let rows = [row(0, "a"), row(1, "b"), row(2, "a")];
        let warm_up = row(3, "warm-up");
        let start = Instant::now();
        let committed: Vec<Instant> = (0..3).map(|ms| start + Duration::from_millis(ms)).collect();
        let [a0, b1, a2, w] =
            [&rows[0], &rows[1], &rows[2], &warm_up].map(|r| arrival(r, start, 10));
        let check =
            |arrivals: &[(StreamId, Instant)]| measure(arrivals, &rows, &warm_up, &committed);
        let measured = check(&[w.clone(), a0.clone(), b1.clone(), a2.clone()]).expect("exact");
        assert_eq!(measured.rows, 3);
        assert_eq!((measured.p50_ms, measured.max_ms), (9.0, 10.0));
        // Orders apart may interleave either way.
        check(&[b1.clone(), a0.clone(), a2.clone()]).expect("b before a");
        for wrong in [
            vec![a0.clone(), b1.clone(), a2.clone(), a0.clone()],
            vec![a0.clone(), b1.clone()],
            vec![a2.clone(), b1.clone(), a0.clone()],
        ] {
            assert!(check(&wrong).is_err(), "{wrong:?}");
        }
    }
}
