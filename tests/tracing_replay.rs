//! Replays keep the trace: a replayed range makes each event a `process` span of its
//! publisher's trace again, and a dead letter moved back to the stream is processed in its
//! original trace.

mod support;

use order_worker::FulfillmentStatus::*;
use support::otlp::Protocol;
use support::traced::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_event_and_a_requeued_dead_letter_continue_their_original_traces() {
    let mut t = Traced::start(Protocol::Grpc, &["o1", "o2"], &[]).await;
    let (traceparent, trace_id, parent_id) = new_traceparent();
    let (entry_id, _) = publish(&t.env, "o1", Planning, Some(&traceparent)).await;
    let stream = t.stream().to_owned();
    let in_trace = |spans: &[support::otlp::ReceivedSpan], trace: &str| {
        spans
            .iter()
            .filter(|s| s.name == format!("process {stream}") && s.trace_id == trace)
            .cloned()
            .collect::<Vec<_>>()
    };
    t.receiver
        .wait_for("the worker's span", |spans| {
            in_trace(spans, &trace_id).len() == 1
        })
        .await
        .expect("exported");

    // The range, replayed by the operator command, exporting to the same receiver.
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", t.receiver.endpoint()),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            t.receiver.protocol_env().to_owned(),
        ),
    ];
    let otel: Vec<(&str, &str)> = otel.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replayed = t
        .env
        .order_worker_with(&["replay", "--from", &entry_id, "--to", &entry_id], &otel)
        .await;
    assert!(replayed.status.success(), "{replayed:?}");
    let spans = t
        .receiver
        .wait_for("the replay's span", |spans| {
            in_trace(spans, &trace_id).len() == 2
        })
        .await
        .expect("exported");
    let replay = in_trace(&spans, &trace_id)
        .into_iter()
        .find(|s| attribute(s, "order_worker.replay") == Some("true"))
        .expect("a span marked as a replay");
    assert_eq!(replay.parent_span_id, parent_id, "{replay:?}");
    assert_eq!(attribute(&replay, OUTCOME), Some("duplicate"), "{replay:?}");

    // Fulfillment f-o1 is o1's: for o2 it is dead-lettered, then moved back and tried again.
    let (traceparent, trace_id, _) = new_traceparent();
    let (dead_entry, _) = publish_for(&t.env, "o2", "f-o1", Packing, Some(&traceparent)).await;
    t.receiver
        .wait_for("the dead letter's span", |spans| {
            in_trace(spans, &trace_id).len() == 1
        })
        .await
        .expect("exported");
    support::eventually("dead-lettered", async || {
        !t.env.dead_letters().await.is_empty()
    })
    .await;
    let requeued = t
        .env
        .order_worker_with(&["replay", "--dead-letter", "--all"], &[])
        .await;
    assert!(requeued.status.success(), "{requeued:?}");
    let spans = t
        .receiver
        .wait_for("the requeued entry's span, in the same trace", |spans| {
            in_trace(spans, &trace_id).len() == 2
        })
        .await
        .expect("exported");
    let again = in_trace(&spans, &trace_id);
    assert!(
        again
            .iter()
            .any(|s| attribute(s, ENTRY_ID) != Some(dead_entry.as_str())),
        "the requeued entry is a new stream entry of the same trace: {again:?}"
    );
    t.stop().await;
    t.env.cleanup().await;
}
