//! The late path's cost: the fulfillment backlog with every tenth entry held back and applied
//! after all the others, as when replicas died holding them. Each held-back event is then older
//! than events of its order already applied, so its order is recomputed from its recorded events
//! (see `store::late`). Timed against the in-order drain of the same backlog in the same run; the
//! end state must be the in-order one.

use std::path::Path;

use super::drain::drain;
use super::workload::{Backlog, Workload};
use order_worker::StreamConfig;

/// One event in this many is late.
pub const LATE_EVERY: usize = 10;

/// What the late drain measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LateDrain {
    pub events: u64,
    pub late_events: u64,
    /// Both drains: the on-time events, then the late ones.
    pub seconds: f64,
    pub events_per_second: f64,
    /// The late events' own drain.
    pub late_seconds: f64,
    pub late_events_per_second: f64,
}

/// Publishes the fulfillment backlog split in two streams (the late one `<stream>.late`), drains
/// the on-time stream, then the late one, with one worker process each, and checks the end state.
pub async fn phase(
    workload: &mut Workload,
    order_worker: &Path,
    batch_size: u32,
) -> anyhow::Result<LateDrain> {
    workload.reset(Backlog::Fulfillment).await?;
    let late = StreamConfig {
        stream: format!("{}.late", workload.stream.stream),
        ..workload.stream.clone()
    };
    let delete = |stream: &StreamConfig| {
        let mut del = redis::cmd("DEL");
        del.arg(&stream.stream).arg(stream.dead_letter_stream());
        del
    };
    let _: () = delete(&late).query_async(&mut workload.redis).await?;
    let late_events = workload.publish_split(&late, LATE_EVERY).await?;
    let on_time = drain(workload, order_worker, 1, batch_size, &[]).await?;
    let stream = std::mem::replace(&mut workload.stream, late);
    let drained_late = drain(workload, order_worker, 1, batch_size, &[]).await;
    let late = std::mem::replace(&mut workload.stream, stream);
    let _: () = delete(&late).query_async(&mut workload.redis).await?;
    let drained_late = drained_late?;
    workload.verify("late drain", true).await?;
    let seconds = on_time.seconds + drained_late.seconds;
    Ok(LateDrain {
        events: workload.events(),
        late_events,
        seconds,
        events_per_second: workload.events() as f64 / seconds,
        late_seconds: drained_late.seconds,
        late_events_per_second: late_events as f64 / drained_late.seconds,
    })
}
